"""Teach a checkpoint to read people's wording: distil its text side into an InstructionReader.

    python -m reasonbrain.training.distill_reader --config configs/distill_synth_reader.json [--max-steps N] [--resume]

The teacher is a trained checkpoint whose E_T and MLLM read a small template-trained BPE. The student is the same
checkpoint (every other module shared and frozen) whose E_T is an ``InstructionReader`` over a frozen pretrained
token table (``reasonbrain.pretrained_words``): its states replace E_T(H) and E_T(O), and stand for H in the MLLM
sequence. The student reads ``synthworld.language.rephrase`` wordings of a training record (questions, commands,
bare outcomes, synonyms and descriptions, politeness, case and typo noise; train families only) or the record's
own instruction, and learns to give the UNet the conditioning the teacher gives for the record's own instruction:

    L = sum over (input offset, cross-attention context, V^) of MSE(student, teacher) / Var(teacher)
        + unet_loss_weight * MSE(UNet(student), UNet(teacher)) / MSE(UNet(teacher), UNet(teacher, no text))

The second term (off by default) runs the frozen UNet on a noised target latent with both conditionings and
matches its predictions, scaled by what the instruction changes in the teacher's prediction: the sampler's text
guidance multiplies exactly that difference, so small conditioning errors the first term tolerates show here. The SceneRecogniser (which objects a picture holds) is trained apart
(``reasonbrain.training.train_recogniser``). Writes ``output_dir/checkpoint`` (a pipeline folder), ``metrics.csv``,
``validation.csv`` (reasoning accuracy on validation records, with their own and with rephrased wording: the
checkpoint is chosen on these) and ``state.pt`` (for ``--resume``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.optimization import get_scheduler

from reasonbrain.models.backbones import build_reader, reader_tokenizer
from reasonbrain.models.reasonbrain import ReasonBrainModel
from reasonbrain.referring import extract_referenced_object, serialize_object_token

logger = logging.getLogger(__name__)


@dataclass
class DistillConfig:
    teacher: str = "runs/synth_stage9/checkpoint"  # the stage-9 model; checkpoints/synth is now the reading student
    data_dir: str = "data/synth"
    output_dir: str = "runs/synth_reader"
    table: str = "wordllama-l2-supercat-256"
    reader: dict[str, Any] = field(default_factory=lambda: {"hidden_size": 64, "num_layers": 2, "num_heads": 4,
                                                            "ff_mult": 2, "max_length": 48})
    max_length: int = 48  # E_T tokens (the reader's tokenizer)
    train_images: int = 4000  # training records whose images are encoded once and cached
    rephrase_probability: float = 0.75  # else the record's own instruction
    empty_probability: float = 0.08  # the CFG branch's empty instruction and object
    init_reader: str | None = None  # a checkpoint whose reader the student starts from (else a new one)
    unet_loss_weight: float = 0.0  # the UNet-prediction term (module docstring); 0 runs no UNet
    seed: int = 0
    max_steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 100
    log_every: int = 50
    val_every: int = 1000
    val_samples: int = 120
    save_every: int = 500

    @classmethod
    def from_json(cls, path: str) -> DistillConfig:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown keys in {path}: {sorted(unknown)}")
        return cls(**data)


def make_student(teacher: ReasonBrainModel, table: str, reader: dict[str, Any], max_length: int) -> ReasonBrainModel:
    """The teacher with E_T replaced by a new InstructionReader; every other module is shared (and frozen)."""
    config = teacher.config.replace(text_encoder={
        "pretrained_table": table, "pretrained_model_name_or_path": None, "subfolder": None, "tokenizer": table,
        "tokenizer_subfolder": None, "config": dict(reader), "max_length": max_length, "trainable": True,
    })
    t = teacher
    student = ReasonBrainModel(
        config=config, mllm=t.mllm, text_encoder=build_reader(config), text_tokenizer=reader_tokenizer(table),
        frce=t.frce, qformer=t.qformer, cme=t.cme, conditioning=t.conditioning, unet=t.unet, vae=t.vae,
    )
    for name, module in student.named_children():
        module.requires_grad_(name == "text_encoder")
    return student


def student_text(record, rng: random.Random, cfg: DistillConfig, split: str = "train") -> str:
    from reasonbrain.synthworld.language import add_noise, rephrase_record

    if rng.random() >= cfg.rephrase_probability:
        return add_noise(record.instruction, rng) if rng.random() < 0.3 else record.instruction
    return rephrase_record(record, rng, split=split)


def scene_entries(record) -> list:
    from reasonbrain.binding import SceneEntry

    return [SceneEntry(o.name, o.shown_colour, o.position) for o in record.scene.objects]


def student_object(text: str, record, similarity) -> str:
    """The object token inference would give ``text`` on the record's scene (empty when it would refuse)."""
    from reasonbrain.binding import bind_instruction
    from reasonbrain.referring import ObjectNotInImageError
    from reasonbrain.synthworld import VOCABULARY

    try:
        return serialize_object_token(bind_instruction(text, VOCABULARY, scene_entries(record), similarity))
    except ObjectNotInImageError:
        return serialize_object_token(None)


class EncodedImages:
    """Images, region masks and the (frozen) vision encoding of records, computed once."""

    def __init__(self, model: ReasonBrainModel, records: list, proposer, batch: int = 64) -> None:
        from reasonbrain.image_io import load_image, prepare_image
        from reasonbrain.regions import masks_to_feature_grid, pad_regions

        cfg = model.config
        pixels, grids = [], []
        for r in records:
            pil = load_image(str(r.path(r.src_image)))
            px, _ = prepare_image(pil, cfg.resolution)
            pixels.append(px)
            regions = proposer(pil.convert("RGB").resize((cfg.resolution,) * 2))
            grids.append(masks_to_feature_grid(regions, (model.grid_size, model.grid_size)))
        self.pixels = torch.stack(pixels)  # (N, 3, R, R)
        self.masks, self.valid = pad_regions(grids, cfg.frce.max_regions)  # (N, R, g, g), (N, R)
        ia, feats = [], []
        with torch.no_grad():
            for i in range(0, len(records), batch):
                a, f = model.mllm.encode_image(self.pixels[i : i + batch])
                ia.append(a)
                feats.append(f)
        self.ia_tokens, self.image_features = torch.cat(ia), torch.cat(feats)
        self.add_latents(model, records, batch)

    def add_latents(self, model: ReasonBrainModel, records: list, batch: int = 64) -> None:
        """latent(I) for the UNet's image channels and the target's latent (its mode, scaled), as in training."""
        from reasonbrain.image_io import load_image, prepare_image

        size = model.config.resolution
        targets = torch.stack([prepare_image(load_image(str(r.path(r.tgt_image))), size)[0] for r in records])
        image, target = [], []
        with torch.no_grad():
            for i in range(0, len(records), batch):
                image.append(model.encode_image_latents(self.pixels[i : i + batch]))
                target.append(model.encode_image_latents(targets[i : i + batch]) * model.vae.config.scaling_factor)
        self.image_latents, self.target_latents = torch.cat(image), torch.cat(target)


TARGETS = ("input_offset", "context", "guidance")


class TeacherTargets:
    """The teacher's conditioning for every cached image, with the record's own instruction and with the empty
    one (the CFG branch), computed once: the training loop then runs only the student."""

    def __init__(self, teacher: ReasonBrainModel, enc: EncodedImages, records: list, objects: list[str],
                 batch: int = 64) -> None:
        self.own: dict[str, torch.Tensor] = {}
        self.empty: dict[str, torch.Tensor] = {}
        for texts_of, into in ((lambda i: (records[i].instruction, objects[i]), self.own), (lambda i: ("", ""), self.empty)):
            parts: dict[str, list[torch.Tensor]] = {k: [] for k in TARGETS}
            with torch.no_grad():
                for start in range(0, len(records), batch):
                    idx = torch.arange(start, min(start + batch, len(records)))
                    pairs = [texts_of(i) for i in idx.tolist()]
                    out = condition(teacher, enc, idx, [p[0] for p in pairs], [p[1] for p in pairs])
                    for k in TARGETS:
                        parts[k].append(getattr(out, k))
            into.update({k: torch.cat(v) for k, v in parts.items()})

    def batch(self, idx: torch.Tensor, empty: torch.Tensor) -> dict[str, torch.Tensor]:
        """Targets for images ``idx``; rows where ``empty`` is True get the empty-instruction target."""
        out = {}
        for k in TARGETS:
            own, emp = self.own[k][idx], self.empty[k][idx]
            out[k] = torch.where(empty.view(-1, *[1] * (own.dim() - 1)), emp, own)
        return out


def condition(model: ReasonBrainModel, enc: EncodedImages, idx: torch.Tensor, texts: list[str], objects: list[str]):
    latent_hw = (model.config.resolution // model.vae_scale_factor,) * 2
    return model.encode_condition(
        enc.pixels[idx], texts, objects, enc.masks[idx], enc.valid[idx], latent_hw,
        image_encoding=(enc.ia_tokens[idx], enc.image_features[idx]),
    )


def distill_loss(student_out, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    losses = {}
    for name in TARGETS:
        s, t = getattr(student_out, name), target[name]
        losses[name] = F.mse_loss(s, t) / t.var().clamp(min=1e-8)
    losses["total"] = sum(losses.values())
    return losses


def unet_loss(model: ReasonBrainModel, enc: EncodedImages, idx: torch.Tensor, student_out,
              target: dict[str, torch.Tensor], empty_target: dict[str, torch.Tensor], noise_scheduler,
              generator: torch.Generator) -> torch.Tensor:
    """MSE between the frozen UNet's predictions under the student's and the teacher's conditioning, over what the
    teacher's instruction changes in that prediction (batch means; one random timestep and noise per row)."""
    z0 = enc.target_latents[idx]
    noise = torch.randn(z0.shape, generator=generator)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(idx),), generator=generator)
    noisy = noise_scheduler.add_noise(z0, noise, t)
    image = enc.image_latents[idx]
    with torch.no_grad():
        teacher = model.predict_noise(noisy, t, image, target["input_offset"], target["context"])
        no_text = model.predict_noise(noisy, t, image, empty_target["input_offset"], empty_target["context"])
    student = model.predict_noise(noisy, t, image, student_out.input_offset, student_out.context)
    return F.mse_loss(student, teacher) / (teacher - no_text).pow(2).mean().clamp(min=1e-8)


def validate(student: ReasonBrainModel, records: list, cfg: DistillConfig, proposer, vocabulary) -> dict[str, float]:
    """Reasoning accuracy on validation records with their own wording and with rephrased (train-family) wording."""
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.synthworld.accuracy import is_correct

    pipe = ReasonBrainEditPipeline(model=student, region_proposer=proposer, vocabulary=vocabulary)
    rng = random.Random(cfg.seed + 1)
    out = {}
    for label in ("own", "rephrased"):
        right = 0
        for i, r in enumerate(records):
            text = r.instruction if label == "own" else student_text(r, rng, dataclasses.replace(
                cfg, rephrase_probability=1.0), split="val")
            try:
                edit = pipe(str(r.path(r.src_image)), text, seed=i).images[0]
            except ValueError:  # a refusal counts as wrong here
                continue
            right += is_correct(edit, r.path(r.tgt_image), [r.path(a.image) for a in r.alternatives])
        out[f"accuracy_{label}"] = 100.0 * right / max(len(records), 1)
    student.text_encoder.train()
    return out


def distill(cfg: DistillConfig, resume: bool = False, config_file: str | None = None) -> dict[str, Any]:
    """Run the distillation; ``config_file`` (the recipe it came from) is recorded in summary.json."""
    from reasonbrain.regions import build_region_proposer
    from reasonbrain.synthworld import VOCABULARY
    from reasonbrain.synthworld.dataset import load_split
    from reasonbrain.training.train import append_csv, save_checkpoint

    torch.manual_seed(cfg.seed)
    os.makedirs(cfg.output_dir, exist_ok=True)
    teacher = ReasonBrainModel.from_pretrained(cfg.teacher).eval().requires_grad_(False)
    student = make_student(teacher, cfg.table, cfg.reader, cfg.max_length)
    reader = student.text_encoder
    if cfg.init_reader:
        reader.load_state_dict(ReasonBrainModel.from_pretrained(cfg.init_reader).text_encoder.state_dict())
        logger.info("the student's reader starts from %s", cfg.init_reader)
    proposer = build_region_proposer(teacher.config.regions, load_pretrained=False)
    train_records = [r for r in load_split(cfg.data_dir, "train") if r.chain_id is None][: cfg.train_images]
    val_records = [r for r in load_split(cfg.data_dir, "val") if r.chain_id is None][: cfg.val_samples]
    start = time.perf_counter()
    cache = os.path.join(cfg.output_dir, "encoded.pt")
    objects = [serialize_object_token(extract_referenced_object(r.instruction, VOCABULARY)) for r in train_records]
    if os.path.exists(cache):
        enc, targets = EncodedImages.__new__(EncodedImages), TeacherTargets.__new__(TeacherTargets)
        saved = torch.load(cache, weights_only=False)  # our own cache file
        enc.__dict__.update(saved["images"])
        targets.own, targets.empty = saved["own"], saved["empty"]
        if not hasattr(enc, "target_latents"):  # a cache written before the UNet term
            enc.add_latents(teacher, train_records)
            saved["images"] = vars(enc)
            torch.save(saved, cache + ".tmp")
            os.replace(cache + ".tmp", cache)
    else:
        enc = EncodedImages(teacher, train_records, proposer)
        targets = TeacherTargets(teacher, enc, train_records, objects)
        torch.save({"images": vars(enc), "own": targets.own, "empty": targets.empty}, cache + ".tmp")
        os.replace(cache + ".tmp", cache)
    logger.info("encoded %d training images and their teacher targets in %.0f s", len(train_records),
                time.perf_counter() - start)
    from reasonbrain.binding import PhraseSimilarity

    similarity = PhraseSimilarity(cfg.table)
    noise_scheduler = None
    if cfg.unet_loss_weight:
        from reasonbrain.schedulers import make_scheduler

        noise_scheduler = make_scheduler(teacher.config.diffusion.train_scheduler)

    params = [p for p in reader.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    sched = get_scheduler("cosine", opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.max_steps)
    step = 0
    seconds_before = 0.0  # training time of the runs this one resumed
    state_path = os.path.join(cfg.output_dir, "state.pt")
    if resume and os.path.exists(state_path):
        state = torch.load(state_path, weights_only=False)
        reader.load_state_dict(state["reader"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = state["step"]
        seconds_before = state.get("seconds", 0.0)
        logger.info("resumed at step %d", step)
    rng = random.Random(f"{cfg.seed}:{step}")
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    reader.train()  # the shared modules stay in eval mode
    t0 = time.perf_counter()
    while step < cfg.max_steps:
        idx = torch.randint(len(train_records), (cfg.batch_size,))
        empty = torch.tensor([rng.random() < cfg.empty_probability for _ in range(len(idx))])
        texts = ["" if e else student_text(train_records[i], rng, cfg) for i, e in zip(idx.tolist(), empty.tolist())]
        # the student's object token comes from binding its own wording, as at inference
        objs = ["" if e else student_object(t, train_records[i], similarity)
                for t, i, e in zip(texts, idx.tolist(), empty.tolist())]
        student_out, target = condition(student, enc, idx, texts, objs), targets.batch(idx, empty)
        losses = distill_loss(student_out, target)
        if noise_scheduler is not None:
            losses["unet"] = unet_loss(student, enc, idx, student_out, target, targets.batch(idx, torch.ones_like(empty)),
                                       noise_scheduler, generator)
            losses["total"] = losses["total"] + cfg.unet_loss_weight * losses["unet"]
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        if step % cfg.log_every == 0:
            row = {"step": step, "seconds": round(time.perf_counter() - t0, 1), "lr": sched.get_last_lr()[0],
                   **{k: round(float(v.detach()), 5) for k, v in losses.items()}}
            append_csv(os.path.join(cfg.output_dir, "metrics.csv"), row)
            logger.info("%s", row)
        if step % cfg.save_every == 0 or step == cfg.max_steps:
            torch.save({"reader": reader.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "step": step, "seconds": seconds_before + time.perf_counter() - t0}, state_path + ".tmp")
            os.replace(state_path + ".tmp", state_path)
            save_checkpoint(student, os.path.join(cfg.output_dir, "checkpoint"))
            save_checkpoint(student, os.path.join(cfg.output_dir, f"checkpoint-{step:06d}"))
        if step % cfg.val_every == 0 or step == cfg.max_steps:
            metrics = {"step": step, **validate(student, val_records, cfg, proposer, VOCABULARY)}
            append_csv(os.path.join(cfg.output_dir, "validation.csv"), metrics)
            logger.info("validation %s", metrics)
    summary = {"steps": step, "seconds": round(seconds_before + time.perf_counter() - t0, 1), "teacher": cfg.teacher,
               "train_images": len(train_records), "config_file": config_file, "config": dataclasses.asdict(cfg)}
    with open(os.path.join(cfg.output_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reasonbrain.training.distill_reader", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="distillation config JSON (see DistillConfig)")
    ap.add_argument("--resume", action="store_true", help="continue from output_dir/state.pt")
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--output-dir")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = DistillConfig.from_json(args.config)
    overrides = {k: v for k, v in (("max_steps", args.max_steps), ("output_dir", args.output_dir)) if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    distill(cfg, resume=args.resume, config_file=args.config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
