"""Reasoning accuracy of a checkpoint on a synth-world split (and on its multi-hop chains).

    python -m reasonbrain.evaluation.synth_eval --checkpoint checkpoints/synth --data-dir data/synth \
        [--split test] [--limit N] [--chains] [--json out.json] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def evaluate_split(pipe, data_dir: str, split: str = "test", *, limit: int | None = None, seed: int = 0,
                   num_inference_steps: int | None = None, stride: int = 1, progress: bool = True,
                   rephrase: bool = False, settings: dict[str, Any] | None = None,
                   per_record: bool = False) -> dict[str, Any]:
    """Edit every ``stride``-th record of ``split`` (up to ``limit``) and score reasoning accuracy.

    ``rephrase``: each record's instruction is replaced by ``synthworld.language.rephrase_record(..., split)`` (on
    the test split that draws on the held-out families). A "not in this picture" refusal counts as no change
    (wrong); ``refused`` says how many. ``settings``: more keyword arguments of each edit (``guidance_scale``,
    ``image_guidance_scale``, ``scheduler``). ``per_record``: also ``hits``, record id -> right or not."""
    from reasonbrain.referring import ObjectNotInImageError
    from reasonbrain.synthworld.accuracy import reasoning_accuracy
    from reasonbrain.synthworld.dataset import load_split
    from reasonbrain.synthworld.language import rephrase_record

    records = [r for r in load_split(data_dir, split) if r.chain_id is None][::stride]
    if limit:
        records = records[:limit]
    start = time.perf_counter()
    edits, refused = [], 0
    for i, rec in enumerate(tqdm(records, desc=f"edit {split}", disable=not progress)):
        text = rephrase_record(rec, random.Random(f"{seed}:{rec.id}"), split=split) if rephrase else rec.instruction
        try:
            out = pipe(str(rec.path(rec.src_image)), text, seed=seed + i, num_inference_steps=num_inference_steps,
                       **(settings or {}))
            edits.append(out.images[0])
        except ObjectNotInImageError:
            refused += 1
            edits.append(rec.load_image("src"))
    seconds = time.perf_counter() - start
    result = reasoning_accuracy(records, edits, per_record=per_record)
    result["seconds_per_edit"] = seconds / max(len(records), 1)
    result["split"] = split
    result["refused"] = refused
    result["rephrased"] = rephrase
    return result


CI_SUBSET_SAMPLES = 400  # the first samples of seed 0; the held-out test ones among them form the CI subset


def evaluate_ci_subset(pipe, workdir: str) -> dict[str, Any]:
    """Accuracy on the fixed held-out subset the CI test checks (test-split samples among the first 400 of seed 0,
    regenerated on the fly so CI needs no dataset)."""
    from reasonbrain.synthworld.dataset import write_dataset

    write_dataset(workdir, n=CI_SUBSET_SAMPLES, seed=0, resolution=pipe.config.resolution, n_chains=0, workers=1,
                  progress=False)
    return evaluate_split(pipe, workdir, "test", progress=False)



def chain_seed(seed: int, chain_index: int, depth: int) -> int:
    """The seed of step ``depth`` (1-based) of the ``chain_index``-th chain (the chains evaluation and the own-output
    chain data use the same)."""
    return seed + 100 * chain_index + depth - 1

def evaluate_chains(pipe, data_dir: str, *, limit: int | None = None, seed: int = 0,
                    num_inference_steps: int | None = None, progress: bool = True,
                    split: str | None = "test", settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Multi-hop: each step edits the model's own previous result; accuracy per hop count (as table A5), on the
    chains of ``split`` (held-out ones by default; None: every chain, training ones included). ``per_holdout``
    splits it by chain: ``seen`` (no step holds anything out from training) and ``held out`` (any step has a
    held-out template, or the scene a held-out kind x background combination). ``settings`` as in
    ``evaluate_split``."""
    from reasonbrain.referring import ObjectNotInImageError
    from reasonbrain.synthworld.accuracy import holdout_group, is_correct
    from reasonbrain.synthworld.dataset import load_chains

    chains = [c for c in load_chains(data_dir) if split is None or c.split == split]
    if limit:
        chains = chains[:limit]
    by_depth: dict[int, list[bool]] = {}
    by_group: dict[str, dict[int, list[bool]]] = {}
    for c_i, chain in enumerate(tqdm(chains, desc="edit chains", disable=not progress)):
        steps = chain.steps
        group = by_group.setdefault(
            "seen" if all(holdout_group(r) == "seen" for r in steps) else "held out", {})
        current: object = str(steps[0].path(steps[0].src_image))
        for depth, rec in enumerate(steps, 1):  # as pipe.chain, step by step: a refusal fails this step and later
            try:  # ones, and keeps the earlier steps' results
                out = pipe(current, rec.instruction, seed=chain_seed(seed, c_i, depth),
                           num_inference_steps=num_inference_steps, **(settings or {}))
            except ObjectNotInImageError:
                for later in range(depth, len(steps) + 1):
                    by_depth.setdefault(later, []).append(False)
                    group.setdefault(later, []).append(False)
                break
            current = out.images[0]
            ok = is_correct(current, rec.path(rec.tgt_image), [rec.path(a.image) for a in rec.alternatives])
            by_depth.setdefault(depth, []).append(ok)
            group.setdefault(depth, []).append(ok)

    def per_depth(results: dict[int, list[bool]]) -> dict[str, float]:
        return {f"{d}-step": sum(v) / len(v) for d, v in sorted(results.items())}

    groups = [g for g in CHAIN_HOLDOUT_LABELS if g in by_group]
    return per_depth(by_depth) | {
        "chains": len(chains), "split": split, "count_per_depth": {d: len(v) for d, v in sorted(by_depth.items())},
        "per_holdout": {g: per_depth(by_group[g]) for g in groups},
        "count_per_holdout": {g: {d: len(v) for d, v in sorted(by_group[g].items())} for g in groups}}


def markdown_table(result: dict[str, Any]) -> str:
    """The accuracy table per category, then (when the result has it) per what the records hold out from
    training, then L1, PSNR and time per edit."""
    cats = result["per_category"]
    lines = ["| category | n | reasoning accuracy |", "|---|---:|---:|"]
    for c, acc in cats.items():
        lines.append(f"| {c} | {result['count_per_category'][c]} | {acc:.1%} |")
    lines.append(f"| **overall** | {result['n']} | **{result['accuracy']:.1%}** |")
    lines.append("")
    if result.get("per_holdout"):
        lines += ["| held out from training | n | reasoning accuracy |", "|---|---:|---:|"]
        lines += [f"| {HOLDOUT_LABELS.get(g, g)} | {result['count_per_holdout'][g]} | {acc:.1%} |"
                  for g, acc in result["per_holdout"].items()]
        lines.append("")
    lines.append(f"L1 to target {result['l1']:.4f}, PSNR {result['psnr']:.2f} dB, "
                 f"{result['seconds_per_edit']:.3f} s per edit.")
    return "\n".join(lines)


HOLDOUT_LABELS = {"seen": "nothing (template and kind x background seen in training)",
                  "template": "the instruction template", "combo": "the kind x background combination",
                  "template+combo": "both"}


CHAIN_HOLDOUT_LABELS = {"seen": "chains holding nothing out from training",
                        "held out": "chains with a held-out template or kind x background"}


def chains_text(chains: dict[str, Any]) -> str:
    """Chain accuracy per hop count, then per ``per_holdout`` group when the result has it (its chain count is
    the number of its 1-step edits: every chain has a first step)."""
    text = " / ".join(f"{k}: {v:.1%}" for k, v in chains.items() if k.endswith("-step"))
    parts = []
    for g, accs in chains.get("per_holdout", {}).items():
        n = next(iter(chains["count_per_holdout"][g].values()), 0)
        parts.append(f"{CHAIN_HOLDOUT_LABELS.get(g, g)} ({n}): " + " / ".join(f"{v:.1%}" for v in accs.values()))
    return text + (f" ({'; '.join(parts)})" if parts else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reasonbrain.evaluation.synth_eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir", default="data/synth")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--chains", action="store_true", help="also evaluate multi-hop chains")
    ap.add_argument("--rephrase", action="store_true",
                    help="replace each instruction by a rephrasing (held-out families on the test split)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ... (results move by float noise across devices)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", force=True)
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    pipe = ReasonBrainEditPipeline.from_pretrained(args.checkpoint).to(args.device)
    result = evaluate_split(pipe, args.data_dir, args.split, limit=args.limit, stride=args.stride,
                            num_inference_steps=args.steps, rephrase=args.rephrase)
    print(markdown_table(result))
    if args.chains:
        result["chains"] = evaluate_chains(pipe, args.data_dir, limit=args.limit, num_inference_steps=args.steps)
        print("chains:", chains_text(result["chains"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
