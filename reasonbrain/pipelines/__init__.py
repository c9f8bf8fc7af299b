"""The edit pipelines: ``ReasonBrainEditPipeline`` (trained ReasonBrain modules), ``ReasonThenEditPipeline`` (the
reason-then-edit mode), ``PlainEditPipeline`` (the editor alone, a baseline), ``load_edit_pipeline`` (picks one by a
checkpoint's mode) and ``load_method`` (one of ``COMPARISON_METHODS``). Exported lazily, so that
importing a light submodule (``reasonbrain.pipelines.output``) does not import the pipelines."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ReasonBrainEditPipeline": "pipeline_reasonbrain",
    "ReasonBrainEditOutput": "output",
    "ReasonThenEditPipeline": "reason_then_edit",
    "ReasonThenEditOutput": "reason_then_edit_output",
    "load_edit_pipeline": "modes",
    "COMPARISON_METHODS": "modes",
    "load_method": "modes",
    "PlainEditPipeline": "plain_edit",
    "PlainEditOutput": "plain_edit",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
