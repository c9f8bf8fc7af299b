"""Train ReasonBrain on Reason50K-format data with accelerate.

    python -m reasonbrain.training.train --config configs/train_synth.json [--max-steps N] [--resume]
    accelerate launch --config_file configs/accelerate_deepspeed_zero2.yaml -m reasonbrain.training.train --config ...

Writes to ``output_dir``: ``metrics.csv`` (every ``log_every`` steps), ``validation.csv`` and sample grids
(every ``val_every`` steps), ``loss_curve.png``, ``state/`` (accelerate state for ``--resume``) and
``checkpoint/`` (a pipeline folder that ``ReasonBrainEditPipeline.from_pretrained`` loads).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from torch.utils.data import DataLoader

from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.image_io import load_image
from reasonbrain.models.reasonbrain import ReasonBrainModel
from reasonbrain.regions import build_region_proposer
from reasonbrain.synthworld.instructions import reframe_record
from reasonbrain.training.data import Reason50KDataset, ReconstructionImages, read_split
from reasonbrain.training.task import ReasonBrainTrainingTask, ablation_config

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    preset: str = "synth"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    components: dict[str, bool] = field(default_factory=dict)  # ablation switches, e.g. {"baseline": true}
    load_backbones: bool = False  # real presets: start from the Hub backbones
    init_checkpoint: str | None = None  # start from a saved checkpoint folder instead
    data_dir: str = "data/synth"
    train_split: str = "train.jsonl"
    extra_train_dirs: list[str] = field(default_factory=list)  # more data folders whose train split is added
    val_split: str = "val.jsonl"
    output_dir: str = "runs/synth"
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 16  # paper: 16
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3  # paper: AdamW, lr 1e-3, weight decay 1e-2
    weight_decay: float = 1e-2
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_scheduler: str = "cosine"
    lr_warmup_steps: int = 100
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"  # "auto": bf16 on GPU, none on CPU
    cond_dropout: float = 0.05
    num_workers: int = 0
    log_every: int = 10
    val_every: int = 500
    val_samples: int = 64
    val_steps: int | None = None  # denoising steps for validation edits (default: the preset's)
    save_every: int = 1000
    vae_steps: int = 0  # pre-train the VAE (reconstruction) first, for models built from scratch
    init_vae: str | None = None  # or load a VAE pre-trained earlier (a diffusers AutoencoderKL folder)
    vae_learning_rate: float = 1e-3
    vae_batch_size: int = 32
    edit_region_weight: float = 0.0  # extra loss weight on the latents that change from source to target
    grounding_loss_weight: float = 0.0  # supervise the ID Controller's attention with the edited pixels (ours)
    instruction_reframing: float = 0.0  # synthworld: re-frame this share of instructions (training templates' words)
    target_latents: str = "sample"  # "mode": the VAE posterior's mean as the target (VAEs trained from scratch)
    max_train_samples: int | None = None
    max_wall_time_s: float | None = None  # stop early (and save) once the training loop has run this long
    stop_after_steps: int | None = None  # stop early (and save) at this step; the lr schedule still spans max_steps
    # train only these top-level modules (e.g. ["unet", "cme"]), everything else frozen: a fine-tune that keeps
    # the reading phase (text_encoder, mllm and its outcome adapter) valid; empty: whatever the model trains
    train_only: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, path: str) -> TrainConfig:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)} in {path}")
        if "adam_betas" in data:
            data["adam_betas"] = tuple(data["adam_betas"])
        return cls(**data)


def build_model(cfg: TrainConfig) -> ReasonBrainModel:
    if cfg.init_checkpoint:
        model = ReasonBrainModel.from_pretrained(cfg.init_checkpoint)
        return with_components(model, cfg.components) if cfg.components else model
    model_cfg = ReasonBrainConfig.from_preset(cfg.preset, **cfg.model_overrides)
    if cfg.components:
        model_cfg = ablation_config(model_cfg, **cfg.components)
    return ReasonBrainModel.from_config(model_cfg, load_backbones=cfg.load_backbones)



def freeze_all_but(model: ReasonBrainModel, names: list[str]) -> None:
    """Only the top-level modules ``names`` keep their trainable parameters; a name the model lacks is a ValueError."""
    modules = dict(model.named_children())
    unknown = sorted(set(names) - set(modules))
    if unknown:
        raise ValueError(f"train_only names {unknown}, which the model lacks; it has {sorted(modules)}")
    for name, module in modules.items():
        if name not in names:
            module.requires_grad_(False)
    if not any(p.requires_grad for name in names for p in modules[name].parameters()):
        raise ValueError(f"train_only {names}: none of these modules has trainable parameters")

def with_components(model: ReasonBrainModel, components: dict[str, bool]) -> ReasonBrainModel:
    """``model`` rebuilt with more components switched on: its weights are kept, the new modules start from their
    own initialisation (zero where they feed the UNet, so the output is unchanged until they are trained)."""
    new = ReasonBrainModel.from_config(ablation_config(model.config, **components))
    missing, unexpected = new.load_state_dict(model.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"components {components} would drop weights of the checkpoint ({unexpected[:3]}...); "
                         "with init_checkpoint, components may only switch modules on")
    logger.info("new modules start from their initialisation: %s", missing)
    return new.eval()


def vocabulary_for(config: ReasonBrainConfig):
    if config.defaults.referring_vocabulary == "synthworld":
        from reasonbrain.synthworld import VOCABULARY

        return VOCABULARY
    return None


def _cycle(loader):
    while True:
        yield from loader


def pretrain_vae(model: ReasonBrainModel, cfg: TrainConfig, records: list, accelerator: Accelerator,
                 out_dir: str) -> dict[str, Any]:
    """Reconstruction (L1 + small KL) training of the VAE on every source and target image, for models built
    from scratch; frozen afterwards. Returns a report with the reconstruction error on the validation split and,
    on synth data, the *oracle* reasoning accuracy: the true targets passed through the VAE, i.e. the ceiling
    the VAE puts on any denoiser."""
    vae = model.vae
    vae.requires_grad_(True).train()
    data = ReconstructionImages(records, resolution=model.config.resolution)
    loader = DataLoader(data, batch_size=cfg.vae_batch_size, shuffle=True, drop_last=True,
                        num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed))
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_learning_rate, weight_decay=0.0)
    sched = get_scheduler("cosine", opt, num_warmup_steps=min(100, cfg.vae_steps // 10),
                          num_training_steps=cfg.vae_steps)
    losses = []
    batches = _cycle(loader)
    start = time.time()
    for step in range(1, cfg.vae_steps + 1):
        x = next(batches).to(accelerator.device)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        loss = F.l1_loss(recon, x) + 1e-6 * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == cfg.vae_steps:
            logger.info("vae step %d/%d l1+kl %.4f posterior std %.3f (%.0f s)", step, cfg.vae_steps, loss.item(),
                        posterior.std.mean().item(), time.time() - start)
    vae.requires_grad_(False).eval()
    vae.save_pretrained(os.path.join(out_dir, "vae_pretrained"))
    report = {"steps": cfg.vae_steps, "wall_time_s": round(time.time() - start, 1), **vae_report(model, cfg)}
    logger.info("vae report %s", report)
    with open(os.path.join(out_dir, "vae_losses.json"), "w", encoding="utf-8") as f:
        json.dump(losses, f)
    with open(os.path.join(out_dir, "vae_report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return report


def vae_report(model: ReasonBrainModel, cfg: TrainConfig, n: int = 200) -> dict[str, Any]:
    """Reconstruction L1 (on [0, 1]) of ``n`` validation targets, and their oracle accuracy on synth data."""
    from reasonbrain.training.refine_decoder import oracle_report

    return oracle_report(model.vae, cfg.data_dir, os.path.splitext(cfg.val_split)[0],
                         resolution=model.config.resolution, n=n)


def validate(model: ReasonBrainModel, proposer, vocabulary, cfg: TrainConfig, step: int, out_dir: str) -> dict:
    """Edits ``val_samples`` validation images; reasoning accuracy where the records carry alternatives."""
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.referring import ObjectNotInImageError

    was_training = model.training
    pipe = ReasonBrainEditPipeline(model=model, region_proposer=proposer, vocabulary=vocabulary)
    path = os.path.join(cfg.data_dir, cfg.val_split)
    records = read_split(path)[: cfg.val_samples]
    edits, refused = [], 0
    for i, r in enumerate(records):  # a "not in this picture" refusal counts as no change, as the evaluations do
        try:
            edits.append(pipe(r.src_image, r.instruction, seed=cfg.seed + i, num_inference_steps=cfg.val_steps).images[0])
        except ObjectNotInImageError:
            refused += 1
            edits.append(load_image(r.src_image))
    metrics: dict[str, Any] = {"step": step, "n": len(records), "refused": refused}
    if records and "alternatives" in records[0].extra:
        from reasonbrain.synthworld.accuracy import reasoning_accuracy
        from reasonbrain.synthworld.dataset import load_split

        synth_records = load_split(cfg.data_dir, os.path.splitext(cfg.val_split)[0])[: len(records)]
        acc = reasoning_accuracy(synth_records, edits)
        metrics.update(accuracy=acc["accuracy"], l1=acc["l1"], psnr=acc["psnr"],
                       **{f"acc_{k}": v for k, v in acc["per_category"].items()})
    _save_grid(records[:8], edits[:8], os.path.join(out_dir, "samples", f"step-{step:06d}.png"))
    model.train(was_training)
    return metrics


def _save_grid(records, edits, path: str) -> None:
    from PIL import Image

    if not records:
        return
    size = edits[0].size
    grid = Image.new("RGB", (size[0] * 3, size[1] * len(records)), "white")
    for row, (rec, edit) in enumerate(zip(records, edits)):
        for col, img in enumerate((Image.open(rec.src_image), Image.open(rec.tgt_image), edit)):
            grid.paste(img.convert("RGB").resize(size), (col * size[0], row * size[1]))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    grid.save(path)


def plot_losses(metrics_csv: str, out_png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("loss", "dm_loss", "mllm_loss"):
        ax.plot(steps, [float(r[key]) for r in rows], label=key)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def append_csv(path: str, row: dict[str, Any]) -> None:
    new = not os.path.exists(path)
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    mixed = cfg.mixed_precision
    if mixed == "auto":
        mixed = "bf16" if torch.cuda.is_available() else "no"
    accelerator = Accelerator(gradient_accumulation_steps=cfg.gradient_accumulation_steps, mixed_precision=mixed)
    set_seed(cfg.seed)
    os.makedirs(cfg.output_dir, exist_ok=True)
    with open(os.path.join(cfg.output_dir, "train_config.json"), "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(cfg), f, indent=2)

    model = build_model(cfg)
    if cfg.train_only:
        freeze_all_but(model, cfg.train_only)
    mcfg = model.config
    vocabulary = vocabulary_for(mcfg)
    proposer = build_region_proposer(mcfg.regions, load_pretrained=cfg.load_backbones) if (
        mcfg.components.region_branch) else None
    records = read_split(os.path.join(cfg.data_dir, cfg.train_split))
    for folder in cfg.extra_train_dirs:
        records += read_split(os.path.join(folder, cfg.train_split))
    if cfg.max_train_samples:
        records = records[: cfg.max_train_samples]
    reframe = (functools.partial(reframe_record, probability=cfg.instruction_reframing)
               if cfg.instruction_reframing > 0 else None)
    dataset = Reason50KDataset(records, resolution=mcfg.resolution, grid_size=model.grid_size,
                               max_regions=mcfg.frce.max_regions, region_proposer=proposer, vocabulary=vocabulary,
                               instruction_transform=reframe)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True, collate_fn=dataset.collate,
                        num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed),
                        persistent_workers=cfg.num_workers > 0)
    state_dir = os.path.join(cfg.output_dir, "state")
    resuming = resume and os.path.isdir(state_dir)
    if cfg.init_vae and not resuming:
        from diffusers import AutoencoderKL

        model.vae.load_state_dict(AutoencoderKL.from_pretrained(cfg.init_vae).state_dict())
    elif cfg.vae_steps and not mcfg.diffusion.vae_pretrained and not resuming:
        model.to(accelerator.device)
        pretrain_vae(model, cfg, records, accelerator, cfg.output_dir)

    task = ReasonBrainTrainingTask(model, cond_dropout=cfg.cond_dropout, edit_region_weight=cfg.edit_region_weight,
                                   target_latents=cfg.target_latents, grounding_loss_weight=cfg.grounding_loss_weight)
    optimizer = torch.optim.AdamW(task.trainable_parameters(), lr=cfg.learning_rate, betas=cfg.adam_betas,
                                  weight_decay=cfg.weight_decay)
    lr_scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps,
                                 num_training_steps=cfg.max_steps)
    task, optimizer, loader, lr_scheduler = accelerator.prepare(task, optimizer, loader, lr_scheduler)
    step = 0
    if resuming:
        accelerator.load_state(state_dir)
        with open(os.path.join(state_dir, "progress.json"), encoding="utf-8") as f:
            step = json.load(f)["step"]
        logger.info("resumed from %s at step %d", state_dir, step)

    metrics_csv = os.path.join(cfg.output_dir, "metrics.csv")
    val_csv = os.path.join(cfg.output_dir, "validation.csv")
    unwrapped = accelerator.unwrap_model(task).model
    start, last_val = time.time(), {}
    task.train()
    batches = _cycle(loader)
    while step < cfg.max_steps:
        batch = next(batches)
        with accelerator.accumulate(task):
            losses = task(batch)
            accelerator.backward(losses["loss"])
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(task.parameters(), cfg.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        step += 1
        if not all(math.isfinite(v.item()) for v in losses.values()):
            raise RuntimeError(f"non-finite loss at step {step}: {losses}; lower learning_rate")
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            row = {"step": step, **{k: round(v.item(), 6) for k, v in losses.items()},
                   "lr": lr_scheduler.get_last_lr()[0], "elapsed_s": round(time.time() - start, 1)}
            if accelerator.is_main_process:
                append_csv(metrics_csv, row)
            logger.info("step %d %s", step, row)
        out_of_time = (cfg.max_wall_time_s is not None and time.time() - start > cfg.max_wall_time_s) or (
            cfg.stop_after_steps is not None and step >= cfg.stop_after_steps)
        if out_of_time and step < cfg.max_steps:
            logger.warning("stopping early at step %d of %d (max_wall_time_s %s, stop_after_steps %s)", step,
                           cfg.max_steps, cfg.max_wall_time_s, cfg.stop_after_steps)
        last = step == cfg.max_steps or out_of_time
        if accelerator.is_main_process and (step % cfg.val_every == 0 or last):
            last_val = validate(unwrapped, proposer, vocabulary, cfg, step, cfg.output_dir)
            append_csv(val_csv, last_val)
            logger.info("validation %s", last_val)
        if step % cfg.save_every == 0 or last:
            accelerator.wait_for_everyone()
            accelerator.save_state(state_dir)
            if accelerator.is_main_process:
                with open(os.path.join(state_dir, "progress.json"), "w", encoding="utf-8") as f:
                    json.dump({"step": step}, f)
                save_checkpoint(unwrapped, os.path.join(cfg.output_dir, "checkpoint"))
        if out_of_time:
            break
    if accelerator.is_main_process and os.path.exists(metrics_csv):
        plot_losses(metrics_csv, os.path.join(cfg.output_dir, "loss_curve.png"))
    summary = {"steps": step, "max_steps": cfg.max_steps, "wall_time_s": round(time.time() - start, 1),
               "hardware": describe_hardware(accelerator.device, mixed), "validation": last_val}
    with open(os.path.join(cfg.output_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def describe_hardware(device: torch.device, mixed_precision: str) -> str:
    """E.g. "NVIDIA H200 GPU, torch 2.11.0+cu130, fp32" or "x86_64 CPU, 2 threads, torch 2.13.0+cpu, fp32"."""
    import platform

    precision = "fp32" if mixed_precision in ("no", None) else f"{mixed_precision} mixed precision"
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name(device)} GPU"
    else:
        where = f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"{where}, torch {torch.__version__}, {precision}"


def save_checkpoint(model: ReasonBrainModel, folder: str) -> None:
    """A pipeline folder (model + the preset's inference scheduler), written atomically."""
    from reasonbrain.schedulers import make_scheduler

    tmp = folder + ".tmp"
    if os.path.isdir(tmp):
        import shutil

        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    make_scheduler(model.config.diffusion.scheduler).save_pretrained(os.path.join(tmp, "scheduler"))
    if os.path.isdir(folder):
        import shutil

        shutil.rmtree(folder)
    os.replace(tmp, folder)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reasonbrain.training.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training config JSON (see TrainConfig)")
    ap.add_argument("--resume", action="store_true", help="continue from output_dir/state")
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--output-dir")
    ap.add_argument("--data-dir")
    ap.add_argument("--init-checkpoint", help="start from this checkpoint folder instead of the config's")
    ap.add_argument("--num-workers", type=int, help="data loader processes")
    ap.add_argument("--max-wall-time-s", type=float, help="stop early (saving a checkpoint) after this many seconds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    cfg = TrainConfig.from_json(args.config)
    for key in ("max_steps", "output_dir", "data_dir", "init_checkpoint", "num_workers", "max_wall_time_s"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    summary = train(cfg, resume=args.resume)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
