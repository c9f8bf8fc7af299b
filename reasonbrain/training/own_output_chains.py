"""Chain steps whose source is the model's own previous edit: training data for multi-hop robustness.

    python -m reasonbrain.training.own_output_chains --checkpoint checkpoints/synth --data data/synth \
        --out data/synth_own_chains [--split train] [--limit N]

In a multi-hop chain every step after the first edits the model's own previous result, which is blurrier and
less exact than the synth world's ideal scenes the edit model was trained on. For each chain of ``--split``, this
runs the checkpoint step by step as the chains evaluation does (``synth_eval.evaluate_chains``, same seeds) and
writes, for every step after the first, a Reason50K record whose source is the model's own output of the step
before, with that step's ideal target and wrong outcomes (``no_change`` stays the ideal source, as the chains
evaluation scores it: against the model's blurrier own source, doing nothing would look closer than a crisp right
edit).
A refusal ends the chain. Only ``train`` (to train on) and ``val`` (to validate with) are allowed: the test
split's chains measure generalisation and are never trained on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

ALLOWED_SPLITS = ("train", "val")
IMAGES = "images"


def write_own_output_chains(pipe: Any, data_dir: str, out_dir: str, *, split: str = "train", limit: int | None = None,
                            seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Write ``out_dir/<split>.jsonl`` and its images (see the module docstring); returns a summary."""
    from reasonbrain.evaluation.synth_eval import chain_seed
    from reasonbrain.referring import ObjectNotInImageError
    from reasonbrain.synthworld.dataset import load_chains

    if split not in ALLOWED_SPLITS:
        raise ValueError(f"split must be one of {', '.join(ALLOWED_SPLITS)}, got {split!r}: the test split's chains "
                         "measure generalisation and are never trained on")
    out = Path(out_dir)
    if (out / f"{split}.jsonl").exists():
        raise ValueError(f"{out / f'{split}.jsonl'} exists; give a new --out folder")
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    chains = [c for c in load_chains(data_dir) if c.split == split][:limit]
    start, rows, refused = time.perf_counter(), [], 0
    for c_i, chain in enumerate(tqdm(chains, desc=f"own-output chains ({split})", disable=not progress)):
        steps = chain.steps
        current: Any = str(steps[0].path(steps[0].src_image))
        for depth, (rec, nxt) in enumerate(zip(steps, steps[1:]), 1):
            try:
                current = pipe(current, rec.instruction, seed=chain_seed(seed, c_i, depth)).images[0]
            except ObjectNotInImageError:
                refused += 1
                break
            rows.append(_record(nxt, current, out, f"{nxt.id}-own{depth}"))
    with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    summary = {"split": split, "chains": len(chains), "records": len(rows), "refused_chains": refused,
               "seconds": round(time.perf_counter() - start, 1), "data_dir": str(data_dir), "seed": seed}
    (out / f"{split}_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    logger.info("own-output chains: %s", summary)
    return summary


def _record(step: Any, source: Any, out: Path, record_id: str) -> dict[str, Any]:
    """``step``'s record with ``source`` (the model's own edit) as its source image, its images copied to ``out``."""
    src_rel = f"{IMAGES}/{record_id}_src.png"
    source.save(out / src_rel)

    def copied(rel: str, name: str) -> str:
        new = f"{IMAGES}/{record_id}_{name}.png"
        shutil.copyfile(step.path(rel), out / new)
        return new

    alternatives = [dataclasses.replace(a, image=copied(a.image, a.kind)) for a in step.alternatives]
    own = dataclasses.replace(step, id=record_id, src_image=src_rel, tgt_image=copied(step.tgt_image, "tgt"),
                              alternatives=alternatives, chain_id=None, step=None, root=out)
    return own.to_json()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reasonbrain.training.own_output_chains", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="the model whose own outputs become the sources")
    ap.add_argument("--data", required=True, help="a synthworld folder holding chains.jsonl")
    ap.add_argument("--out", required=True, help="new folder for <split>.jsonl and images/")
    ap.add_argument("--split", default="train", choices=ALLOWED_SPLITS)
    ap.add_argument("--limit", type=int, default=None, help="first N chains of the split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", force=True)
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    pipe = ReasonBrainEditPipeline.from_pretrained(args.checkpoint).to(args.device)
    try:
        summary = write_own_output_chains(pipe, args.data, args.out, split=args.split, limit=args.limit,
                                          seed=args.seed)
    except ValueError as err:
        ap.error(str(err))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
