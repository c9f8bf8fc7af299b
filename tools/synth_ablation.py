"""Miniature table 4: train variants of the synth preset with one budget and compare reasoning accuracy.

    python tools/synth_ablation.py --steps 1200 --variants baseline,full --init-vae runs/synth/vae_pretrained \
        --limit 300 --out runs/ablation

Each variant trains from ``configs/train_synth.json`` with its ``components`` switches (``baseline``: every
FRCE/CME component off, the paper's "MLLM + diffusion"; ``full``: all on; ``no_<switch>``: one component off)
and the same steps, batch, learning-rate schedule, seed and pre-trained VAE; then edits the first ``--limit``
test records. Writes ``<out>/table.md`` and ``<out>/table.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reasonbrain.evaluation.synth_eval import evaluate_split  # noqa: E402
from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline  # noqa: E402
from reasonbrain.training.task import ABLATION_SWITCHES  # noqa: E402
from reasonbrain.training.train import TrainConfig, train  # noqa: E402


def variant_components(name: str) -> dict[str, bool]:
    if name == "full":
        return {}
    if name == "baseline":
        return {"baseline": True}
    if name.startswith("no_") and name[3:] in ABLATION_SWITCHES:
        return {name[3:]: False}
    raise SystemExit(f"unknown variant {name!r}: use full, baseline or no_<{'|'.join(ABLATION_SWITCHES)}>")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/train_synth.json")
    ap.add_argument("--variants", default="baseline,full")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--init-vae", required=True, help="a VAE pre-trained once and shared by every variant")
    ap.add_argument("--limit", type=int, default=300, help="test records edited per variant")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--only-train", action="store_true", help="train, do not evaluate (run variants in parallel)")
    ap.add_argument("--only-eval", action="store_true", help="evaluate variants trained earlier")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)

    base = TrainConfig.from_json(args.config)
    rows = {}
    for name in args.variants.split(","):
        out_dir = os.path.join(args.out, name)
        if not args.only_eval:
            cfg = dataclasses.replace(base, components=variant_components(name), max_steps=args.steps,
                                      output_dir=out_dir, init_vae=args.init_vae, vae_steps=0,
                                      val_every=args.steps, save_every=args.steps)
            train(cfg)
        if args.only_train:
            continue
        pipe = ReasonBrainEditPipeline.from_pretrained(os.path.join(out_dir, "checkpoint"))
        result = evaluate_split(pipe, base.data_dir, "test", limit=args.limit)
        params = sum(p.numel() for p in pipe.model.parameters())
        rows[name] = {"params": params, **{k: result[k] for k in ("n", "accuracy", "per_category", "l1", "psnr")}}
        print(name, json.dumps(rows[name]), flush=True)
    if args.only_train:
        return 0
    cats = sorted({c for r in rows.values() for c in r["per_category"]})
    lines = [f"Same budget for every variant: {args.steps} steps, batch {base.batch_size}, lr {base.learning_rate}, "
             f"seed {base.seed}, shared pre-trained VAE; first {args.limit} test records.", "",
             "| variant | params | " + " | ".join(cats) + " | overall | L1 | PSNR |",
             "|---|---:|" + "---:|" * (len(cats) + 3)]
    for name, r in rows.items():
        per = " | ".join(f"{r['per_category'].get(c, float('nan')):.1%}" for c in cats)
        lines.append(f"| {name} | {r['params'] / 1e6:.2f}M | {per} | **{r['accuracy']:.1%}** | {r['l1']:.4f} | "
                     f"{r['psnr']:.2f} |")
    table = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    Path(args.out, "table.md").write_text(table, encoding="utf-8")
    Path(args.out, "table.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
