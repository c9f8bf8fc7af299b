"""Which pipeline edits with a checkpoint: the mode its config declares (``ReasonBrainConfig.mode``), or the mode
the caller names; never switched silently. And the methods for comparison (``COMPARISON_METHODS``, ``load_method``):
the plain editor, reason-then-edit and trained ReasonBrain, each a callable pipeline ``pipe(image, instruction,
seed=..., num_inference_steps=...)`` whose output has ``images``, ``seed`` and ``to_dict()``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from reasonbrain.configuration import (
    CONFIG_NAME,
    EDIT_MODES,
    REASON_THEN_EDIT_MODE,
    REASONBRAIN_MODE,
    ReasonBrainConfig,
)

if TYPE_CHECKING:
    import torch


def checkpoint_config(path_or_repo_id: str | os.PathLike, **hub_kwargs: Any) -> ReasonBrainConfig:
    """The config of a checkpoint folder, or of a Hub repo (only its config file is downloaded)."""
    source = str(path_or_repo_id)
    if os.path.isdir(source):
        path = os.path.join(source, CONFIG_NAME)
        if not os.path.isfile(path):
            raise ValueError(f"{source} is not a ReasonBrain checkpoint (no {CONFIG_NAME})")
    else:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(source, CONFIG_NAME, **hub_kwargs)
    return ReasonBrainConfig.from_json_file(path)


def load_edit_pipeline(path_or_repo_id: str | os.PathLike, *, mode: str | None = None,
                       torch_dtype: torch.dtype | None = None, **hub_kwargs: Any):
    """A checkpoint's edit pipeline: ``ReasonBrainEditPipeline`` (mode ``reasonbrain``, its trained modules) or
    ``ReasonThenEditPipeline`` (mode ``reason_then_edit``, the backbones its config names). ``mode`` overrides the
    declared mode only towards reason-then-edit: a checkpoint without trained modules cannot edit as ReasonBrain."""
    source = str(path_or_repo_id)
    config = checkpoint_config(source, **hub_kwargs)
    chosen = config.mode if mode is None else mode
    if chosen not in EDIT_MODES:
        raise ValueError(f"mode must be one of {', '.join(EDIT_MODES)}, got {mode!r}")
    if chosen == REASON_THEN_EDIT_MODE:
        from reasonbrain.pipelines.reason_then_edit import ReasonThenEditPipeline

        return ReasonThenEditPipeline.from_config(config, load_backbones=True, torch_dtype=torch_dtype)
    if config.mode == REASON_THEN_EDIT_MODE:
        raise ValueError(f"{source} declares mode {REASON_THEN_EDIT_MODE!r}: it holds no trained ReasonBrain modules "
                         "to edit with")
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    return ReasonBrainEditPipeline.from_pretrained(source, torch_dtype=torch_dtype, **hub_kwargs)


# --- methods for comparison (``python -m reasonbrain evaluate --method``, blind rating) -----------------------------
PLAIN_EDITOR = "plain_editor"
COMPARISON_METHODS: dict[str, str] = {
    PLAIN_EDITOR: "the preset's pretrained InstructPix2Pix editor alone, on the raw hypothetical instruction "
                  "(no MLLM, no mask): the baseline",
    REASON_THEN_EDIT_MODE: "the preset's pretrained MLLM reasons first (object, outcome, explicit edit), SAM 2 masks "
                           "the object, InstructPix2Pix edits the explicit instruction inside the mask",
    REASONBRAIN_MODE: "trained ReasonBrain modules (FRCE, QFormer, CME) conditioning the diffusion model: needs a "
                      "checkpoint whose config declares mode 'reasonbrain'",
}


def resolve_method(name: str | None, config: ReasonBrainConfig) -> str:
    """``name``, or the config's declared mode when None; an unknown name is refused with the list."""
    method = config.mode if name is None else name
    if method not in COMPARISON_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(COMPARISON_METHODS)}")
    return method


def load_method(name: str | None = None, *, checkpoint: str | os.PathLike | None = None, preset: str | None = None,
                load_backbones: bool = True, torch_dtype: torch.dtype | None = None, **hub_kwargs: Any):
    """The pipeline of a comparison method, from a checkpoint (folder or Hub id) or a preset (exactly one).

    ``name=None``: the checkpoint's declared mode (a preset's: ``reasonbrain``). ``plain_editor`` and
    ``reason_then_edit`` use the backbones the config names (``load_backbones=False``: random weights of the same
    architectures, for tests and benchmarks); ``reasonbrain`` needs a checkpoint with trained modules."""
    if (checkpoint is None) == (preset is None):
        raise ValueError("load_method needs exactly one of checkpoint= or preset=")
    config = checkpoint_config(checkpoint, **hub_kwargs) if checkpoint is not None else \
        ReasonBrainConfig.from_preset(preset)
    method = resolve_method(name, config)
    if method == PLAIN_EDITOR:
        from reasonbrain.pipelines.plain_edit import PlainEditPipeline

        return PlainEditPipeline.from_config(config, load_backbones=load_backbones, torch_dtype=torch_dtype)
    if method == REASON_THEN_EDIT_MODE:
        from reasonbrain.pipelines.reason_then_edit import ReasonThenEditPipeline

        return ReasonThenEditPipeline.from_config(config, load_backbones=load_backbones, torch_dtype=torch_dtype)
    if preset is not None:
        raise ValueError(f"no trained ReasonBrain weights: preset {preset!r} starts its FRCE, QFormer and CME random; "
                         "pass a checkpoint whose config declares mode 'reasonbrain', or choose "
                         f"{PLAIN_EDITOR!r} or {REASON_THEN_EDIT_MODE!r}")
    if config.mode != REASONBRAIN_MODE:
        raise ValueError(f"no trained ReasonBrain weights: {checkpoint} declares mode {config.mode!r}; choose "
                         f"{PLAIN_EDITOR!r} or {REASON_THEN_EDIT_MODE!r}, or pass a checkpoint of mode 'reasonbrain'")
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    return ReasonBrainEditPipeline.from_pretrained(str(checkpoint), torch_dtype=torch_dtype, **hub_kwargs)
