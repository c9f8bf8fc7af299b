"""ReasonBrain: hypothetical-instruction image editing (the paper "Reasoning to Edit") as a library.

Importing this package touches no GPU, network or global state; heavy submodules load lazily.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "ReasonBrainConfig": "reasonbrain.configuration",
    "list_presets": "reasonbrain.configuration",
    "ReasonBrainModel": "reasonbrain.models.reasonbrain",
    "ReasonBrainEditPipeline": "reasonbrain.pipelines.pipeline_reasonbrain",
    "ReasonBrainEditOutput": "reasonbrain.pipelines.pipeline_reasonbrain",
}

if TYPE_CHECKING:  # pragma: no cover
    from reasonbrain.configuration import ReasonBrainConfig, list_presets
    from reasonbrain.models.reasonbrain import ReasonBrainModel
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditOutput, ReasonBrainEditPipeline


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reasonbrain' has no attribute {name!r}")


__all__ = ["ReasonBrainConfig", "list_presets", "ReasonBrainModel", "ReasonBrainEditPipeline", "ReasonBrainEditOutput"]
