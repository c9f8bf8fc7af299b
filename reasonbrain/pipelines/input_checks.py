"""Input checks every edit pipeline shares: the instruction as an edit reads it, and the step / guidance / image-count
settings; each refusal is a ValueError that says what to change."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from reasonbrain.configuration import ReasonBrainConfig

MAX_INSTRUCTION_CHARS = 1000
MAX_STEPS = 1000
MAX_GUIDANCE = 50.0


def instruction_token_limit(config: ReasonBrainConfig) -> int:
    """The most instruction tokens a model built from ``config`` reads (its E_T's length when an InstructionReader
    reads the instruction, else the MLLM's)."""
    if config.text_encoder.pretrained_table:
        return int(config.text_encoder.max_length)
    return int(config.mllm.max_instruction_tokens)


def check_instruction(instruction: Any) -> str:
    """The instruction as an edit reads it (whitespace collapsed, unprintable characters dropped), or a ValueError
    that says what to type."""
    if not isinstance(instruction, str):
        raise ValueError(f"instruction must be text, got {type(instruction).__name__}")
    control = sorted({ch for ch in instruction if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r"})
    if control:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in control[:3])
        raise ValueError(f"The instruction contains control characters ({shown}); type plain text, e.g. "
                         "“What would happen if the ice cube were left in the sun?”")
    text = " ".join(instruction.split())  # collapse whitespace
    text = "".join(ch for ch in text if ch.isprintable())
    if not text:
        raise ValueError("The instruction is empty: describe a hypothetical change, e.g. "
                         "'What would happen if the ice cube were left in the sun?'")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise ValueError(f"The instruction has {len(text)} characters; keep it under {MAX_INSTRUCTION_CHARS}.")
    return text


def check_edit_settings(num_inference_steps: Any, guidance_scale: Any, image_guidance_scale: Any,
                        num_images_per_prompt: Any) -> None:
    """ValueError for a step count, guidance scale or image count outside what an edit takes."""
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int):
        raise ValueError(f"num_inference_steps must be a whole number, got {num_inference_steps!r}")
    if not 1 <= num_inference_steps <= MAX_STEPS:
        raise ValueError(f"num_inference_steps must be between 1 and {MAX_STEPS}, got {num_inference_steps}")
    for name, value in (("guidance_scale", guidance_scale), ("image_guidance_scale", image_guidance_scale)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not 0 <= value <= MAX_GUIDANCE:
            raise ValueError(f"{name} must be between 0 and {MAX_GUIDANCE}, got {value}")
    if not isinstance(num_images_per_prompt, int) or not 1 <= num_images_per_prompt <= 8:
        raise ValueError(f"num_images_per_prompt must be between 1 and 8, got {num_images_per_prompt!r}")


def resolve_edit_settings(config: ReasonBrainConfig, num_inference_steps: Any, guidance_scale: Any,
                          image_guidance_scale: Any) -> tuple[Any, Any, Any]:
    """Steps, text guidance and image guidance for one edit: each given value, else the config's default."""
    defaults = config.defaults
    return (defaults.num_inference_steps if num_inference_steps is None else num_inference_steps,
            defaults.guidance_scale if guidance_scale is None else guidance_scale,
            defaults.image_guidance_scale if image_guidance_scale is None else image_guidance_scale)
