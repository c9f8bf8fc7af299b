"""Training: Reason50K-format reading, the accelerate loop (loss falls, logs, resume, checkpoint)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from reasonbrain.training.data import Reason50KDataset, read_split
from reasonbrain.training.train import TrainConfig, main, train


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    from reasonbrain.synthworld.dataset import write_dataset

    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, n=60, seed=1, resolution=64, workers=1)
    return out


def test_read_split_and_dataset(synth_data):
    records = read_split(synth_data / "train.jsonl")
    assert records and all(r.src_image.startswith(str(synth_data)) for r in records)
    assert "alternatives" in records[0].extra and records[0].objects
    from reasonbrain.synthworld import VOCABULARY
    from reasonbrain.synthworld.segmenter import ColorSegmentsRegionProposer

    ds = Reason50KDataset(records, resolution=64, grid_size=8, max_regions=8,
                          region_proposer=ColorSegmentsRegionProposer(max_regions=8), vocabulary=VOCABULARY)
    batch = ds.collate([ds[0], ds[1]])
    assert batch.source.shape == batch.target.shape == (2, 3, 64, 64)
    assert batch.region_masks.shape == (2, 8, 8, 8) and batch.region_valid.any(dim=1).all()
    assert all(t.startswith("<obj>") and t != "<obj> </obj>" for t in batch.object_tokens)

    from reasonbrain.synthworld.instructions import reframe_record

    reframed = Reason50KDataset(records, resolution=64, grid_size=8, max_regions=8, vocabulary=VOCABULARY,
                                instruction_transform=lambda rec, rng: reframe_record(rec, rng, probability=1.0))
    items = [reframed[i] for i in range(len(records))]
    assert sum(it["instruction"] != rec.instruction for it, rec in zip(items, records)) > len(records) // 2
    import random

    assert all(reframe_record(rec, random.Random(0), probability=0.0) == rec.instruction for rec in records)
    plain = Reason50KDataset(records, resolution=64, grid_size=8, max_regions=8, vocabulary=VOCABULARY)
    assert [it["object_token"] for it in items] == [plain[i]["object_token"] for i in range(len(records))]


def test_read_split_rejects_malformed_records(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "category": "physical"}\n')
    with pytest.raises(ValueError, match="lacks the Reason50K fields"):
        read_split(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_split(path)


def test_training_loss_falls_logs_and_resumes(synth_data, tmp_path):
    cfg = TrainConfig(
        preset="tiny", model_overrides={"regions": {"backend": "color_segments", "config": {}},
                                        "defaults": {"referring_vocabulary": "synthworld"}},
        data_dir=str(synth_data), output_dir=str(tmp_path / "run"), max_steps=24, batch_size=4,
        learning_rate=3e-3, lr_warmup_steps=2, log_every=1, val_every=24, val_samples=3, val_steps=1,
        save_every=12, vae_steps=2, vae_batch_size=4, cond_dropout=0.0, edit_region_weight=4.0,
    )
    summary = train(cfg)
    vae = json.loads((tmp_path / "run" / "vae_report.json").read_text())
    assert vae["steps"] == 2 and 0 < vae["recon_l1"] < 1 and 0.0 <= vae["oracle_accuracy"] <= 1.0
    assert summary["steps"] == 24
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert len(rows) == 24 and set(rows[0]) >= {"step", "loss", "dm_loss", "mllm_loss", "lr"}
    first = sum(float(r["loss"]) for r in rows[:4]) / 4
    last = sum(float(r["loss"]) for r in rows[-4:]) / 4
    assert last < 0.8 * first, (first, last)
    val = summary["validation"]
    n_val = len(read_split(synth_data / "val.jsonl"))
    assert val["n"] == min(3, n_val) >= 1 and 0.0 <= val["accuracy"] <= 1.0 and val["l1"] > 0
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000
    assert list((tmp_path / "run" / "samples").glob("step-*.png"))
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    pipe = ReasonBrainEditPipeline.from_pretrained(tmp_path / "run" / "checkpoint")
    assert pipe(str(synth_data / read_split(synth_data / "val.jsonl")[0].src_image), "What if the ice melted?",
                seed=0, num_inference_steps=1).images
    # resume continues from the saved step
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps({**cfg.__dict__, "max_steps": 26, "adam_betas": list(cfg.adam_betas)}))
    assert main(["--config", str(cfg_path), "--resume"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["step"]) for r in rows[-2:]] == [25, 26]

    # a continuation phase (init_checkpoint) starts from the saved weights, VAE included, and trains them further
    import torch

    # (with extra training data, and stopped by max_wall_time_s after its first step, saving a checkpoint)
    from reasonbrain.synthworld.dataset import write_dataset

    write_dataset(tmp_path / "extra", n=6, seed=2, resolution=64, workers=1, n_chains=0, split_fractions=(1, 0, 0),
                  progress=False)
    cont = dataclasses.replace(cfg, init_checkpoint=str(tmp_path / "run" / "checkpoint"), vae_steps=0, max_steps=50,
                               output_dir=str(tmp_path / "stage2"), model_overrides={}, save_every=50, val_every=50,
                               extra_train_dirs=[str(tmp_path / "extra")], max_wall_time_s=0.0, lr_warmup_steps=0)
    start = ReasonBrainEditPipeline.from_pretrained(tmp_path / "run" / "checkpoint").model
    summary = train(cont)
    assert summary["steps"] == 1 and summary["max_steps"] == 50 and summary["validation"]["n"] >= 1
    assert summary["hardware"].startswith(("x86_64 CPU", "aarch64 CPU")) and summary["hardware"].endswith("fp32")
    # stop_after_steps; this phase also switches the grounding map on and supervises the ID Controller
    stopped = train(dataclasses.replace(cont, max_wall_time_s=None, stop_after_steps=2, val_every=2, log_every=1,
                                        output_dir=str(tmp_path / "stopped"), components={"grounding_map": True},
                                        grounding_loss_weight=0.5))
    assert stopped["steps"] == 2 and (tmp_path / "stopped" / "checkpoint").is_dir()
    rows = list(csv.DictReader(open(tmp_path / "stopped" / "metrics.csv")))
    assert all(float(r["grounding_loss"]) > 0 and 0 <= float(r["grounding_hit"]) <= 1 for r in rows)
    grounded = ReasonBrainEditPipeline.from_pretrained(tmp_path / "stopped" / "checkpoint").model
    assert grounded.config.components.grounding_map and grounded.conditioning.grounding_to_input.abs().sum() > 0
    after = ReasonBrainEditPipeline.from_pretrained(tmp_path / "stage2" / "checkpoint").model
    assert torch.equal(start.vae.decoder.conv_out.weight, after.vae.decoder.conv_out.weight)  # frozen
    assert not torch.equal(start.unet.conv_in.weight, after.unet.conv_in.weight)
    with pytest.raises(FileNotFoundError):
        train(dataclasses.replace(cont, extra_train_dirs=[str(tmp_path / "missing")], output_dir=str(tmp_path / "m")))
    # train_only: a fine-tune of the UNet alone leaves every other weight as it was
    unet_only = train(dataclasses.replace(cont, max_wall_time_s=None, stop_after_steps=2, train_only=["unet"],
                                          output_dir=str(tmp_path / "unet-only")))
    tuned = ReasonBrainEditPipeline.from_pretrained(tmp_path / "unet-only" / "checkpoint").model
    assert unet_only["steps"] == 2 and not torch.equal(start.unet.conv_in.weight, tuned.unet.conv_in.weight)
    for name, module in start.named_children():
        if name != "unet":
            kept = dict(tuned.named_children())[name].state_dict()
            assert all(torch.equal(w, kept[k]) for k, w in module.state_dict().items()), name
    with pytest.raises(ValueError, match="lacks"):
        train(dataclasses.replace(cont, train_only=["unet", "decoder"], output_dir=str(tmp_path / "u")))
    with pytest.raises(ValueError, match="none of these modules has trainable"):
        train(dataclasses.replace(cont, train_only=["vae"], output_dir=str(tmp_path / "v")))
    with pytest.raises(ValueError, match="may only switch modules on"):
        train(dataclasses.replace(cont, components={"baseline": True}, output_dir=str(tmp_path / "bad")))


def test_edit_region_weight_counts_only_changed_cells():
    import torch

    from reasonbrain.training.task import ReasonBrainTrainingTask

    source = torch.zeros(2, 3, 8, 8)
    target = source.clone()
    target[0, 1, 0, 0] = 0.5  # one pixel of sample 0 changes: the top-left latent cell (2x2 latents)
    target[1, :, 5, 5] = 0.04  # below the threshold: not an edit
    mask = ReasonBrainTrainingTask.edit_mask(source, target, (2, 2))
    assert mask.shape == (2, 1, 2, 2)
    assert mask[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]] and mask[1].sum() == 0


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parent.parent.glob("configs/train_*.json")),
                         ids=lambda p: p.name)
def test_shipped_training_configs_load(path):
    cfg = TrainConfig.from_json(str(path))
    assert cfg.max_steps > 0 and cfg.batch_size > 0 and cfg.learning_rate > 0


def test_train_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"learning_rat": 1}')
    with pytest.raises(ValueError, match="unknown training config keys"):
        TrainConfig.from_json(str(path))


def test_validation_counts_a_refusal_as_no_change(synth_data, tmp_path, monkeypatch):
    """A validation edit the model refuses ("There is no … in this picture", e.g. on its own blurry output) is
    scored as no change, as the evaluations score it; it never stops the training run."""
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.referring import ObjectNotInImageError
    from reasonbrain.training.train import build_model, validate, vocabulary_for

    cfg = TrainConfig(preset="tiny", model_overrides={"regions": {"backend": "color_segments", "config": {}},
                                                      "defaults": {"referring_vocabulary": "synthworld"}},
                      data_dir=str(synth_data), val_samples=3, val_steps=1)
    model = build_model(cfg)
    edit = ReasonBrainEditPipeline.__call__
    first = read_split(synth_data / "val.jsonl")[0].src_image

    def refuse_the_first(self, image, instruction, **kwargs):
        if image == first:
            raise ObjectNotInImageError("glass", ["bucket"])
        return edit(self, image, instruction, **kwargs)

    monkeypatch.setattr(ReasonBrainEditPipeline, "__call__", refuse_the_first)
    from reasonbrain.regions import build_region_proposer

    metrics = validate(model, build_region_proposer(model.config.regions, load_pretrained=False),
                       vocabulary_for(model.config), cfg, 0, str(tmp_path))
    n = len(read_split(synth_data / "val.jsonl")[:3])
    assert metrics["refused"] == 1 and metrics["n"] == n >= 2 and 0.0 <= metrics["accuracy"] <= (n - 1) / n
