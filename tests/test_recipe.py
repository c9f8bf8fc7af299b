"""reasonbrain.training.recipe: the synth training recipes (teacher, reading phase) as data, their generated configs,
plan and runner."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest

from reasonbrain.training.recipe import (
    data_is_complete,
    load_recipe,
    main,
    plan,
    render_config,
    run_recipe,
    stages_markdown,
    write_config_files,
)

REPO = Path(__file__).resolve().parent.parent
SYNTH = REPO / "configs" / "recipes" / "synth_teacher.json"
READER = REPO / "configs" / "recipes" / "synth_reader.json"


@pytest.fixture(scope="module")
def synth():
    return load_recipe(str(SYNTH))


def test_each_merged_stage_is_its_config_file_exactly(synth):
    assert [s.config_file for s in synth.stages] == ["configs/train_synth.json"] + [
        f"configs/train_synth_stage{n}.json" for n in range(2, 10)]
    for stage in synth.stages:
        path = REPO / stage.config_file
        assert json.loads(path.read_text()) == stage.config, stage.config_file
        assert path.read_text() == render_config(stage.config), f"{stage.config_file}: run `recipe write`"
    generated = {s.config_file for s in synth.stages}
    assert {f"configs/{p.name}" for p in (REPO / "configs").glob("train_synth*.json")} == generated


def test_stages_continue_from_the_previous_run_and_name_their_data(synth):
    assert "init_checkpoint" not in synth.stages[0].config
    for before, stage in zip(synth.stages, synth.stages[1:]):
        assert stage.config["init_checkpoint"] == f"{before.run}/checkpoint"
    assert synth.previous_runs("runs/synth_stage9") == ["runs/synth"] + [f"runs/synth_stage{n}" for n in range(2, 9)]
    assert synth.previous_runs("./runs/synth/") == []
    assert synth.stage_for_run("runs/synth_stage4").config_file == "configs/train_synth_stage4.json"
    with pytest.raises(ValueError, match="not the output_dir of a stage"):
        synth.stage_for_run("runs/elsewhere")
    assert [d["out"] for d in synth.data_for([synth.stage(9)])] == [
        "data/synth", "data/synth_extra", "data/synth_extra2", "data/synth_extra3"]
    assert [d["out"] for d in synth.data_for([synth.stage(4)])] == ["data/synth", "data/synth_extra"]
    extra3 = synth.data_for([synth.stage(9)])[-1]
    assert extra3 == {"out": "data/synth_extra3", "n": 60000, "seed": 3, "split_fractions": [1, 0, 0], "chains": 0}


def test_readme_stage_table_is_the_recipe(synth):
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- stages of configs/recipes/synth_teacher\.json[^>]*-->\n(.*?)<!-- end of stages -->",
                      readme, re.S)
    assert block, "README lacks the generated stage table"
    assert block.group(1) == stages_markdown(synth)
    assert len(block.group(1).strip().splitlines()) == 2 + len(synth.stages) == 11


def test_makefile_and_gpu_script_run_the_recipe_not_the_stages():
    makefile = (REPO / "Makefile").read_text()
    target = makefile[makefile.index("\nsynth-teacher:"):].split("\n\n")[0]
    assert target.strip().splitlines()[1:] == [
        "\t$(BIN)/python -m reasonbrain.training.recipe run configs/recipes/synth_teacher.json"]
    script = (REPO / "tools" / "gpu_session.sh").read_text()
    assert "synth_extra" not in script and "synthworld" not in script


def write_tiny_recipe(root: Path, stages: int = 3) -> Path:
    recipe = {
        "data": [{"out": str(root / "data" / "a"), "n": 8, "seed": 0},
                 {"out": str(root / "data" / "b"), "n": 4, "seed": 1, "split_fractions": [1, 0, 0], "chains": 0},
                 {"out": str(root / "data" / "unused"), "n": 4, "seed": 2}],
        "base": {"preset": "tiny", "data_dir": str(root / "data" / "a"), "max_steps": 10},
        "stages": [{"config_file": str(root / "configs" / f"s{n}.json"), "about": f"stage {n}",
                    "set": {"output_dir": str(root / "runs" / f"s{n}"),
                            **({"extra_train_dirs": [str(root / "data" / "b")]} if n > 1 else {})}}
                   for n in range(1, stages + 1)],
        "steps": [{"name": "export", "tool": str(root / "export.py"),
                   "args": {"recipe": "{recipe}", "run": "{last_run}", "data_dir": str(root / "data" / "a"),
                            "out": "ckpt"}}],
    }
    path = root / "recipe.json"
    path.write_text(json.dumps(recipe))
    (root / "export.py").write_text("")
    return path


def fake_run(out: Path, summary_steps: int | None = None, state_step: int | None = None,
             checkpoint: bool = True) -> None:
    out.mkdir(parents=True)
    if checkpoint:
        (out / "checkpoint").mkdir()
    if summary_steps is not None:
        (out / "summary.json").write_text(json.dumps({"steps": summary_steps}))
    if state_step is not None:
        (out / "state").mkdir()
        (out / "state" / "progress.json").write_text(json.dumps({"step": state_step}))


def test_run_skips_what_is_complete_resumes_a_stopped_stage_and_exports(tmp_path):
    path = write_tiny_recipe(tmp_path)
    recipe = load_recipe(str(path))
    assert write_config_files(recipe) == [s.config_file for s in recipe.stages]
    assert write_config_files(recipe) == []
    (tmp_path / "data" / "b").mkdir(parents=True)
    (tmp_path / "data" / "b" / "meta.json").write_text(json.dumps(
        {"n": 4, "n_chains": 0, "seed": 1, "resolution": 64, "split_fractions": [1.0, 0.0, 0.0]}))
    assert data_is_complete(recipe.data[1]) and not data_is_complete(recipe.data[0])
    fake_run(tmp_path / "runs" / "s1", summary_steps=10, state_step=10)  # complete
    fake_run(tmp_path / "runs" / "s2", summary_steps=4, state_step=4)  # stopped early: resumes
    calls = []
    steps = run_recipe(recipe, threads=3, execute=lambda argv, env: calls.append((argv, env)) or 0)
    assert [(s.what.split(" (")[0], s.status) for s in steps] == [
        (f"data {tmp_path / 'data' / 'a'}", "run"), (f"data {tmp_path / 'data' / 'b'}", "complete, kept"),
        ("stage 1", "complete at step 10, skipped"), ("stage 2", "resume from step 4"), ("stage 3", "run"),
        ("export", "run")]
    argvs = [argv for argv, _ in calls]
    assert argvs[0] == [sys.executable, "-m", "reasonbrain", "synthworld", "--out", str(tmp_path / "data" / "a"),
                        "--n", "8", "--seed", "0", "--workers", "3"]
    assert argvs[1][-3:] == ["--config", recipe.stage(2).config_file, "--resume"]
    assert argvs[2][-2:] == ["--config", recipe.stage(3).config_file]
    assert argvs[3] == [sys.executable, str(tmp_path / "export.py"), "--recipe", str(path),
                        "--run", str(tmp_path / "runs" / "s3"), "--data-dir", str(tmp_path / "data" / "a"),
                        "--out", "ckpt"]
    assert all(env["OMP_NUM_THREADS"] == "3" for _, env in calls)

    # a stage whose summary misses the last step but has no state starts again; --from-stage leaves out the rest
    fake_run(tmp_path / "runs" / "s3", summary_steps=3)
    later = plan(recipe, from_stage=3, progress=False)
    assert [s.what.split(" (")[0] for s in later] == [
        f"data {tmp_path / 'data' / 'a'}", f"data {tmp_path / 'data' / 'b'}", "stage 3", "export"]
    assert later[0].argv[-1] == "--no-progress"
    assert later[2].status == "run" and "--resume" not in later[2].argv
    (tmp_path / "runs" / "s3" / "state").mkdir()  # killed after its last save, before the summary: resumes
    (tmp_path / "runs" / "s3" / "state" / "progress.json").write_text(json.dumps({"step": 10}))
    assert plan(recipe, from_stage=3)[2].status == "resume from step 10"
    with pytest.raises(ValueError, match="stage 4 is not in"):
        plan(recipe, from_stage=4)

    # a failing step stops the run
    with pytest.raises(RuntimeError, match="stage 2 .* failed \\(exit status 1\\)"):
        run_recipe(recipe, execute=lambda argv, env: 1 if "--resume" in argv else 0)


def test_run_refuses_config_files_that_differ_from_the_recipe(tmp_path):
    recipe = load_recipe(str(write_tiny_recipe(tmp_path, stages=2)))
    write_config_files(recipe)
    Path(recipe.stage(2).config_file).write_text(json.dumps({**recipe.stage(2).config, "max_steps": 11}))
    with pytest.raises(ValueError, match=r"s2\.json differ from .*recipe write"):
        run_recipe(recipe, execute=lambda argv, env: pytest.fail("nothing may run"))
    assert write_config_files(recipe) == [recipe.stage(2).config_file]


@pytest.mark.parametrize("change, message", [
    (lambda r: r["stages"][1]["set"].update(init_checkpoint="x"), "stage 2 sets init_checkpoint"),
    (lambda r: r["stages"][1]["set"].update(extra_train_dirs=["data/nowhere"]), "stage 2 reads .*data/nowhere"),
    (lambda r: r["stages"][1]["set"].pop("output_dir"), "stage 2 needs its own output_dir"),
    (lambda r: r["stages"][1]["set"].update(output_dir=r["stages"][0]["set"]["output_dir"]), "share a run"),
    (lambda r: r["stages"][0].update(sets={}), "unknown keys \\['sets'\\]"),
    (lambda r: r["data"][0].pop("seed"), "needs out, n and seed"),
    (lambda r: r["stages"][0].update(from_checkpoint="checkpoint-000005"), "stage 1 has from_checkpoint"),
    (lambda r: r.update(trainer="reasonbrain.training.elsewhere"), "unknown trainer"),
    (lambda r: r["steps"][0].update(module="m"), "step 1: a step needs a name and either a tool or a module"),
    (lambda r: r["steps"][0].pop("name"), "step 1: a step needs a name"),
    (lambda r: r["steps"].append(dict(r["steps"][0])), "two steps share a name"),
    (lambda r: r["steps"][0].update(out="x"), "step 1: unknown keys \\['out'\\]"),
])
def test_malformed_recipes_are_refused(tmp_path, change, message):
    path = write_tiny_recipe(tmp_path)
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=message):
        load_recipe(str(path))


def test_cli_show_prints_each_merged_config(capsys):
    assert main(["show", "--stage", "4", str(SYNTH)]) == 0
    assert capsys.readouterr().out == (REPO / "configs" / "train_synth_stage4.json").read_text()
    assert main(["show", str(SYNTH)]) == 0
    out = capsys.readouterr().out
    assert out.count("# stage ") == 9 and "# stage 9: configs/train_synth_stage9.json" in out
    assert main(["stages", str(SYNTH)]) == 0 and capsys.readouterr().out == stages_markdown(load_recipe(str(SYNTH)))
    assert main(["show", "--stage", "10", str(SYNTH)]) == 2
    assert "stage 10 is not in" in capsys.readouterr().err


@pytest.fixture(scope="module")
def reader():
    return load_recipe(str(READER))


def test_reader_stages_are_its_distill_config_files_exactly(reader):
    from reasonbrain.training.distill_reader import DistillConfig

    assert reader.trainer.module == "reasonbrain.training.distill_reader"
    assert [s.config_file for s in reader.stages] == [
        "configs/distill_synth_reader_mlp.json", "configs/distill_synth_reader_unet.json"]
    for stage in reader.stages:
        path = REPO / stage.config_file
        assert json.loads(path.read_text()) == stage.config, stage.config_file
        assert path.read_text() == render_config(stage.config), f"{stage.config_file}: run `recipe write`"
        defaults = dataclasses.asdict(DistillConfig())
        assert dataclasses.asdict(DistillConfig.from_json(str(path))) == {**defaults, **stage.config}
    assert "init_reader" not in reader.stages[0].config  # a new reader
    assert reader.stages[1].config["init_reader"] == "runs/synth_reader_mlp/checkpoint"
    assert reader.data == [] and reader.stages[0].config["teacher"] == "runs/synth_stage9/checkpoint"
    assert "Step 1500 of the second stage was chosen on the validation split" in json.loads(READER.read_text())["about"]


# the former Makefile's synth-reader and synth-checkpoint commands (after $(BIN)/python), in their order; the
# recogniser has since drawn half of its scenes on another background
FORMER_READER_COMMANDS = [
    "-m reasonbrain.training.distill_reader --config configs/distill_synth_reader_mlp.json",
    "-m reasonbrain.training.distill_reader --config configs/distill_synth_reader_unet.json",
    "-m reasonbrain.training.train_recogniser --checkpoint runs/synth_reader_unet/checkpoint-001500 "
    "--out runs/synth_reader_unet/candidate --epochs 5 --vae-share 0.5 --background-swap 0.5",
    "tools/select_reader_checkpoint.py runs/synth_reader_unet/checkpoint-001500 "
    "runs/synth_reader_unet/checkpoint-002000 --stride 6",
    "benchmarks/freeform_eval.py --checkpoint runs/synth_reader_unet/candidate "
    "--json-out runs/synth_reader_unet/freeform.json",
    "-m reasonbrain.training.train_outcome --checkpoint runs/synth_reader_unet/candidate "
    "--out runs/synth_reader_unet/candidate-outcome --resume",
    "benchmarks/outcome_eval.py --checkpoint runs/synth_reader_unet/candidate-outcome "
    "--json-out runs/synth_reader_unet/outcome_eval.json",
]
FORMER_CHECKPOINT_COMMANDS = [
    "tools/add_reading_phase.py --reader-run runs/synth_reader_unet --reader-checkpoint "
    "runs/synth_reader_unet/candidate --freeform runs/synth_reader_unet/freeform.json --out checkpoints/synth",
    "tools/add_reading_phase.py --attach-outcome runs/synth_reader_unet/candidate-outcome "
    "--outcome-eval runs/synth_reader_unet/outcome_eval.json --out checkpoints/synth",
]
DECODER_COMMANDS = [
    "-m reasonbrain.training.refine_decoder --checkpoint checkpoints/synth --data-dir data/synth "
    "--out runs/synth_decoder --steps 1500 --batch-size 32 --edit-weight 10.0 --val-every 300",
    "benchmarks/freeform_eval.py --checkpoint runs/synth_decoder/checkpoint "
    "--json-out runs/synth_decoder/freeform.json",
    "tools/add_reading_phase.py --refinement runs/synth_decoder --trained vae/decoder. vae/post_quant_conv. "
    "--freeform runs/synth_decoder/freeform.json --out checkpoints/synth",
]


def test_reader_plans_the_former_makefile_commands_in_order(reader, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no run folder here: every step runs
    assert [s.what for s in plan(reader)] == [
        "stage 1 (runs/synth_reader_mlp)", "stage 2 (runs/synth_reader_unet)",
        "recogniser (reasonbrain.training.train_recogniser)", "selection (tools/select_reader_checkpoint.py)",
        "freeform (benchmarks/freeform_eval.py)", "outcome (reasonbrain.training.train_outcome)",
        "outcome-eval (benchmarks/outcome_eval.py)", "reading-phase (tools/add_reading_phase.py)",
        "outcome-adapter (tools/add_reading_phase.py)", "decoder (reasonbrain.training.refine_decoder)",
        "decoder-freeform (benchmarks/freeform_eval.py)", "decoder-refinement (tools/add_reading_phase.py)"]
    reading = plan(reader, to_step="outcome-eval")
    assert [s.argv for s in reading] == [[sys.executable, *c.split()] for c in FORMER_READER_COMMANDS]
    checkpoint = plan(reader, from_step="reading-phase", to_step="outcome-adapter")
    assert [s.argv for s in checkpoint] == [[sys.executable, *c.split()] for c in FORMER_CHECKPOINT_COMMANDS]
    decoder = plan(reader, from_step="decoder")
    assert [s.argv for s in decoder] == [[sys.executable, *c.split()] for c in DECODER_COMMANDS]
    assert [c.output for c in reader.steps] == [
        "runs/synth_reader_unet/candidate/recogniser_summary.json", None, "runs/synth_reader_unet/freeform.json",
        "runs/synth_reader_unet/candidate-outcome/outcome_summary.json", "runs/synth_reader_unet/outcome_eval.json",
        None, None, "runs/synth_decoder/summary.json", "runs/synth_decoder/freeform.json", None]


def test_makefile_reading_targets_run_the_reader_recipe():
    makefile = (REPO / "Makefile").read_text()

    def target(name):
        return makefile[makefile.index(f"\n{name}:"):].split("\n\n")[0].strip().splitlines()

    assert target("synth-reader") == ["synth-reader: $(STAMP)", "\t$(BIN)/python -m reasonbrain.training.recipe run "
                                      "configs/recipes/synth_reader.json --to-step outcome-eval"]
    assert target("synth-checkpoint") == [
        "synth-checkpoint: synth-teacher synth-reader",
        "\t$(BIN)/python -m reasonbrain.training.recipe run configs/recipes/synth_reader.json --from-step reading-phase"]


def write_tiny_distill_recipe(root: Path) -> Path:
    recipe = {
        "trainer": "reasonbrain.training.distill_reader",
        "base": {"teacher": "teacher", "data_dir": "data/synth", "max_steps": 10},
        "stages": [{"config_file": str(root / "configs" / f"d{n}.json"), **extra,
                    "set": {"output_dir": str(root / "runs" / f"d{n}"), "seed": n}}
                   for n, extra in ((1, {}), (2, {}), (3, {"from_checkpoint": "checkpoint-000004"}))],
        "steps": [
            {"name": "train", "module": "some.module", "args": {"checkpoint": "{last_run}/checkpoint", "resume": True,
                                                                "quiet": False},
             "output": "{last_run}/done.json"},
            {"name": "check", "tool": str(root / "check.py"), "positional": ["{last_run}/a", "{last_run}/b"],
             "args": {"stride": 6}},
            {"name": "publish", "tool": str(root / "check.py"), "args": {"out": "{last_run}/published"}},
        ],
    }
    path = root / "reader.json"
    path.write_text(json.dumps(recipe))
    (root / "check.py").write_text("")
    return path


def test_distill_recipe_skips_finished_stages_resumes_stopped_ones_and_skips_made_outputs(tmp_path):
    recipe = load_recipe(str(write_tiny_distill_recipe(tmp_path)))
    runs = tmp_path / "runs"
    assert "init_reader" not in recipe.stage(1).config
    assert recipe.stage(2).config["init_reader"] == f"{runs / 'd1'}/checkpoint"
    assert recipe.stage(3).config["init_reader"] == f"{runs / 'd2'}/checkpoint-000004"
    assert write_config_files(recipe) == [s.config_file for s in recipe.stages]
    fake_run(runs / "d1", summary_steps=10)  # complete
    fake_run(runs / "d2", checkpoint=False)  # stopped: state.pt, no summary
    (runs / "d2" / "state.pt").write_bytes(b"")
    fake_run(runs / "d3", summary_steps=10)
    (runs / "d3" / "done.json").write_text("{}")  # the first step's output
    calls = []
    steps = run_recipe(recipe, threads=2, execute=lambda argv, env: calls.append(argv) or 0)
    assert [(s.what.split(" (")[0], s.status) for s in steps] == [
        ("stage 1", "complete at step 10, skipped"), ("stage 2", f"resume from {runs / 'd2' / 'state.pt'}"),
        ("stage 3", "complete at step 10, skipped"), ("train", f"{runs / 'd3' / 'done.json'} exists, skipped"),
        ("check", "run"), ("publish", "run")]
    assert calls == [
        [sys.executable, "-m", "reasonbrain.training.distill_reader", "--config", recipe.stage(2).config_file,
         "--resume"],
        [sys.executable, str(tmp_path / "check.py"), f"{runs / 'd3'}/a", f"{runs / 'd3'}/b", "--stride", "6"],
        [sys.executable, str(tmp_path / "check.py"), "--out", f"{runs / 'd3'}/published"]]

    # --from-step: only the steps from there on; --to-step: none after it; true is the bare flag, false none
    (runs / "d3" / "done.json").unlink()
    assert [s.what.split(" (")[0] for s in plan(recipe, from_step="train", to_step="check")] == ["train", "check"]
    assert plan(recipe, from_step="train")[0].argv == [
        sys.executable, "-m", "some.module", "--checkpoint", f"{runs / 'd3'}/checkpoint", "--resume"]
    assert [s.what.split(" (")[0] for s in plan(recipe, from_stage=3, to_step="train")] == ["stage 3", "train"]
    with pytest.raises(ValueError, match="step 'nowhere' is not in .*steps: train, check, publish"):
        plan(recipe, from_step="nowhere")
    with pytest.raises(ValueError, match="step 'train' comes before step 'check'"):
        plan(recipe, from_step="check", to_step="train")

    # a stage that sets init_reader itself is refused; a missing tool stops the run before any step
    raw = json.loads(Path(recipe.path).read_text())
    raw["stages"][1]["set"]["init_reader"] = "elsewhere"
    Path(recipe.path).write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="stage 2 sets init_reader"):
        load_recipe(recipe.path)
    (tmp_path / "check.py").unlink()
    with pytest.raises(ValueError, match="step check's tool .*check.py does not exist"):
        run_recipe(recipe, from_step="check", execute=lambda argv, env: pytest.fail("nothing may run"))
