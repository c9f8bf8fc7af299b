"""Decoder refinement: the VAE decoder is trained where edits happen, the encoder (every latent the UNet reads or
predicts) stays bit for bit, the validation split picks the step, and the oracle is measured per transformation."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from reasonbrain.bundled import default_checkpoint
from reasonbrain.synthworld.accuracy import is_correct
from reasonbrain.synthworld.dataset import load_split, write_dataset
from reasonbrain.training.refine_decoder import (
    RefineConfig,
    edit_weight_map,
    main,
    oracle_report,
    refine_decoder,
    trainable_decoder_parameters,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("world")
    write_dataset(folder, n=40, seed=3, resolution=64, n_chains=0, workers=1, progress=False,
                  split_fractions=(0.6, 0.4, 0.0))
    return str(folder)


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                         layers_per_block=1, sample_size=64)


def test_edit_weight_map_marks_the_changed_pixels_and_their_outline():
    source = torch.zeros(3, 8, 8)
    target = source.clone()
    target[1, 3:5, 3:5] = 0.5  # moves by 0.25 on [0, 1]
    target[0, 0, 7] = 0.05  # 0.025 on [0, 1]: under the threshold
    weights = edit_weight_map(source, target, edit_weight=9.0, threshold=0.05, dilate=1)
    assert weights.shape == (1, 8, 8)
    assert torch.all(weights[0, 2:6, 2:6] == 10.0)
    assert weights.sum() == 64 + 9.0 * 16
    assert torch.equal(edit_weight_map(source, target, edit_weight=9.0, threshold=0.05, dilate=0)[0, 3:5, 3:5],
                       torch.full((2, 2), 10.0))


def test_only_the_decoder_side_trains():
    vae = tiny_vae()
    params = trainable_decoder_parameters(vae)
    assert {id(p) for p in params} == {id(p) for p in vae.parameters() if p.requires_grad}
    assert all(not p.requires_grad for p in [*vae.encoder.parameters(), *vae.quant_conv.parameters()])
    assert all(p.requires_grad for p in [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()])


def test_oracle_report_matches_the_accuracy_rule(world):
    vae = AutoencoderKL.from_pretrained(os.path.join(default_checkpoint(), "vae"))
    report = oracle_report(vae, world, "val", resolution=64)
    records = load_split(world, "val")
    assert report["n"] == len(records) > 0
    with torch.no_grad():  # the same records, one by one, through the accuracy rule itself
        hits = []
        for rec in records:
            x = torch.from_numpy(np.asarray(rec.load_image("tgt"), dtype=np.float32) / 255)
            x = x.permute(2, 0, 1)[None] * 2 - 1
            y = (vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)[0].permute(1, 2, 0) + 1) / 2
            hits.append(is_correct(y.numpy(), rec.path(rec.tgt_image), [rec.path(a.image) for a in rec.alternatives]))
    assert report["oracle_accuracy"] == round(sum(hits) / len(hits), 4)
    assert set(report["oracle_per_transformation"]) == {r.transformation for r in records}
    assert report["oracle_per_holdout"] == {"seen": report["oracle_accuracy"]}  # validation holds nothing out
    assert 0 < report["recon_l1"] < 0.05  # the bundled VAE reconstructs the world closely


def test_refinement_keeps_the_encoder_and_the_rest_of_the_checkpoint(world, tmp_path):
    checkpoint = tmp_path / "ckpt"
    tiny_vae().save_pretrained(checkpoint / "vae")
    (checkpoint / "unet").mkdir()
    (checkpoint / "unet" / "weights.bin").write_bytes(b"unchanged")
    cfg = RefineConfig(checkpoint=str(checkpoint), data_dir=world, out=str(tmp_path / "out"), steps=6,
                       batch_size=4, learning_rate=5e-3, warmup_steps=1, val_every=3, latent_noise=0.1, seed=1)
    summary = refine_decoder(cfg)
    out = tmp_path / "out" / "checkpoint"
    assert (out / "unet" / "weights.bin").read_bytes() == b"unchanged"
    before = load_file(checkpoint / "vae" / "diffusion_pytorch_model.safetensors")
    after = load_file(out / "vae" / "diffusion_pytorch_model.safetensors")
    assert before.keys() == after.keys()
    for name in before:
        same = torch.equal(before[name], after[name])
        assert same == (not name.startswith(("decoder.", "post_quant_conv."))), name
    # a random decoder only gets better with training: validation chose a trained step over step 0
    assert summary["chosen_step"] in (3, 6)
    assert summary["validation_after"]["recon_l1"] < summary["validation_before"]["recon_l1"]
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["chosen_step"] == summary["chosen_step"] and written["config"]["latent_noise"] == 0.1
    rows = (tmp_path / "out" / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,loss,val_recon_l1,val_oracle" and len(rows) == 1 + 3  # validations at 0, 3, 6


def test_cli_refuses_a_folder_without_a_vae(world, tmp_path):
    with pytest.raises(FileNotFoundError, match="no vae/ folder"):
        main(["--checkpoint", str(tmp_path), "--data-dir", world, "--out", str(tmp_path / "o"), "--steps", "1"])


def test_cli_oracle_only_reports_a_split_per_holdout_group(tmp_path, capsys):
    """--oracle-only prints oracle_report's JSON for a split (here a test split, whose records hold templates and
    kind x background pairings out) and trains nothing; training without --out is refused."""
    from reasonbrain.synthworld.accuracy import holdout_group

    write_dataset(tmp_path / "w", n=24, seed=5, resolution=64, n_chains=0, workers=1, progress=False,
                  split_fractions=(0.0, 0.0, 1.0))
    assert main(["--checkpoint", default_checkpoint(), "--data-dir", str(tmp_path / "w"), "--oracle-only", "test"]) == 0
    report = json.loads(capsys.readouterr().out)
    vae = AutoencoderKL.from_pretrained(os.path.join(default_checkpoint(), "vae"))
    assert report == oracle_report(vae, str(tmp_path / "w"), "test", resolution=64)
    groups = Counter(holdout_group(r) for r in load_split(tmp_path / "w", "test"))
    assert set(report["oracle_per_holdout"]) == set(groups) and len(groups) >= 3
    weighted = sum(report["oracle_per_holdout"][g] * n for g, n in groups.items()) / sum(groups.values())
    assert weighted == pytest.approx(report["oracle_accuracy"], abs=1e-3)
    with pytest.raises(SystemExit):
        main(["--checkpoint", default_checkpoint(), "--data-dir", str(tmp_path / "w")])
