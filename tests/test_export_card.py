"""tools/export_synth_checkpoint.py: the model card's per-phase text from several training runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .scripts import load_script

REPO = Path(__file__).resolve().parent.parent


def load_tool():
    return load_script("tools/export_synth_checkpoint.py")


def fake_run(root: Path, name: str, wall_s: float, init: str | None, **extra) -> str:
    run = root / "runs" / name
    run.mkdir(parents=True)
    config = {"output_dir": f"runs/{name}", "data_dir": "data/synth", "batch_size": 16, "learning_rate": 4e-4,
              "weight_decay": 0.01, "val_samples": 64, "edit_region_weight": 5.0, "target_latents": "mode"}
    if init:
        config["init_checkpoint"] = init
    summary = {"steps": 100, "wall_time_s": wall_s}
    if "hardware" in extra:
        summary["hardware"] = extra.pop("hardware")
    config.update(extra)
    (run / "train_config.json").write_text(json.dumps(config))
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "metrics.csv").write_text("step,mllm_loss,dm_loss,loss,lr,elapsed_s\n100,0.0,0.05,0.05,0.0,10\n")
    (run / "validation.csv").write_text("step,n,accuracy\n100,64,0.625\n")
    return str(run)


def test_three_phases_name_their_recipes_and_add_up_their_time(tmp_path):
    tool = load_tool()
    runs = [fake_run(tmp_path, "synth", 3000, None),
            fake_run(tmp_path, "synth_stage2", 2700, "runs/synth/checkpoint"),
            fake_run(tmp_path, "synth_stage3", 3660, "runs/synth_stage2/checkpoint")]
    phases = [tool._read_run(r) for r in runs]
    assert [p["config_file"] for p in phases] == [
        "configs/train_synth.json", "configs/train_synth_stage2.json", "configs/train_synth_stage3.json"]
    assert all((REPO / p["config_file"]).is_file() for p in phases)  # the recipes the card names exist
    text = tool._phase_text(4, phases[2])
    assert text.startswith("4. ") and "continued from `runs/synth_stage2/checkpoint`" in text
    assert "62.5% at step 100" in text
    assert tool._minutes_text(1980 + sum(p["summary"]["wall_time_s"] for p in phases)) == "3 h 09 min"
    assert tool._minutes_text(59 * 60) == "59 min"


def test_a_gpu_phase_stopped_early_with_extra_data_is_described(tmp_path):
    tool = load_tool()
    cpu = fake_run(tmp_path, "synth_stage3", 3660, "runs/synth_stage2/checkpoint")
    gpu = fake_run(tmp_path, "synth_stage4", 212, "checkpoints/synth", hardware="NVIDIA H200 GPU, torch 2.11, fp32",
                   max_steps=3356, batch_size=128, extra_train_dirs=["data/synth_extra"])
    phases = [tool._read_run(r) for r in (cpu, gpu)]
    assert phases[1]["config_file"] == "configs/train_synth_stage4.json"
    assert (REPO / phases[1]["config_file"]).is_file()
    here = "x86_64 CPU, 2 threads"
    for p in phases:
        p["hardware"] = p["hardware"] or here
    text = tool._phase_text(5, phases[1])
    assert "100 steps (stopped early; the cosine schedule spans 3356)" in text and "batch 128" in text
    assert "on NVIDIA H200 GPU" in text and "`data/synth_extra`" in text
    assert tool._train_time_text(1980, phases, here) == (
        "1 h 34 min (x86_64 CPU, 2 threads) + 4 min (NVIDIA H200 GPU, torch 2.11, fp32)")
    assert tool._train_time_text(0, phases[:1], here) == "1 h 01 min"


def test_a_phase_that_switches_on_the_grounding_map_says_so(tmp_path):
    tool = load_tool()
    run = fake_run(tmp_path, "synth_stage6", 4000, "runs/synth_stage5/checkpoint",
                   components={"grounding_map": True}, grounding_loss_weight=0.05)
    phase = tool._read_run(run)
    assert (REPO / phase["config_file"]).is_file()
    text = tool._phase_text(7, phase)
    assert "Switched on (new modules start at zero): `grounding_map`." in text
    assert "Grounding loss weight 0.05" in text
    plain = tool._phase_text(7, tool._read_run(fake_run(tmp_path, "synth_stage5", 10, "runs/synth_stage4/checkpoint")))
    assert "Grounding" not in plain and "Switched on" not in plain and "re-framing" not in plain
    stage9 = tool._read_run(fake_run(tmp_path, "synth_stage9", 1800, "runs/synth_stage8/checkpoint",
                                     grounding_loss_weight=0.5, instruction_reframing=0.5))
    assert "Instruction re-framing 50% (that share of instructions keeps its object" in tool._phase_text(10, stage9)


def test_a_summary_note_is_kept_in_the_phase_text(tmp_path):
    tool = load_tool()
    stage7 = tool._read_run(fake_run(tmp_path, "synth_stage7", 300, "runs/synth_stage6/checkpoint",
                                     grounding_loss_weight=0.5))
    text = tool._phase_text(8, stage7)
    assert "Switched on" not in text and "Grounding loss weight 0.5" in text and "Note:" not in text
    stage7["summary"]["note"] = "the run was killed during its final save; the checkpoint is the step-1500 save"
    assert "Note: the run was killed during its final save; the checkpoint is the step-1500 save." in (
        tool._phase_text(8, stage7))

def test_the_status_line_names_the_categories_under_target_or_says_that_none_are():
    tool = load_tool()
    weak = tool.status_text({"accuracy": 0.626, "n": 2005, "per_category": {"story": 0.542, "temporal": 0.85}})
    assert weak.startswith("**Below the product target**") and "categories under it: story 54.2%" in weak
    assert "many edits are wrong" in weak and "temporal" not in weak
    close = tool.status_text({"accuracy": 0.855, "n": 2005, "per_category": {"story": 0.869, "physical": 0.831}})
    assert close.startswith("**Below the product target**") and "every category meets it" in close
    assert "about one edit in 7 is wrong" in close
    met = tool.status_text({"accuracy": 0.91, "n": 2005, "per_category": {"story": 0.85}})
    assert met.startswith("Meets the product target: 91.0% overall")


def fake_reader_run(root: Path, name: str, config_file: str | None, **config) -> Path:
    run = root / name
    (run / "checkpoint").mkdir(parents=True)
    cfg = {"table": "wordllama-l2-supercat-256", "train_images": 4000, "batch_size": 32, "learning_rate": 1e-3,
           "rephrase_probability": 0.6, "init_reader": None, "unet_loss_weight": 0.0, **config}
    (run / "summary.json").write_text(json.dumps({"steps": 4000, "seconds": 1200.0, "config_file": config_file,
                                                  "config": cfg}))
    return run


def test_a_two_stage_reading_phase_names_both_recipes_in_order(tmp_path):
    tool = load_tool()
    first = fake_reader_run(tmp_path, "mlp", "configs/distill_a.json")
    second = fake_reader_run(tmp_path, "unet", "configs/distill_b.json", init_reader=str(first / "checkpoint"),
                             unet_loss_weight=1.0, learning_rate=3e-4)
    (second / "checkpoint" / "recogniser_summary.json").write_text(json.dumps(
        {"images": 9000, "seconds": 300, "validation": {"recall": 1.0, "false_presence": 0.01}}))
    reader = tool._read_reader_run(str(second), str(second / "checkpoint"))
    assert [s["config_file"] for s in reader["stages"]] == ["configs/distill_a.json", "configs/distill_b.json"]
    text = tool._reading_text(reader, None, 11)
    assert text.startswith("11. Reading people's wording") and "2 stages on 4000 training images" in text
    assert text.index("`configs/distill_a.json`, from a new reader") < text.index(
        "`configs/distill_b.json`, from the previous stage's reader")
    assert "UNet's prediction under both conditionings matched (weight 1.0" in text and "lr 0.0003" in text
    assert "100.0% of the objects present" in text

    (first / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="summary.json is missing"):
        tool._read_reader_run(str(second), str(second / "checkpoint"))


def test_the_runs_and_their_recipes_come_from_the_training_recipe(tmp_path):
    tool = load_tool()
    with pytest.raises(ValueError, match="runs/synth_other is not the output_dir of a stage"):
        tool._read_run(fake_run(tmp_path, "synth_other", 10, "runs/synth_stage8/checkpoint"))
    with pytest.raises(ValueError, match="runs/nowhere is not the output_dir of a stage"):  # before any evaluation
        tool.main(["--run", "runs/nowhere", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out.tmp").exists()
