"""Command line: ``python -m reasonbrain {edit,params,presets,synthworld,evaluate} ...``."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasonbrain", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    from reasonbrain import cli

    cli.add_edit_parser(sub)
    cli.add_params_parser(sub)
    cli.add_presets_parser(sub)
    cli.add_evaluate_parser(sub)
    synth = sub.add_parser("synthworld", help="generate the synthetic reasoning world in Reason50K format")
    try:
        from reasonbrain.synthworld import cli as synth_cli
    except ImportError:  # pragma: no cover - the package always ships it
        synth_cli = None
    if synth_cli is not None:
        synth_cli.add_arguments(synth)
        synth.set_defaults(func=synth_cli.run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    try:
        return int(args.func(args) or 0)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
