"""Command line: generate the synthetic reasoning dataset.

    python -m reasonbrain synthworld --n 20000 --out data/synth            (the project's dispatcher)
    python -m reasonbrain.synthworld.cli --n 50 --out /tmp/x                (directly)
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from reasonbrain.synthworld.dataset import write_dataset

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=20000, help="number of single samples (default 20000)")
    parser.add_argument("--out", type=Path, default=Path("data/synth"), help="output folder (default data/synth)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed; same seed -> identical files")
    parser.add_argument("--resolution", type=int, default=64, help="image size in pixels (default 64)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count; 1 for small n)")
    parser.add_argument("--chains", type=int, default=None, help="multi-hop chains to add (default n // 20)")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=None, metavar=("TRAIN", "VAL", "TEST"),
                        help="split probabilities (default 0.85 0.05 0.10); '1 0 0' writes extra training data only")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    extra = {"split_fractions": tuple(args.split_fractions)} if args.split_fractions else {}
    summary = write_dataset(args.out, n=args.n, seed=args.seed, resolution=args.resolution,
                            n_chains=args.chains, workers=args.workers, progress=not args.no_progress, **extra)
    logger.info("done: %s", json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasonbrain.synthworld.cli", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except ValueError as exc:
        parser.error(str(exc))
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
