"""``python -m reasonbrain evaluate`` end to end on a tiny generated synth dataset with tiny metric models."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from reasonbrain.__main__ import main
from reasonbrain.evaluation.evaluate import (
    EvalRecord,
    FolderEditor,
    MetricSuite,
    evaluate_records,
    load_chain_records,
    load_records,
    resolve_metrics,
    run_sharded,
)
from reasonbrain.evaluation.judge import FakeJudge
from reasonbrain.synthworld import load_split, reasoning_accuracy, write_dataset
from tests.metric_fixtures import save_tiny_clip, save_tiny_dino

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """8 single test samples + 2 chains; outputs: even records copy the target (right), odd the source (no change)."""
    root = tmp_path_factory.mktemp("evalworld")
    data = root / "data"
    write_dataset(data, n=8, seed=0, resolution=64, n_chains=2, workers=1, split_fractions=(0.0, 0.0, 1.0),
                  progress=False)
    outputs = root / "outputs"
    outputs.mkdir()
    expected = {}
    for k, rec in enumerate(load_split(data, "test")):
        right = k % 2 == 0
        shutil.copy(rec.path(rec.tgt_image if right else rec.src_image), outputs / f"{rec.id}.png")
        expected[rec.id] = right
    return {"data": data, "outputs": outputs, "expected": expected, "clip": save_tiny_clip(root / "clip"),
            "dino": save_tiny_dino(root / "dino")}


def run_cli(*args) -> int:
    return main(["evaluate", *map(str, args)])


def test_outputs_folder_end_to_end(world, tmp_path):
    out = tmp_path / "out"
    rc = run_cli("--outputs", world["outputs"], "--data", world["data"], "--clip-model", world["clip"],
                 "--dino-model", world["dino"], "--out", out, "--chains", "--no-progress", "--batch-size", 3)
    assert rc == 0
    result = json.loads((out / "metrics.json").read_text())
    metrics = ["clip", "clip_i", "clip_dir", "clip_out", "l1", "dino", "identity", "accuracy"]
    assert result["metrics"] == metrics
    rows = {r["id"]: r for r in result["records"]}
    assert len(rows) == 8 and all(not i.startswith("chain") for i in rows)
    for rid, row in rows.items():
        for m in ("clip", "clip_i", "clip_dir", "clip_out", "dino"):
            assert -1 - 1e-9 <= row[m] <= 1 + 1e-9
        assert row["clip"] == row["clip_out"]
        if world["expected"][rid]:  # the edit is the target
            assert row["l1"] == 0.0 and row["accuracy"] == 1.0
            assert row["clip_i"] == pytest.approx(1.0, abs=1e-5) and row["dino"] == pytest.approx(1.0, abs=1e-5)
        else:  # no change: wrong, but nothing outside the edit region was touched
            assert row["accuracy"] == 0.0 and row["identity"] == 1.0 and row["clip_dir"] == 0.0
    # the accuracy column agrees with the synth world's own reasoning_accuracy
    recs = [r for r in load_split(world["data"], "test") if r.chain_id is None]
    ref = reasoning_accuracy(recs, {r.id: world["outputs"] / f"{r.id}.png" for r in recs})
    table = result["table"]
    assert table["overall"]["accuracy"] == pytest.approx(ref["accuracy"]) == pytest.approx(0.5)
    for cat, acc in ref["per_category"].items():
        assert table[cat]["accuracy"] == pytest.approx(acc) and table[cat]["n"] == ref["count_per_category"][cat]
    md = (out / "metrics.md").read_text()
    assert "| **overall** | 8 |" in md and "CLIP-dir" in md and "Reasoning accuracy" in md
    for name in ("metrics", "chains"):
        assert (out / f"{name}.png").read_bytes()[:8] == PNG
    chains = json.loads((out / "chains.json").read_text())
    assert {"1-step", "2-steps", "overall"} <= set(chains["table"])
    assert chains["table"]["overall"]["n"] == sum(1 for r in chains["records"])
    for row in chains["records"]:
        assert row["accuracy"] == float(world["expected"][row["id"]])
    assert "| 1-step |" in (out / "chains.md").read_text()


def test_deselected_metrics_need_no_model_and_missing_models_are_named(world, tmp_path, capsys):
    out = tmp_path / "out"
    # the default CLIP / DINO ids are not loadable offline, but l1 + identity need neither
    assert run_cli("--outputs", world["outputs"], "--data", world["data"], "--metrics", "l1,identity",
                   "--out", out, "--no-progress", "--limit", 2) == 0
    assert json.loads((out / "metrics.json").read_text())["table"]["overall"]["n"] == 2
    rc = run_cli("--outputs", world["outputs"], "--data", world["data"], "--metrics", "clip_i",
                 "--clip-model", "reasonbrain-tests/no-such-clip", "--out", out, "--no-progress")
    err = capsys.readouterr().err
    assert rc == 2 and "reasonbrain-tests/no-such-clip" in err and "--clip-model" in err and "clip_i" in err
    assert run_cli("--outputs", world["outputs"], "--data", world["data"], "--metrics", "clip,bogus",
                   "--out", out) == 2
    assert "bogus" in capsys.readouterr().err


def test_missing_output_names_the_record(world, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    assert run_cli("--outputs", partial, "--data", world["data"], "--metrics", "l1", "--out", tmp_path / "o",
                   "--no-progress") == 2
    assert "synth-000000" in capsys.readouterr().err


def _plain_reason50k(folder):
    """A Reason50K-format split without captions or alternatives (real-data style)."""
    (folder / "img").mkdir(parents=True)
    rows = []
    for i in range(2):
        Image.new("RGB", (48, 32), (40, 90, 160)).save(folder / "img" / f"{i}_src.png")
        tgt = np.full((32, 48, 3), (40, 90, 160), np.uint8)
        tgt[8:16, 8:24] = 250
        Image.fromarray(tgt).save(folder / "img" / f"{i}_tgt.png")
        rows.append({"id": f"r{i}", "category": "physical", "src_image": f"img/{i}_src.png",
                     "tgt_image": f"img/{i}_tgt.png", "instruction": "What if the lamp turned on?", "objects": ["lamp"]})
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_default_selection_follows_what_the_data_has(world, tmp_path, capsys):
    data = _plain_reason50k(tmp_path / "plain")
    records = load_records(data, "test")
    assert resolve_metrics(None, records) == ["clip_i", "l1", "dino", "identity"]
    with pytest.raises(ValueError, match="alternative outcomes"):
        resolve_metrics("accuracy", records)
    with pytest.raises(ValueError, match="output caption"):
        resolve_metrics("clip", records)
    outputs = tmp_path / "outs"
    outputs.mkdir()
    for i in range(2):
        shutil.copy(data / "img" / f"{i}_src.png", outputs / f"r{i}.png")
    out = tmp_path / "out"
    assert run_cli("--outputs", outputs, "--data", data, "--clip-model", world["clip"], "--dino-model", world["dino"],
                   "--out", out, "--no-progress") == 0
    table = json.loads((out / "metrics.json").read_text())["table"]
    assert table["overall"]["identity"] == 1.0  # the unchanged source keeps everything outside the lamp
    assert table["overall"]["l1"] == pytest.approx((8 * 16 * (3 * 250 - 40 - 90 - 160) / 3 / 255) / (32 * 48), rel=1e-6)
    assert run_cli("--outputs", outputs, "--data", data, "--metrics", "accuracy", "--out", out) == 2
    assert "alternative" in capsys.readouterr().err


def test_checkpoint_mode_runs_the_pipeline(world, tmp_path):
    import torch

    from reasonbrain import ReasonBrainConfig, ReasonBrainEditPipeline

    torch.manual_seed(0)
    ckpt = tmp_path / "ckpt"
    ReasonBrainEditPipeline.from_config(ReasonBrainConfig.from_preset("tiny")).save_pretrained(ckpt)
    out = tmp_path / "out"
    assert run_cli("--checkpoint", ckpt, "--data", world["data"], "--limit", 1, "--steps", 1, "--metrics",
                   "l1,accuracy", "--chains", "--out", out, "--no-progress") == 0
    result = json.loads((out / "metrics.json").read_text())
    assert [r["id"] for r in result["records"]] == ["synth-000000"]
    assert all(r["seconds_per_edit"] > 0 and 0 < r["l1"] < 1 for r in result["records"])
    chain_rows = json.loads((out / "chains.json").read_text())["records"]
    assert [r["step"] for r in chain_rows] == list(range(len(chain_rows))) and len(chain_rows) >= 2  # one chain
    for rid in ["synth-000000", *(r["id"] for r in chain_rows)]:
        with Image.open(out / "edits" / f"{rid}.png") as im:
            assert im.size == (64, 64)
    made_by = json.loads((out / "method.json").read_text())  # the checkpoint's declared mode, named beside edits/
    assert (made_by["method"], made_by["model"], made_by["edits"]) == ("reasonbrain", "tiny @ckpt", "edits")
    assert made_by["records"] == str(world["data"] / "test.jsonl") and made_by["backbones"] == {"checkpoint": str(ckpt)}
    assert result["settings"]["method"] == "reasonbrain" and result["settings"]["model"] == "tiny @ckpt"


def test_method_option_runs_reason_then_edit_on_records_and_chains(world, tmp_path):
    from tests.method_fixtures import save_backbones_checkpoint

    ckpt = save_backbones_checkpoint(tmp_path / "backbones")
    out = tmp_path / "out"
    assert run_cli("--checkpoint", ckpt, "--method", "reason_then_edit", "--data", world["data"], "--limit", 1,
                   "--steps", 1, "--metrics", "l1", "--chains", "--out", out, "--no-progress") == 0
    made_by = json.loads((out / "method.json").read_text())
    assert (made_by["method"], made_by["model"]) == ("reason_then_edit", "tiny @ckpt")
    assert made_by["backbones"]["mllm"] == str(tmp_path / "backbones" / "mllm") and made_by["settings"]["steps"] == 1
    chain_rows = json.loads((out / "chains.json").read_text())["records"]
    for rid in ["synth-000000", *(r["id"] for r in chain_rows)]:
        with Image.open(out / "edits" / f"{rid}.png") as im:
            assert im.size == (64, 64)
    assert "reason_then_edit (tiny @ckpt)" in (out / "chains.md").read_text()
    # scoring that folder again names the method from its method.json
    again = tmp_path / "again"
    assert run_cli("--outputs", out / "edits", "--data", world["data"], "--limit", 1, "--metrics", "l1",
                   "--out", again, "--no-progress") == 0
    assert json.loads((again / "metrics.json").read_text())["settings"]["method"] == "reason_then_edit"
    assert not (again / "method.json").exists()


def test_mllm_metric_through_the_suite_with_a_fake_judge(world):
    records = load_records(world["data"], "test", limit=3)
    judge = FakeJudge(["1", "The edit failed: 0", "???"])
    rows = MetricSuite(["mllm", "l1"], judge=judge).compute(records, [Image.open(r.target) for r in records])
    assert [r["mllm"] for r in rows] == [1.0, 0.0, 0.0]
    assert [r["mllm_parsed"] for r in rows] == [True, True, False] and rows[2]["mllm_answer"] == "???"
    assert records[0].output_text in judge.prompts[0] and records[0].instruction in judge.prompts[0]
    with pytest.raises(ValueError, match="judge"):
        MetricSuite(["mllm"])


def test_records_chains_and_sharding_helpers(world):
    records = load_records(world["data"], "test")
    assert len(records) == 8 and all(isinstance(r, EvalRecord) and r.alternatives for r in records)
    assert records[0].output_text and records[0].input_text
    chains = load_chain_records(world["data"], "test")
    assert len(chains) == 2 and [s.step for s in chains[0]] == list(range(len(chains[0])))
    assert load_chain_records(world["data"], "train") == []
    rows = run_sharded(list("abcde"), lambda i, u: [{"i": i, "u": u}], progress=False)
    assert rows == [{"i": i, "u": u} for i, u in enumerate("abcde")]
    rows = evaluate_records(records[:3], FolderEditor(world["outputs"]), MetricSuite(["l1"]), batch_size=2,
                            progress=False)
    assert [r["id"] for r in rows] == [r.id for r in records[:3]] and "seconds_per_edit" not in rows[0]


def test_other_subcommands_still_work(capsys):
    assert main(["presets"]) == 0
    assert "tiny" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "--clip-model" in capsys.readouterr().out


def test_mllm_judge_from_a_local_folder_via_the_cli(world, tmp_path):
    from tests.metric_fixtures import save_tiny_llava_judge

    judge = save_tiny_llava_judge(tmp_path / "judge")
    out = tmp_path / "out"
    assert run_cli("--outputs", world["outputs"], "--data", world["data"], "--metrics", "mllm", "--judge-model", judge,
                   "--judge-prompt", "rating", "--limit", 2, "--out", out, "--no-progress") == 0
    rows = json.loads((out / "metrics.json").read_text())["records"]
    assert len(rows) == 2
    for row in rows:
        assert 0.0 <= row["mllm"] <= 1.0 and isinstance(row["mllm_answer"], str) and isinstance(row["mllm_parsed"], bool)
