"""Where the bundled default checkpoint is: one resolver for the CLI and the app."""

from __future__ import annotations

from pathlib import Path

SUBDIR = ("checkpoints", "synth")


def default_checkpoint(source_root: Path | None = None, cwd: Path | None = None) -> str:
    """``checkpoints/synth`` beside the source tree this package runs from (a clone, an editable install), else in
    the current directory (a non-editable install run from a clone). The first is returned when neither exists,
    so the error that follows names the usual place."""
    source = (source_root or Path(__file__).resolve().parent.parent).joinpath(*SUBDIR)
    if source.is_dir():
        return str(source)
    here = (cwd or Path.cwd()).joinpath(*SUBDIR)
    return str(here) if here.is_dir() else str(source)
