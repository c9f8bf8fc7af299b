"""PlainEditPipeline: the comparison baseline ``plain_editor``. The preset's pretrained InstructPix2Pix pipeline
(``reason_then_edit.editor``, the same ``build_editor`` as reason-then-edit) edits on the user's raw hypothetical
instruction: no MLLM, no mask. Seeds and the output's size are handled exactly as in ``ReasonThenEditPipeline``, so
the two differ only in the reasoning (and the mask it gives)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import PIL.Image
import torch
from diffusers import StableDiffusionInstructPix2PixPipeline

from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.image_io import load_image, prepare_image, restore_size, tensor_to_pil
from reasonbrain.pipelines.input_checks import check_edit_settings, check_instruction, resolve_edit_settings
from reasonbrain.pipelines.modes import PLAIN_EDITOR
from reasonbrain.pipelines.reason_then_edit import build_editor, editor_for_call
from reasonbrain.pipelines.timing import StageTimer
from reasonbrain.seeds import seeded_generator

ProgressCallback = Callable[[int, int], None]  # (steps done, total steps)


@dataclass
class PlainEditOutput:
    images: list[PIL.Image.Image]  # the edit(s), at the input image's size
    seed: int
    instruction: str  # the user's instruction, given to the editor as it is
    timings: dict[str, float]  # seconds per stage
    settings: dict[str, Any] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)  # what the editor did not read or blanked, in words
    nsfw_content_detected: list[bool] | None = None  # the editor's safety checker, where it has one
    mode: str = PLAIN_EDITOR

    def to_dict(self) -> dict[str, Any]:
        """Everything but the pixels, JSON-serialisable."""
        return {"mode": self.mode, "seed": self.seed, "instruction": self.instruction, "fallbacks": list(self.fallbacks),
                "nsfw_content_detected": self.nsfw_content_detected, "timings": self.timings,
                "settings": self.settings, "image_size": list(self.images[0].size) if self.images else None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


class PlainEditPipeline:
    def __init__(self, *, config: ReasonBrainConfig, editor: StableDiffusionInstructPix2PixPipeline) -> None:
        self.config = config
        self.editor = editor
        self._progress_bar_config: dict[str, Any] = {"disable": True}

    @classmethod
    def from_config(cls, config: ReasonBrainConfig, *, load_backbones: bool = False,
                    torch_dtype: torch.dtype | None = None) -> PlainEditPipeline:
        """The editor ``reason_then_edit.editor`` names (``load_backbones``), else random weights of the preset's
        architecture (tests, benchmarks)."""
        return cls(config=config, editor=build_editor(config, load_backbones=load_backbones, torch_dtype=torch_dtype))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> PlainEditPipeline:
        self.editor.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return self.editor.device

    def set_progress_bar_config(self, **kwargs: Any) -> None:
        self._progress_bar_config = kwargs

    @torch.no_grad()
    def __call__(
        self,
        image: Any,
        instruction: str,
        *,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        image_guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        scheduler: str | None = None,
        progress_callback: ProgressCallback | None = None,
    ) -> PlainEditOutput:
        """Edit ``image`` with ``instruction`` as it is. ``scheduler`` names a scheduler class for this call only."""
        cfg = self.config
        steps, g_text, g_image = resolve_edit_settings(cfg, num_inference_steps, guidance_scale,
                                                       image_guidance_scale)
        text = check_instruction(instruction)
        check_edit_settings(steps, g_text, g_image, 1)
        timer = StageTimer(self.device)

        # 1. Input image: squashed to the working resolution (restored at the end), as in reason-then-edit
        with timer.stage("preprocess"):
            photo = load_image(image)
            pixels, _ = prepare_image(photo, cfg.resolution)
            model_image = tensor_to_pil(pixels)

        # 2. Seed: an explicit generator wins, then the seed, else a fresh random seed (reported back)
        generator, seed = seeded_generator(seed, generator)

        # 3. The editor on the raw instruction (a fresh scheduler per call: schedulers keep per-run state)
        with timer.stage("edit"):
            editor = editor_for_call(self.editor, scheduler, self._progress_bar_config)

            def on_step_end(pipe, step, timestep, tensors):
                if progress_callback is not None:
                    progress_callback(step + 1, len(pipe.scheduler.timesteps))
                return tensors

            result = editor(prompt=text, image=model_image, num_inference_steps=steps, guidance_scale=g_text,
                            image_guidance_scale=g_image, generator=generator, callback_on_step_end=on_step_end,
                            output_type="pil")

        # 4. Back to the input's size
        with timer.stage("restore"):
            images = [restore_size(im, photo.size) for im in result.images]
        timer.finish()
        nsfw = result.nsfw_content_detected
        tokens, limit = len(editor.tokenizer(text).input_ids), editor.tokenizer.model_max_length
        return PlainEditOutput(
            images=images,
            seed=seed,
            instruction=text,
            fallbacks=([f"the editor read only the first {limit} of the instruction's {tokens} tokens"]
                       if tokens > limit else []) + (
                ["the editor's safety checker blanked the edit"] if nsfw and any(nsfw) else []),
            nsfw_content_detected=nsfw,
            timings={k: round(v, 4) for k, v in timer.timings.items()},
            settings={
                "num_inference_steps": steps,
                "guidance_scale": float(g_text),
                "image_guidance_scale": float(g_image),
                "scheduler": type(editor.scheduler).__name__,
                "resolution": cfg.resolution,
                "preset": cfg.name,
                "editor": cfg.reason_then_edit.editor,
            },
        )
