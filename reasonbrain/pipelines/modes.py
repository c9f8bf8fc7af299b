"""Which pipeline edits with a checkpoint: the mode its config declares (``ReasonBrainConfig.mode``), or the mode
the caller names; never switched silently."""

from __future__ import annotations

import os
from typing import Any

import torch

from reasonbrain.configuration import CONFIG_NAME, EDIT_MODES, REASON_THEN_EDIT_MODE, ReasonBrainConfig


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
