"""tools/add_reading_phase.py --attach-outcome: the outcome adapter joins the bundled checkpoint only when the rest of
its weights are the checkpoint's own, and the card and metrics say what it does and how often it is right."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .scripts import load_script

REPO = Path(__file__).resolve().parent.parent

CARD = """# card

## Status
Fine.

## Reasoning accuracy on the held-out test split
table

## People's wording
Free-form figures.

## Miniature table 4 (component ablation, one training budget)
ablation
Checkpoint size 1.0 MB.
"""


def load_tool():
    return load_script("tools/add_reading_phase.py")


def shipped(root: Path) -> Path:
    out = root / "synth"
    (out / "unet").mkdir(parents=True)
    (out / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"unet weights")
    (out / "README.md").write_text(CARD)
    (out / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.95}}))
    (out / "loss_curve.png").write_bytes(b"png")
    return out


def outcome_checkpoint(root: Path, out: Path, unet: bytes = b"unet weights") -> Path:
    cand = root / "candidate-outcome"
    shutil.copytree(out, cand)
    (cand / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(unet)
    (cand / "mllm_outcome_adapter").mkdir()
    (cand / "mllm_outcome_adapter" / "adapter_model.safetensors").write_bytes(b"lora")
    (cand / "outcome_summary.json").write_text(json.dumps({
        "steps": 4000, "train_seconds": 2400.0, "chosen_step": 4000, "train_records": 16942, "val_records": 150,
        "adapter_parameters": 96256, "validation": {"own_both": 79.3, "rephrased_both": 66.7}, "config": {}}))
    return cand


def evaluation(root: Path) -> Path:
    cell = {"object": 90.0, "outcome": 85.0, "both": 77.5}
    path = root / "outcome_eval.json"
    path.write_text(json.dumps({"split": "test", "records": 400, "summary": {
        "causal": {"n": 100, "own": cell, "rephrased": cell}, "overall": {"n": 400, "own": cell, "rephrased": cell}}}))
    return path


def test_attaching_the_outcome_adapter_updates_card_and_metrics_once(tmp_path):
    tool = load_tool()
    out = shipped(tmp_path)
    cand, ev = outcome_checkpoint(tmp_path, out), evaluation(tmp_path)
    for _ in range(2):  # attaching again replaces the section instead of adding a second one
        assert tool.main(["--attach-outcome", str(cand), "--outcome-eval", str(ev), "--out", str(out)]) == 0
    assert (out / "mllm_outcome_adapter" / "adapter_model.safetensors").read_bytes() == b"lora"
    card = (out / "README.md").read_text()
    assert card.count("### What the model says it inferred") == 1 and "Free-form figures." in card
    people = card.split("## People's wording\n")[1].split("\n## ")[0]
    assert "| **overall** |" not in people and "| overall | 400 | 90.0 % | 77.5 % | 90.0 % | 77.5 % |" in people
    assert "4000 steps on 16,942 training records, 40 min on CPU" in people
    assert card.index("## People's wording") < card.index("## Miniature table 4")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"] == {"accuracy": 0.95} and metrics["outcome"]["summary"]["overall"]["n"] == 400
    assert "config" not in metrics["outcome"]["training"]


def test_an_adapter_trained_on_other_weights_is_refused(tmp_path):
    tool = load_tool()
    out = shipped(tmp_path)
    cand = outcome_checkpoint(tmp_path, out, unet=b"another unet")
    with pytest.raises(ValueError, match="was not built on"):
        tool.main(["--attach-outcome", str(cand), "--outcome-eval", str(evaluation(tmp_path)), "--out", str(out)])
    assert (out / "README.md").read_text() == CARD and not (out / "mllm_outcome_adapter").exists()
    shutil.rmtree(cand / "mllm_outcome_adapter")
    (cand / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"unet weights")
    with pytest.raises(ValueError, match="no mllm_outcome_adapter"):
        tool.main(["--attach-outcome", str(cand), "--outcome-eval", str(evaluation(tmp_path)), "--out", str(out)])


def test_the_wording_section_says_what_reading_costs_on_the_generators_wording():
    tool = load_tool()
    split = {"accuracy": 0.914, "n": 2005, "per_category": {"causal": 0.944, "story": 0.873}}
    teacher = {"test": {"accuracy": 0.933, "per_category": {"causal": 0.952, "story": 0.912}},
               "chains": {"1-step": 0.98, "2-step": 0.97, "chains": 100}}
    rephrased = {"accuracy": 0.806, "n": 1003, "per_category": {"causal": 0.829, "story": 0.699}}
    freeform = {"by_category": {"causal": {"n": 73, "freeform": 94.5, "generator": 94.5}}, "n_edits": 222,
                "overall": 87.8, "generator_overall": 95.0, "absent_refused": 96.0, "n_absent": 25,
                "false_refusals": 0.5}
    text = tool._people_text(rephrased, freeform, split, {"1-step": 0.98, "2-step": 0.96, "chains": 100}, teacher)
    assert "93.3% -> 91.4% (causal 95.2% -> 94.4%, story 91.2% -> 87.3%)" in text
    assert "chains (1 / 2 / 3 steps) 98.0% -> 98.0% / 97.0% -> 96.0%." in text
    assert "n=1003): 80.6% (causal 82.9%, story 69.9%)" in text and "| **overall** | 222 | **87.8 %** |" in text


def test_chain_figures_come_from_held_out_chains(tmp_path):
    """evaluate_chains scores the test split's chains by default (every chain only when asked)."""
    from types import SimpleNamespace

    from reasonbrain.evaluation.synth_eval import evaluate_chains
    from reasonbrain.synthworld.dataset import load_chains, write_dataset

    write_dataset(tmp_path, n=20, seed=4, resolution=64, n_chains=30, workers=1, progress=False)
    chains = load_chains(tmp_path)
    held_out = [c for c in chains if c.split == "test"]
    assert held_out and len(held_out) < len(chains)

    def pipe(image, instruction, **kwargs):  # a stand-in that leaves the picture as it is
        from reasonbrain.image_io import load_image
        return SimpleNamespace(images=[load_image(image) if isinstance(image, str) else image])

    assert evaluate_chains(pipe, str(tmp_path), progress=False)["chains"] == len(held_out)
    assert evaluate_chains(pipe, str(tmp_path), progress=False, split=None)["chains"] == len(chains)


def test_chain_figures_are_split_by_what_the_chains_hold_out(tmp_path):
    """per_holdout: chains whose every step is seen in training apart from those with a held-out template or
    kind x background; the card's chain sentence states both."""
    from types import SimpleNamespace

    from reasonbrain.evaluation.synth_eval import chains_text, evaluate_chains
    from reasonbrain.image_io import load_image
    from reasonbrain.synthworld.accuracy import holdout_group
    from reasonbrain.synthworld.dataset import load_chains, write_dataset

    write_dataset(tmp_path, n=20, seed=9, resolution=64, n_chains=30, workers=1, progress=False)
    held = [c for c in load_chains(tmp_path) if c.split == "test"]
    seen = [c for c in held if all(holdout_group(r) == "seen" for r in c.steps)]
    assert len(seen) == 1 and len(held) == 4 and len(seen[0].steps) == 3
    answer = {r.instruction: r.path(r.tgt_image if c in seen else r.src_image) for c in held for r in c.steps}
    assert len(answer) == 11

    def pipe(image, instruction, **kwargs):  # right on the seen chain's steps, "no change" (never right) elsewhere
        return SimpleNamespace(images=[load_image(answer[instruction])])

    result = evaluate_chains(pipe, str(tmp_path), progress=False)
    assert result["per_holdout"] == {"seen": {"1-step": 1.0, "2-step": 1.0, "3-step": 1.0},
                                     "held out": {"1-step": 0.0, "2-step": 0.0, "3-step": 0.0}}
    assert result["count_per_holdout"] == {"seen": {1: 1, 2: 1, 3: 1}, "held out": {1: 3, 2: 3, 3: 2}}
    assert result["1-step"] == 0.25 and result["count_per_depth"] == {1: 4, 2: 4, 3: 3}
    assert chains_text(result) == (
        "1-step: 25.0% / 2-step: 25.0% / 3-step: 33.3% (chains holding nothing out from training (1): 100.0% / "
        "100.0% / 100.0%; chains with a held-out template or kind x background (3): 0.0% / 0.0% / 0.0%)")
    assert chains_text({"1-step": 0.5, "chains": 2}) == "1-step: 50.0%"  # results from before the split


def test_rewriting_the_bundled_card_from_its_metrics_changes_nothing_and_restores_figures(tmp_path):
    """--rewrite-card writes every reading and outcome section from metrics.json alone: on the shipped card it is a
    no-op, and a figure edited by hand comes back."""
    tool = load_tool()
    out = tmp_path / "synth"
    out.mkdir()
    for name in ("README.md", "metrics.json", "outcome_summary.json"):
        shutil.copy(REPO / "checkpoints" / "synth" / name, out / name)
    card = (out / "README.md").read_text()
    assert tool.main(["--rewrite-card", "--out", str(out)]) == 0
    assert (out / "README.md").read_text() == card
    test = json.loads((out / "metrics.json").read_text())["test"]
    shown = f"**{test['accuracy']:.1%}**"
    assert shown in card
    (out / "README.md").write_text(card.replace(shown, "**99.9%**"))
    tool.rewrite_card(str(out))
    assert (out / "README.md").read_text() == card


def bundled_copy(root: Path, name: str, vae: dict) -> Path:
    """A checkpoint folder with the bundled card, metrics and outcome summary, and the given VAE tensors."""
    from safetensors.torch import save_file

    out = root / name
    (out / "vae").mkdir(parents=True)
    for f in ("README.md", "metrics.json", "outcome_summary.json", "loss_curve.png"):
        shutil.copy(REPO / "checkpoints" / "synth" / f, out / f)
    save_file(vae, str(out / "vae" / "diffusion_pytorch_model.safetensors"))
    return out


def test_a_refinement_ships_only_its_trained_tensors_and_joins_the_card_once(tmp_path, monkeypatch):
    import torch

    tool = load_tool()
    weights = {"encoder.conv_in.weight": torch.zeros(2, 2), "decoder.conv_out.weight": torch.zeros(2, 2)}
    out = bundled_copy(tmp_path, "synth", weights)
    run = tmp_path / "refine"
    bundled_copy(run, "checkpoint", {**weights, "decoder.conv_out.weight": torch.ones(2, 2)})
    before = {"n": 1190, "recon_l1": 0.01265, "oracle_accuracy": 0.9748,
              "oracle_per_transformation": {"plant_bloom": 0.364, "balloon_deflate": 0.667, "log_split": 0.85,
                                            "ice_melt": 1.0}}
    after = {**before, "recon_l1": 0.0121, "oracle_accuracy": 0.99,
             "oracle_per_transformation": {"plant_bloom": 0.9, "balloon_deflate": 0.933, "log_split": 1.0,
                                           "ice_melt": 1.0}}
    (run / "summary.json").write_text(json.dumps({
        "module": "reasonbrain.training.refine_decoder", "config": {"steps": 1500, "batch_size": 32, "learning_rate": 2e-4, "edit_weight": 10.0, "seed": 0},
        "chosen_step": 1200, "wall_time_s": 1500.0, "train_records": 18887, "validation_before": before,
        "validation_after": after}))
    metrics = json.loads((out / "metrics.json").read_text())
    figures = {k: metrics[k] for k in ("test", "test_rephrased", "ci_subset", "chains", "freeform")}
    figures["test"] = {**figures["test"], "accuracy": 0.951}
    monkeypatch.setattr(tool, "_evaluate", lambda checkpoint, args: figures)  # the evaluations are tested apart
    freeform = tmp_path / "freeform.json"
    freeform.write_text("{}")
    argv = ["--refinement", str(run), "--trained", "vae/decoder.", "vae/post_quant_conv.", "--freeform",
            str(freeform), "--out", str(out)]
    for _ in range(2):  # shipping the same run again replaces its item instead of adding a second one
        assert tool.main(argv) == 0
    shipped_vae = (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert shipped_vae == (run / "checkpoint" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    card = (out / "README.md").read_text()
    marker = ". Refinement (`python -m reasonbrain.training.refine_decoder`): "
    bundled = (REPO / "checkpoints" / "synth" / "README.md").read_text().count(marker)
    assert card.count(marker) == bundled + 1 and "**95.1%**" in card  # the bundled card's own refinements stay
    item = card.split(f"{marker}`{run}`")[1].split("\n")[0]
    assert "`vae/decoder.`, `vae/post_quant_conv.` (every other weight is the previous" in item
    assert "steps 1500, batch size 32, learning rate 0.0002, edit weight 10.0; 18,887 training records" in item
    assert "97.5% -> 99.0% (the three lowest before: plant_bloom 36.4% -> 90.0%, balloon_deflate 66.7% -> " in item
    assert card.index("Reading people's wording") < card.index(str(run)) < card.index("Export and evaluation")
    assert "### What the model says it inferred" in card  # the untouched outcome adapter keeps its section
    shipped = json.loads((out / "metrics.json").read_text())
    assert [r["chosen_step"] for r in shipped["refinements"] if r["run"] == str(run)] == [1200]
    assert shipped["test"]["accuracy"] == 0.951
    assert tool.main(["--rewrite-card", "--out", str(out)]) == 0 and (out / "README.md").read_text() == card


def test_a_refinement_that_changes_other_tensors_is_refused(tmp_path, monkeypatch):
    import torch

    tool = load_tool()
    weights = {"encoder.conv_in.weight": torch.zeros(2, 2), "decoder.conv_out.weight": torch.zeros(2, 2)}
    out = bundled_copy(tmp_path, "synth", weights)
    card = (out / "README.md").read_text()
    run = tmp_path / "refine"
    bundled_copy(run, "checkpoint", {**weights, "encoder.conv_in.weight": torch.ones(2, 2)})
    (run / "summary.json").write_text("{}")
    monkeypatch.setattr(tool, "_evaluate", lambda checkpoint, args: pytest.fail("evaluated a refused checkpoint"))
    argv = ["--refinement", str(run), "--trained", "vae/decoder.", "--freeform", "f.json", "--out", str(out)]
    with pytest.raises(SystemExit):  # what it may change must be named, and its free-form figures given
        tool.main(["--refinement", str(run), "--freeform", "f.json", "--out", str(out)])
    with pytest.raises(ValueError, match="changes tensors outside .* vae/encoder.conv_in.weight"):
        tool.main(argv)
    (run / "checkpoint" / "unet").mkdir()
    (run / "checkpoint" / "unet" / "model.safetensors").write_bytes(b"new")
    with pytest.raises(ValueError, match=r"different weight files: \['unet/model.safetensors'\]"):
        tool.main(argv)
    assert (out / "README.md").read_text() == card
