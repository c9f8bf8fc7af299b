"""Sharpen a trained synth checkpoint's VAE decoder where edits happen; the encoder stays as it is.

    python -m reasonbrain.training.refine_decoder --checkpoint checkpoints/synth --data-dir data/synth \\
        --out runs/synth_decoder [--steps 1500] [--edit-weight 10] [--latent-noise 0.1]

Why: the synth VAE was pre-trained with a plain whole-image L1, so small objects that change blur into each
other (a deflated balloon on the ground against a popped one's scraps, a bud against a bloom). Even the true
target through the VAE, the *oracle*, is then judged correct on only about half of those records, a ceiling
no denoiser can pass. Here the decoder (and ``post_quant_conv``) is trained on the training split's source and
target images, with the L1 weighted ``1 + edit_weight`` where the target differs from its source. The encoder
and ``quant_conv`` are frozen, so every latent the UNet reads or was trained to predict keeps its meaning and
nothing else needs retraining. ``latent_noise`` adds Gaussian noise of that standard deviation to a share of the
latents so that the decoder also learns from latents a little off the encoder's, as the UNet's are.

The validation split picks the step: the best oracle accuracy, ties broken by the lower L1 to target.
Writes ``OUT/checkpoint`` (the input checkpoint with ``vae/`` replaced), ``OUT/summary.json`` (the oracle per
transformation before and after, the chosen step, the settings) and ``OUT/metrics.csv``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import shutil
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from reasonbrain.image_io import load_image, prepare_image
from reasonbrain.reason50k import Reason50KRecord, read_split
from reasonbrain.training.train import _cycle, append_csv

logger = logging.getLogger(__name__)

VAE_FOLDER = "vae"


@dataclass
class RefineConfig:
    checkpoint: str
    data_dir: str
    out: str
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 2e-4
    warmup_steps: int = 50
    edit_weight: float = 10.0
    change_threshold: float = 0.05  # a pixel counts as edited when some channel moves by more than this (on [0, 1])
    dilate: int = 1  # pixels the edited area grows by, so that the object's outline counts too
    latent_noise: float = 0.0
    noisy_share: float = 0.5
    val_every: int = 250
    val_samples: int | None = None  # None: the whole validation split
    max_train_records: int | None = None
    seed: int = 0
    device: str = "cpu"


def edit_weight_map(source: torch.Tensor, target: torch.Tensor, *, edit_weight: float, threshold: float,
                    dilate: int) -> torch.Tensor:
    """(1, H, W) loss weights for images in [-1, 1]: ``1 + edit_weight`` where ``target`` differs from ``source``
    by more than ``threshold`` (on [0, 1]) in some channel, grown by ``dilate`` pixels, else 1."""
    changed = ((target - source).abs().amax(dim=0, keepdim=True) / 2 > threshold).float()
    if dilate > 0:
        changed = F.max_pool2d(changed[None], 2 * dilate + 1, stride=1, padding=dilate)[0]
    return 1.0 + edit_weight * changed


class EditPairImages(Dataset):
    """Every record's source and target image, each with the same edit-weight map (the target's changed area)."""

    def __init__(self, records: list[Reason50KRecord], *, resolution: int, edit_weight: float, threshold: float,
                 dilate: int) -> None:
        if not records:
            raise ValueError("the dataset is empty: check the split file")
        self.records = records
        self.resolution = resolution
        self.weights = dict(edit_weight=edit_weight, threshold=threshold, dilate=dilate)

    def __len__(self) -> int:
        return 2 * len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rec = self.records[index // 2]
        source = prepare_image(load_image(rec.src_image), self.resolution)[0]
        target = prepare_image(load_image(rec.tgt_image), self.resolution)[0]
        weight = edit_weight_map(source, target, **self.weights)
        return (target if index % 2 else source), weight


def trainable_decoder_parameters(vae) -> list[torch.nn.Parameter]:
    """Freezes ``vae`` except its decoder and ``post_quant_conv``; returns those parameters."""
    vae.requires_grad_(False)
    modules = [vae.decoder] + ([vae.post_quant_conv] if getattr(vae, "post_quant_conv", None) is not None else [])
    params = []
    for module in modules:
        module.requires_grad_(True)
        params += list(module.parameters())
    return params


@torch.no_grad()
def oracle_report(vae, data_dir: str, split: str = "val", *, resolution: int, n: int | None = None,
                  batch_size: int = 64) -> dict[str, Any]:
    """The split's targets through ``vae`` (encoder mode, then decoder): mean L1 to target on [0, 1] and, on synth
    data, the *oracle* reasoning accuracy overall, per transformation and per ``holdout_group`` (the ceiling the VAE
    puts on edits)."""
    import numpy as np

    from reasonbrain.synthworld.accuracy import HOLDOUT_GROUPS, holdout_group, is_correct

    records = read_split(os.path.join(data_dir, f"{split}.jsonl"))[:n]
    root = os.path.abspath(data_dir)
    synth = "alternatives" in records[0].extra if records else False
    param = next(vae.parameters())
    l1s, by_transformation, by_holdout = [], defaultdict(list), defaultdict(list)
    was_training = vae.training
    vae.eval()
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        x = torch.stack([prepare_image(load_image(r.tgt_image), resolution)[0] for r in batch])
        x = x.to(param.device, param.dtype)
        y = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        recons = ((y.permute(0, 2, 3, 1).float().cpu().numpy() + 1) / 2).clip(0, 1)
        targets = ((x.permute(0, 2, 3, 1).float().cpu().numpy() + 1) / 2)
        for rec, recon, target in zip(batch, recons, targets):
            l1s.append(float(np.abs(recon - target).mean()))
            if synth:  # alternatives' paths are relative to the split's folder, as the images' are
                alternatives = [os.path.join(root, a["image"]) for a in rec.extra["alternatives"]]
                ok = bool(is_correct(recon, target, alternatives))
                by_transformation[rec.extra.get("transformation", "?")].append(ok)
                by_holdout[holdout_group(rec)].append(ok)
    vae.train(was_training)
    report: dict[str, Any] = {"n": len(records), "recon_l1": round(float(np.mean(l1s)), 5) if l1s else None}
    if by_transformation:
        hits = [h for v in by_transformation.values() for h in v]
        report["oracle_accuracy"] = round(sum(hits) / len(hits), 4)
        report["oracle_per_transformation"] = {k: round(sum(v) / len(v), 4)
                                               for k, v in sorted(by_transformation.items())}
        report["oracle_per_holdout"] = {g: round(sum(by_holdout[g]) / len(by_holdout[g]), 4)
                                        for g in HOLDOUT_GROUPS if g in by_holdout}
    return report


def refine_decoder(cfg: RefineConfig) -> dict[str, Any]:
    from diffusers import AutoencoderKL
    from diffusers.optimization import get_scheduler

    torch.manual_seed(cfg.seed)
    vae_dir = os.path.join(cfg.checkpoint, VAE_FOLDER)
    if not os.path.isdir(vae_dir):
        raise FileNotFoundError(f"{cfg.checkpoint} has no {VAE_FOLDER}/ folder: pass an exported checkpoint")
    vae = AutoencoderKL.from_pretrained(vae_dir).to(cfg.device)
    resolution = int(vae.config.sample_size)
    records = read_split(os.path.join(cfg.data_dir, "train.jsonl"))[: cfg.max_train_records]
    data = EditPairImages(records, resolution=resolution, edit_weight=cfg.edit_weight,
                          threshold=cfg.change_threshold, dilate=cfg.dilate)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    params = trainable_decoder_parameters(vae)
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=cfg.warmup_steps,
                              num_training_steps=cfg.steps)
    os.makedirs(cfg.out, exist_ok=True)
    metrics_csv = os.path.join(cfg.out, "metrics.csv")
    if os.path.exists(metrics_csv):
        os.remove(metrics_csv)

    def validate(step: int) -> dict[str, Any]:
        report = oracle_report(vae, cfg.data_dir, "val", resolution=resolution, n=cfg.val_samples)
        append_csv(metrics_csv, {"step": step, "loss": "", "val_recon_l1": report["recon_l1"],
                                  "val_oracle": report.get("oracle_accuracy", "")})
        logger.info("step %d validation: oracle %s, L1 %s", step, report.get("oracle_accuracy"),
                    report["recon_l1"])
        return report

    before = validate(0)
    best = (before, 0, copy.deepcopy(vae.state_dict()))
    generator = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    batches = _cycle(loader)
    start = time.time()
    vae.train()
    for step in range(1, cfg.steps + 1):
        images, weights = (t.to(cfg.device) for t in next(batches))
        with torch.no_grad():
            latents = vae.encode(images).latent_dist.mode()
            if cfg.latent_noise > 0:
                noisy = (torch.rand(latents.shape[0], 1, 1, 1, generator=generator, device=cfg.device)
                         < cfg.noisy_share).float()
                latents = latents + noisy * cfg.latent_noise * torch.randn(
                    latents.shape, generator=generator, device=cfg.device)
        recon = vae.decode(latents).sample
        loss = ((recon - images).abs() * weights).mean() / weights.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 50 == 0:
            append_csv(metrics_csv, {"step": step, "loss": round(loss.item(), 6), "val_recon_l1": "",
                                      "val_oracle": ""})
            logger.info("step %d/%d loss %.5f (%.0f s)", step, cfg.steps, loss.item(), time.time() - start)
        if step % cfg.val_every == 0 or step == cfg.steps:
            report = validate(step)
            if _better(report, best[0]):
                best = (report, step, copy.deepcopy(vae.state_dict()))
    after, chosen_step, state = best
    vae.load_state_dict(state)
    vae.requires_grad_(False).eval()
    out_checkpoint = os.path.join(cfg.out, "checkpoint")
    if os.path.exists(out_checkpoint):
        shutil.rmtree(out_checkpoint)
    shutil.copytree(cfg.checkpoint, out_checkpoint)
    vae.save_pretrained(os.path.join(out_checkpoint, VAE_FOLDER))
    summary = {"module": "reasonbrain.training.refine_decoder", "config": asdict(cfg), "chosen_step": chosen_step,
               "wall_time_s": round(time.time() - start, 1), "train_records": len(records),
               "validation_before": before, "validation_after": after}
    with open(os.path.join(cfg.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def _better(report: dict[str, Any], than: dict[str, Any]) -> bool:
    key = (report.get("oracle_accuracy") or 0.0, -(report["recon_l1"] or math.inf))
    return key > (than.get("oracle_accuracy") or 0.0, -(than["recon_l1"] or math.inf))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reasonbrain.training.refine_decoder", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="an exported checkpoint folder (with vae/)")
    ap.add_argument("--data-dir", required=True, help="Reason50K-format data with train.jsonl and val.jsonl")
    ap.add_argument("--out", help="the run folder (required unless --oracle-only)")
    defaults = RefineConfig(checkpoint="", data_dir="", out="")
    for name in ("steps", "batch_size", "learning_rate", "warmup_steps", "edit_weight", "change_threshold", "dilate",
                 "latent_noise", "noisy_share", "val_every", "val_samples", "max_train_records", "seed"):
        value = getattr(defaults, name)
        kind = float if isinstance(value, float) else int
        ap.add_argument("--" + name.replace("_", "-"), type=kind, default=value)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--oracle-only", metavar="SPLIT",
                    help="print the checkpoint's oracle report on SPLIT as JSON and stop (no training)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.oracle_only:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(os.path.join(args.checkpoint, VAE_FOLDER)).to(args.device)
        report = oracle_report(vae, args.data_dir, args.oracle_only, resolution=int(vae.config.sample_size))
        print(json.dumps(report, indent=2))
        return 0
    if not args.out:
        ap.error("--out is required to train")
    summary = refine_decoder(RefineConfig(**{k: v for k, v in vars(args).items() if k != "oracle_only"}))
    before, after = summary["validation_before"], summary["validation_after"]
    print(f"validation oracle {before.get('oracle_accuracy')} -> {after.get('oracle_accuracy')}, "
          f"L1 {before['recon_l1']} -> {after['recon_l1']} (step {summary['chosen_step']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
