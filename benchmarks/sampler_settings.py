"""Are a checkpoint's sampler defaults the best it can do? One setting at a time, on the validation split.

    python benchmarks/sampler_settings.py --checkpoint checkpoints/synth [--data-dir data/synth] [--stride 2]
        [--guidance 2 4.5] [--image-guidance 1 2] [--steps 20] [--scheduler EulerDiscreteScheduler] [--json out.json]

Each row changes one of the checkpoint's defaults (text guidance, image guidance, denoising steps, scheduler) and
edits the same validation records with the same seeds as the default row: every ``--stride``-th single edit and
every validation chain. It prints accuracy overall and on stories (the weakest category), the chains per hop count,
how many single edits only this row gets right and how many only the default gets right, and the time per edit.
Validation only: the test split reports figures, it never picks settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def rows_to_run(defaults, args) -> list[tuple[str, dict[str, Any]]]:
    """(label, edit settings) per row: the defaults first, then each asked-for value of one setting."""
    rows: list[tuple[str, dict[str, Any]]] = [(f"defaults (steps {defaults.num_inference_steps}, guidance "
                                               f"{defaults.guidance_scale:g}, image guidance "
                                               f"{defaults.image_guidance_scale:g})", {})]
    rows += [(f"guidance {g:g}", {"guidance_scale": g}) for g in args.guidance]
    rows += [(f"image guidance {g:g}", {"image_guidance_scale": g}) for g in args.image_guidance]
    rows += [(f"steps {n}", {"num_inference_steps": n}) for n in args.steps]
    rows += [(name, {"scheduler": name}) for name in args.scheduler]
    return rows


def run(pipe, data_dir: str, rows: list[tuple[str, dict[str, Any]]], *, stride: int = 2, limit: int | None = None,
        chain_limit: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """One result per row: the validation split's single edits and chains under that row's settings."""
    from reasonbrain.evaluation.synth_eval import evaluate_chains, evaluate_split

    results = []
    for label, settings in rows:
        settings = dict(settings)
        steps = settings.pop("num_inference_steps", None)
        single = evaluate_split(pipe, data_dir, "val", stride=stride, limit=limit, num_inference_steps=steps,
                                settings=settings, per_record=True, progress=progress)
        chains = evaluate_chains(pipe, data_dir, split="val", limit=chain_limit, num_inference_steps=steps,
                                 settings=settings, progress=progress)
        results.append({"label": label, "settings": {**settings, **({"num_inference_steps": steps} if steps else {})},
                        "single": single, "chains": chains})
    base = results[0]["single"]["hits"]
    for r in results:
        hits = r["single"]["hits"]
        r["right_only_here"] = sum(hits[k] and not base[k] for k in base)
        r["right_only_with_defaults"] = sum(base[k] and not hits[k] for k in base)
    return results


def table(results: list[dict[str, Any]]) -> str:
    depths = sorted({k for r in results for k in r["chains"] if k.endswith("-step")})
    n, n_chains = results[0]["single"]["n"], results[0]["chains"]["chains"]
    lines = [f"| setting | single edits (n={n}) | story | chains {' / '.join(depths)} (n={n_chains}) | "
             "right only here | right only with the defaults | s per edit |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        s = r["single"]
        chains = " / ".join(f"{r['chains'][d]:.1%}" if d in r["chains"] else "-" for d in depths)
        lines.append(f"| {r['label']} | {s['accuracy']:.1%} | {s['per_category'].get('story', float('nan')):.1%} | "
                     f"{chains} | {r['right_only_here']} | {r['right_only_with_defaults']} | "
                     f"{s['seconds_per_edit']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir", default="data/synth")
    ap.add_argument("--stride", type=int, default=2, help="every N-th validation single edit")
    ap.add_argument("--limit", type=int, help="at most this many single edits")
    ap.add_argument("--chain-limit", type=int, help="at most this many validation chains")
    ap.add_argument("--guidance", type=float, nargs="*", default=[2.0, 4.5])
    ap.add_argument("--image-guidance", type=float, nargs="*", default=[1.0, 2.0])
    ap.add_argument("--steps", type=int, nargs="*", default=[20])
    ap.add_argument("--scheduler", nargs="*", default=[], help="scheduler class names, e.g. EulerDiscreteScheduler")
    ap.add_argument("--json", help="also write every row's results here")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    pipe = ReasonBrainEditPipeline.from_pretrained(args.checkpoint)
    results = run(pipe, args.data_dir, rows_to_run(pipe.model.config.defaults, args), stride=args.stride,
                  limit=args.limit, chain_limit=args.chain_limit, progress=not args.no_progress)
    print(table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
