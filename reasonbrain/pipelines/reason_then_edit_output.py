"""ReasonThenEditOutput: what one reason-then-edit returns (the edit, the MLLM's outcome and explicit instruction, the
mask and where it came from, what fell back), and its JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import PIL.Image
import torch

from reasonbrain.configuration import REASON_THEN_EDIT_MODE
from reasonbrain.regions import Regions
from reasonbrain.regions.container import MASK_ENCODING, encode_mask_rle


@dataclass
class ReasonThenEditOutput:
    images: list[PIL.Image.Image]  # the edit(s), at the input image's size
    seed: int
    instruction: str  # the user's (hypothetical) instruction
    mllm_answer: str  # the MLLM's raw answer to the structured prompt
    referenced_object: str | None  # the object the MLLM named
    box: tuple[float, float, float, float] | None  # the MLLM's box, normalised xyxy, when it gave a usable one
    outcome: str | None  # the MLLM's outcome in one sentence
    edit_instruction: str  # what the editor was given
    edit_instruction_source: str  # "mllm" (its explicit edit) or "raw_instruction" (the fallback)
    mask: torch.Tensor  # (H, W) bool at the input's size: the object
    mask_source: str  # one of reasonbrain.edit_mask.MASK_SOURCES ("box_prompt", "box_region", "box", ...)
    edit_area: torch.Tensor  # (H, W) bool at the input's size: where pixels may change (the mask, dilated)
    regions: Regions | None  # the SAM regions at the working resolution
    fallbacks: list[str]  # what fell back or was ignored, in words (empty when everything came from the MLLM)
    timings: dict[str, float]  # seconds per stage
    settings: dict[str, Any] = field(default_factory=dict)
    nsfw_content_detected: list[bool] | None = None  # the editor's safety checker, where it has one
    mode: str = REASON_THEN_EDIT_MODE

    def to_dict(self) -> dict[str, Any]:
        """Everything but the pixels, JSON-serialisable (masks run-length encoded as in ``Regions.to_dict``)."""
        return {
            "mode": self.mode,
            "seed": self.seed,
            "instruction": self.instruction,
            "mllm_answer": self.mllm_answer,
            "referenced_object": self.referenced_object,
            "box": list(self.box) if self.box is not None else None,
            "outcome": self.outcome,
            "edit_instruction": self.edit_instruction,
            "edit_instruction_source": self.edit_instruction_source,
            "mask": _mask_dict(self.mask),
            "mask_source": self.mask_source,
            "edit_area": _mask_dict(self.edit_area),
            "regions": self.regions.to_dict() if self.regions is not None else None,
            "fallbacks": list(self.fallbacks),
            "nsfw_content_detected": self.nsfw_content_detected,
            "timings": self.timings,
            "settings": self.settings,
            "image_size": list(self.images[0].size) if self.images else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _mask_dict(mask: torch.Tensor) -> dict[str, Any]:
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "mask_encoding": MASK_ENCODING,
            "counts": encode_mask_rle(mask.cpu().numpy())}
