"""Schedulers by name: a config dict with ``_class_name`` -> a diffusers scheduler."""

from __future__ import annotations

from typing import Any

import diffusers
from diffusers import SchedulerMixin

# The schedulers offered in the app (all work with InstructPix2Pix-style CFG).
SCHEDULERS = (
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "DDIMScheduler",
    "DPMSolverMultistepScheduler",
    "UniPCMultistepScheduler",
    "DDPMScheduler",
)


def make_scheduler(config: dict[str, Any]) -> SchedulerMixin:
    name = config.get("_class_name", "EulerAncestralDiscreteScheduler")
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return getattr(diffusers, name).from_config({k: v for k, v in config.items() if k != "_class_name"})


def swap_scheduler(scheduler: SchedulerMixin, name: str) -> SchedulerMixin:
    """Another scheduler class with the same noise schedule (betas, timesteps, prediction type)."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return getattr(diffusers, name).from_config(scheduler.config)
