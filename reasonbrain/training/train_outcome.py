"""Teach a checkpoint's MLLM to say what it inferred: train its generation-only outcome adapter.

    python -m reasonbrain.training.train_outcome --checkpoint CKPT --out OUT [--steps N] [--threads 1] [--resume]
        [--max-minutes M]

The checkpoint's MLLM gets a new LoRA that is on only while it writes text (``ReasonBrainMLLM.add_outcome_adapter``:
the edit's forward never runs through it, so edits stay bit-identical). Only that LoRA is trained, on training-split
records (no chain steps). Its prompt is the edit's own MLLM sequence, [IA, R_V, R_T, E_T(H), [IMG_1..IMG_r]]
(``ReasonBrainModel.edit_sequence``; the image side, FRCE's inputs and region masks encoded once and cached): the
text goes on after the [IMG] tokens whose states V drive the edit, so the model verbalises what it inferred. The
instruction is half the time the record's own wording and half rephrased (``synthworld.language.rephrase_record``,
training families), bound to an object as at inference; it stands in the sequence as at inference (a reader's
states, or tokens). The target is ``synthworld.outcome.outcome_text(record)`` ("the green apple on the left becomes
a rotten, shrivelled brown apple"), teacher-forced: cross-entropy over its tokens and the end token.

Validation records (own and rephrased wording, ``split="val"``) choose the step: the pipeline writes the outcome
(``ReasonBrainEditPipeline.infer_outcomes``) and ``synthworld.outcome.score_outcome`` scores object and outcome.
OUT is a pipeline folder: the checkpoint with the chosen adapter and ``generate_reasoning: true`` (the checkpoint's
other top-level files copied), plus ``outcome_summary.json``. Work files (the encoded cache, metrics.csv,
validation.csv, state.pt for ``--resume``) go to ``--work-dir`` (default OUT + ".work"). On a small time budget,
``--max-minutes M`` stops with the state saved; the same command with ``--resume`` goes on (OUT is written at the end).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.optimization import get_scheduler

from reasonbrain.models.reasonbrain import ReasonBrainModel

logger = logging.getLogger(__name__)

MAX_CHECKPOINT_MB = 40.0  # the bundled checkpoint's limit (MB = 2**20 bytes)


@dataclass
class OutcomeTrainConfig:
    checkpoint: str
    out: str
    work_dir: str | None = None  # default: OUT + ".work"
    data_dir: str = "data/synth"
    adapter: dict[str, Any] = field(default_factory=lambda: {"r": 16, "alpha": 32, "dropout": 0.05})
    steps: int = 4000
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    own_wording_probability: float = 0.5  # else rephrase_record(..., split="train")
    train_records: int | None = None  # the first N training records (default: all), encoded once and cached
    val_records: int = 150
    val_every: int = 500
    log_every: int = 50
    save_every: int = 250
    eval_batch_size: int = 50
    seed: int = 0
    max_minutes: float | None = None  # stop (state saved) after this much training time; --resume goes on

    @property
    def work(self) -> str:
        return self.work_dir or self.out.rstrip("/") + ".work"


# ------------------------------------------------------------------------------------------------ data
def training_wording(record, rng: random.Random, own_probability: float) -> str:
    """The record's own instruction or a training-family rephrasing of it."""
    from reasonbrain.synthworld.language import rephrase_record

    return record.instruction if rng.random() < own_probability else rephrase_record(record, rng, split="train")


class EncodedRecords:
    """What the frozen image side gives each record's source image, computed once: IA tokens (N, P, d_llm), the
    multi-scale features FRCE reads (N, P, Dv*k) and the region masks pooled on the feature grid (N, R, g, g)."""

    def __init__(self, model: ReasonBrainModel, records: list, cache: str, checkpoint: str) -> None:
        from reasonbrain.regions import build_region_proposer
        from reasonbrain.training.distill_reader import EncodedImages

        key = {"checkpoint": os.path.abspath(checkpoint), "records": [r.id for r in records]}
        if os.path.exists(cache):
            saved = torch.load(cache, weights_only=False)  # our own cache file
            if saved["key"] == key:
                self.__dict__.update(saved["tensors"])
                return
            logger.info("%s was made for another checkpoint or other records; encoding again", cache)
        enc = EncodedImages(model, records, build_region_proposer(model.config.regions, load_pretrained=False))
        self.ia_tokens, self.image_features = enc.ia_tokens, enc.image_features
        self.masks, self.valid = enc.masks, enc.valid
        torch.save({"key": key, "tensors": vars(self)}, cache + ".tmp")
        os.replace(cache + ".tmp", cache)

    @torch.no_grad()
    def edit_prompts(self, model: ReasonBrainModel, idx: list[int], instructions: list[str],
                     object_tokens: list[str]) -> dict[str, torch.Tensor]:
        """The edit's MLLM sequence for records ``idx`` with these wordings and object tokens (frozen: no grad)."""
        return model.edit_sequence(self.ia_tokens[idx], self.image_features[idx], instructions, object_tokens,
                                   self.masks[idx], self.valid[idx]).sequence


def target_ids(model: ReasonBrainModel, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Outcome texts as MLLM token ids plus the end token, right-padded: ids (B, T), keep (B, T)."""
    tok = model.mllm.tokenizer
    rows = [tok.encode(t, add_special_tokens=False) + [tok.eos_token_id] for t in texts]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), tok.pad_token_id, dtype=torch.long)
    keep = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        keep[i, : len(r)] = True
    return ids, keep


# ------------------------------------------------------------------------------------------------ loss
def outcome_logits(model: ReasonBrainModel, prompt: dict[str, torch.Tensor], ids: torch.Tensor,
                   keep: torch.Tensor) -> torch.Tensor:
    """Teacher forcing through the outcome adapter: the logits (B, T, vocab) that predict each of the target ids
    (B, T) after ``prompt`` (an edit's MLLM sequence), positions counted as generation counts them."""
    # generated tokens go in through the generation model's own embedding (an adapter may target it)
    target_embeds = model.mllm.outcome_lm.get_base_model().get_input_embeddings()(ids)  # (B, T, d_llm)
    embeds = torch.cat([prompt["inputs_embeds"], target_embeds.to(prompt["inputs_embeds"].dtype)], dim=1)
    attention = torch.cat([prompt["attention_mask"], keep.long()], dim=1)  # (B, L + T)
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    n_target = ids.shape[1]
    logits = model.mllm.outcome_lm(inputs_embeds=embeds, attention_mask=attention, position_ids=position_ids,
                                   logits_to_keep=n_target + 1).logits  # (B, T + 1, vocab)
    return logits[:, :-1]  # the state before each target token predicts it


def outcome_losses(model: ReasonBrainModel, prompt: dict[str, torch.Tensor],
                   targets: list[str]) -> dict[str, torch.Tensor]:
    """{"nll": cross-entropy over each outcome text's tokens and end token, "token_accuracy": greedy hits}."""
    device = prompt["inputs_embeds"].device
    ids, keep = target_ids(model, targets)
    ids, keep = ids.to(device), keep.to(device)
    predicting = outcome_logits(model, prompt, ids, keep)[keep]  # (n target tokens, vocab)
    nll = F.cross_entropy(predicting.float(), ids[keep])
    hits = (predicting.argmax(-1) == ids[keep]).float().mean()
    return {"nll": nll, "token_accuracy": hits.detach()}


# ------------------------------------------------------------------------------------------------ validation
def validate(model: ReasonBrainModel, records: list, cfg: OutcomeTrainConfig) -> dict[str, float]:
    """Outcome accuracy on validation records, own wording and rephrased (``split="val"``)."""
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.synthworld.language import rephrase_record
    from reasonbrain.synthworld.outcome import evaluate_outcomes, outcome_percentages

    was_training = model.mllm.outcome_lm.training
    from reasonbrain.regions import build_region_proposer

    # the proposer the edits use (synth: the colour segmenter); no download here, so a SAM backend gets random weights
    proposer = build_region_proposer(model.config.regions, load_pretrained=False)
    pipe = ReasonBrainEditPipeline(model=model, region_proposer=proposer)  # (puts the model in eval mode)
    rng = random.Random(f"{cfg.seed}:val")
    out = {}
    for label, wordings in (("own", [r.instruction for r in records]),
                            ("rephrased", [rephrase_record(r, rng, split="val") for r in records])):
        scores = outcome_percentages(evaluate_outcomes(pipe, records, wordings, cfg.eval_batch_size))
        out.update({f"{label}_{k}": v for k, v in scores.items()})
    out["score"] = round((out["own_both"] + out["rephrased_both"]) / 2, 2)
    model.mllm.outcome_lm.train(was_training)
    return out


# ------------------------------------------------------------------------------------------------ training
def folder_mb(folder: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs) / 2**20


def write_checkpoint(model: ReasonBrainModel, source: str, out: str) -> float:
    """``model`` as a pipeline folder at ``out`` (atomically), with ``source``'s other top-level files (its card,
    metrics: the edit is unchanged by the adapter); returns its size in MB."""
    from reasonbrain.training.train import save_checkpoint

    save_checkpoint(model, out)
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if os.path.isfile(path) and not os.path.exists(os.path.join(out, name)):
            shutil.copy2(path, os.path.join(out, name))
    return folder_mb(out)


def train_outcome(cfg: OutcomeTrainConfig, resume: bool = False) -> dict[str, Any]:
    from reasonbrain.binding import PhraseSimilarity
    from reasonbrain.synthworld.dataset import load_split
    from reasonbrain.synthworld.outcome import outcome_text
    from reasonbrain.training.distill_reader import student_object
    from reasonbrain.training.train import append_csv

    if os.path.abspath(cfg.out) == os.path.abspath(cfg.checkpoint):
        raise ValueError("--out must differ from --checkpoint (the checkpoint is read, never overwritten)")
    torch.manual_seed(cfg.seed)
    os.makedirs(cfg.work, exist_ok=True)
    model = ReasonBrainModel.from_pretrained(cfg.checkpoint)
    model.requires_grad_(False)
    model.with_outcome_adapter(cfg.adapter)  # a new adapter, replacing any the checkpoint had
    params = model.mllm.outcome_parameters()
    for p in params:
        p.requires_grad_(True)
    train_records = [r for r in load_split(cfg.data_dir, "train") if r.chain_id is None][: cfg.train_records]
    val_records = [r for r in load_split(cfg.data_dir, "val") if r.chain_id is None][: cfg.val_records]
    targets = [outcome_text(r) for r in train_records]
    longest = max(len(model.mllm.tokenizer.encode(t, add_special_tokens=False)) for t in targets)
    if longest + 8 > model.config.mllm.reasoning_max_new_tokens:  # room for the longest outcome and its end
        model.config = model.config.replace(mllm={"reasoning_max_new_tokens": longest + 8})
    start = time.perf_counter()
    encoded = EncodedRecords(model, train_records, os.path.join(cfg.work, "encoded.pt"), cfg.checkpoint)
    logger.info("%d training images encoded (or read from the cache) in %.0f s; %d validation records",
                len(train_records), time.perf_counter() - start, len(val_records))
    table = model.config.text_encoder.pretrained_table or model.config.defaults.binding_table
    similarity = PhraseSimilarity(table) if table else None  # binding as the pipeline binds

    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    sched = get_scheduler("cosine", opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps)
    step, seconds_before = 0, 0.0
    best: dict[str, Any] = {"score": -1.0}
    state_path = os.path.join(cfg.work, "state.pt")
    if resume and os.path.exists(state_path):
        state = torch.load(state_path, weights_only=False)  # our own state file
        if state["checkpoint"] != os.path.abspath(cfg.checkpoint) or state["adapter"] != cfg.adapter:
            raise ValueError(f"{state_path} belongs to another run ({state['checkpoint']}, {state['adapter']}); "
                             "use another --work-dir or drop --resume")
        for p, v in zip(params, state["weights"]):
            p.data.copy_(v)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, seconds_before, best = state["step"], state["seconds"], state["best"]
        logger.info("resumed at step %d (best so far: %s)", step, {k: v for k, v in best.items() if k != "weights"})
    rng = random.Random(f"{cfg.seed}:{step}")
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + step)
    model.mllm.outcome_lm.train()
    t0 = time.perf_counter()

    def save_state() -> None:
        torch.save({"checkpoint": os.path.abspath(cfg.checkpoint), "adapter": cfg.adapter, "step": step,
                    "weights": [p.detach().clone() for p in params], "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "best": best,
                    "seconds": seconds_before + time.perf_counter() - t0}, state_path + ".tmp")
        os.replace(state_path + ".tmp", state_path)

    while step < cfg.steps:
        idx = torch.randint(len(train_records), (cfg.batch_size,), generator=gen).tolist()
        texts = [training_wording(train_records[i], rng, cfg.own_wording_probability) for i in idx]
        objects = [student_object(t, train_records[i], similarity) for t, i in zip(texts, idx)]  # bound as inferred
        losses = outcome_losses(model, encoded.edit_prompts(model, idx, texts, objects), [targets[i] for i in idx])
        opt.zero_grad(set_to_none=True)
        losses["nll"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        if step % cfg.log_every == 0:
            row = {"step": step, "seconds": round(seconds_before + time.perf_counter() - t0, 1),
                   "lr": sched.get_last_lr()[0], **{k: round(float(v.detach()), 4) for k, v in losses.items()}}
            append_csv(os.path.join(cfg.work, "metrics.csv"), row)
            logger.info("%s", row)
        if step % cfg.val_every == 0 or step == cfg.steps:
            metrics = {"step": step, **validate(model, val_records, cfg)}
            append_csv(os.path.join(cfg.work, "validation.csv"), metrics)
            logger.info("validation %s", metrics)
            if metrics["score"] > best["score"]:
                best = {**metrics, "weights": [p.detach().clone() for p in params]}
        if step % cfg.save_every == 0 or step == cfg.steps:
            save_state()
        if cfg.max_minutes is not None and step < cfg.steps and time.perf_counter() - t0 > 60 * cfg.max_minutes:
            save_state()
            logger.info("stopped after %.1f minutes at step %d of %d; run again with --resume to go on",
                        cfg.max_minutes, step, cfg.steps)
            return {"stopped_at_step": step, "steps": cfg.steps, "state": state_path}
    seconds = round(seconds_before + time.perf_counter() - t0, 1)

    with torch.no_grad():  # the validation-chosen step
        for p, v in zip(params, best["weights"]):
            p.copy_(v)
    model.mllm.outcome_lm.eval()
    size_mb = write_checkpoint(model, cfg.checkpoint, cfg.out)
    chosen = {k: v for k, v in best.items() if k != "weights"}
    summary = {
        "checkpoint": cfg.checkpoint, "steps": step, "train_seconds": seconds, "chosen_step": chosen["step"],
        "validation": chosen, "train_records": len(train_records), "val_records": len(val_records),
        "adapter_parameters": sum(p.numel() for p in params), "checkpoint_mb": round(size_mb, 2),
        "torch_threads": torch.get_num_threads(), "config": dataclasses.asdict(cfg),
    }
    with open(os.path.join(cfg.out, "outcome_summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    if size_mb >= MAX_CHECKPOINT_MB:
        raise ValueError(f"{cfg.out} is {size_mb:.1f} MB, over the {MAX_CHECKPOINT_MB:.0f} MB limit; use a smaller "
                         "adapter (a lower r, or fewer target modules)")
    logger.info("wrote %s (%.1f MB): step %d chosen on validation %s", cfg.out, size_mb, chosen["step"], chosen)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reasonbrain.training.train_outcome", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="pipeline folder to add the outcome adapter to (read only)")
    ap.add_argument("--out", required=True, help="the new pipeline folder (checkpoint + adapter)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default 4000)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--resume", action="store_true", help="continue from WORK_DIR/state.pt")
    ap.add_argument("--work-dir", default=None, help="cache, logs and resume state (default: OUT.work)")
    ap.add_argument("--data-dir", default=None, help="the synth dataset (default data/synth)")
    ap.add_argument("--train-records", type=int, default=None)
    ap.add_argument("--val-records", type=int, default=None)
    ap.add_argument("--val-every", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None, dest="learning_rate")
    ap.add_argument("--rank", type=int, default=None, help="LoRA rank r (alpha = 2r)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop after this many minutes of training (state saved; --resume goes on)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = OutcomeTrainConfig(checkpoint=args.checkpoint, out=args.out)
    overrides = {k: getattr(args, k) for k in ("steps", "work_dir", "data_dir", "train_records", "val_records",
                                              "val_every", "batch_size", "learning_rate", "seed", "max_minutes")
                 if getattr(args, k) is not None}
    if args.rank is not None:
        overrides["adapter"] = {**cfg.adapter, "r": args.rank, "alpha": 2 * args.rank}
    cfg = dataclasses.replace(cfg, **overrides)
    summary = train_outcome(cfg, resume=args.resume)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
