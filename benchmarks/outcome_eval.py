"""What the model says it inferred: is the object and the outcome in its Reasoning text the right one?

    python benchmarks/outcome_eval.py --checkpoint CKPT [--split test] [--limit N] [--threads 2] [--json-out F]
        [--show-failures N]

For held-out synth records (no chain steps) the pipeline writes its reasoning text from the source image and the
instruction (``ReasonBrainEditPipeline.infer_outcomes``: step 5 of an edit, what the app's Reasoning field and the
CLI's sidecar show), once with the record's own wording and once rephrased with the test split's wording families
(``synthworld.language.rephrase_record(split="test")``, held-out families included). ``synthworld.outcome`` scores
each text: object right (the target's kind at its position; the scene for the sky), outcome right (the target's
``to_state``), both. Prints a markdown table per category. The checkpoint needs ``mllm.generate_reasoning`` (an
outcome adapter: ``python -m reasonbrain.training.train_outcome``).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

WORDINGS = ("own", "rephrased")


def evaluate(pipe, records: list, *, split: str, seed: int = 0, batch_size: int = 50) -> dict[str, list[dict]]:
    from reasonbrain.synthworld.language import rephrase_record
    from reasonbrain.synthworld.outcome import evaluate_outcomes

    rng = random.Random(f"{seed}:{split}")
    wordings = {"own": [r.instruction for r in records],
                "rephrased": [rephrase_record(r, rng, split=split) for r in records]}
    return {label: evaluate_outcomes(pipe, records, wordings[label], batch_size) for label in WORDINGS}


def summarise(rows: dict[str, list[dict]]) -> dict[str, dict]:
    """{category (and "overall"): {"n", "own": {object, outcome, both}, "rephrased": {...}}}."""
    from reasonbrain.synthworld.outcome import outcome_percentages

    out: dict[str, dict] = {}
    categories = sorted({r["category"] for r in rows["own"]})
    for name in [*categories, "overall"]:
        pick = (lambda r: True) if name == "overall" else (lambda r, c=name: r["category"] == c)
        out[name] = {"n": sum(map(pick, rows["own"])),
                     **{label: outcome_percentages([r for r in rows[label] if pick(r)]) for label in WORDINGS}}
    return out


def print_table(summary: dict[str, dict], title: str) -> None:
    print(f"\n## inferred outcome: {title}\n")
    print("| category | n | own: object | own: outcome | own: both | rephrased: object | rephrased: outcome "
          "| rephrased: both |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, v in summary.items():
        cells = [f"{v[label][k]:.1f} %" for label in WORDINGS for k in ("object", "outcome", "both")]
        if name == "overall":
            name, cells = "**overall**", [f"**{c}**" for c in cells]
        print(f"| {name} | {v['n']} | " + " | ".join(cells) + " |")
    print()


def main(argv: list[str] | None = None) -> int:
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.synthworld.dataset import load_split

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--split", default="test", choices=("test", "val"), help="held-out records (default test)")
    ap.add_argument("--data-dir", default="data/synth")
    ap.add_argument("--limit", type=int, default=None, help="the first N records of the split")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="seeds the rephrased wording")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--show-failures", type=int, default=0, metavar="N", help="print N wrong texts per wording")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = ReasonBrainEditPipeline.from_pretrained(args.checkpoint)
    if pipe.reasoning_kind is None:
        raise SystemExit(f"{args.checkpoint} writes no reasoning text (mllm.generate_reasoning is false): train an "
                         "outcome adapter with python -m reasonbrain.training.train_outcome")
    records = [r for r in load_split(args.data_dir, args.split) if r.chain_id is None][: args.limit]
    start = time.perf_counter()
    rows = evaluate(pipe, records, split=args.split, seed=args.seed)
    seconds = time.perf_counter() - start
    summary = summarise(rows)
    print_table(summary, f"{args.checkpoint}, {args.split} split ({len(records)} records, {seconds:.0f} s, "
                         f"reasoning kind: {pipe.reasoning_kind})")
    for label in WORDINGS:
        wrong = [r for r in rows[label] if not r["both_right"]][: args.show_failures]
        for r in wrong:
            print(f"  x [{label}/{r['category']}] {r['instruction']!r}\n      said     {r['generated']!r}\n"
                  f"      expected {r['expected']!r}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "checkpoint": args.checkpoint, "split": args.split, "records": len(records), "seed": args.seed,
            "seconds": round(seconds, 1), "summary": summary, "rows": rows}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
