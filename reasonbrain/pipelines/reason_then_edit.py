"""ReasonThenEditPipeline: (photo, hypothetical instruction) -> edit, for presets whose ReasonBrain modules are untrained.

The mode ``reason_then_edit`` (``ReasonBrainConfig.mode``) runs the pretrained backbones a real preset names:

1. the MLLM, in the preset's chat format, answers one structured prompt: the object, optionally its box, the outcome
   in one sentence and an explicit edit instruction (``reasonbrain.reasoning_prompt``; lenient, visible fallbacks);
2. SAM 2 (the preset's region proposer) gives regions; SAM 2 prompted with the box, the region matching the box, the
   box, or the region best matching the object becomes the object's mask (``reasonbrain.edit_mask``: one rule, the
   whole picture when nothing confines the edit);
3. diffusers' ``StableDiffusionInstructPix2PixPipeline`` edits with its own CLIP conditioning on the explicit
   instruction; outside the dilated mask its latents follow the source's (``LatentBlend``), and (with
   ``keep_original_pixels``) the output outside that area is the input photo itself at its own size.

Built with ``from_config`` (an explicit choice, whatever the config's mode), or loaded with ``from_pretrained`` from
a folder whose config declares the mode; ``reasonbrain.pipelines.load_edit_pipeline`` picks the pipeline by mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionInstructPix2PixPipeline
from diffusers.utils.torch_utils import randn_tensor
from PIL import ImageChops, ImageFilter

from reasonbrain.configuration import REASON_THEN_EDIT_MODE, ReasonBrainConfig
from reasonbrain.edit_mask import BoxPrompt, choose_object_mask, latent_edit_area, resize_mask
from reasonbrain.image_io import load_image, prepare_image, restore_size, tensor_to_pil
from reasonbrain.models.backbones import build_diffusion, build_text_encoder
from reasonbrain.models.reasoner import StructuredReasoner
from reasonbrain.pipelines.input_checks import check_edit_settings, check_instruction, resolve_edit_settings
from reasonbrain.pipelines.latent_blend import LatentBlend
from reasonbrain.pipelines.modes import checkpoint_config
from reasonbrain.pipelines.reason_then_edit_output import ReasonThenEditOutput
from reasonbrain.pipelines.timing import StageTimer
from reasonbrain.reasoning_prompt import parse_reasoned_edit
from reasonbrain.regions import build_region_proposer
from reasonbrain.regions.container import BoxSegmenter
from reasonbrain.schedulers import make_scheduler, swap_scheduler
from reasonbrain.seeds import seeded_generator

ProgressCallback = Callable[[int, int], None]  # (steps done, total steps)


def build_editor(config: ReasonBrainConfig, *, load_backbones: bool = False,
                 torch_dtype: torch.dtype | None = None) -> StableDiffusionInstructPix2PixPipeline:
    """The InstructPix2Pix pipeline ``reason_then_edit.editor`` names (``load_backbones``), else one assembled with
    random weights from the config's ``text_encoder`` and ``diffusion`` sections (tests, benchmarks)."""
    dtype = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    if load_backbones:
        if not config.reason_then_edit.editor:
            raise ValueError(f"preset {config.name!r} names no editor (reason_then_edit.editor, e.g. "
                             "'timbrooks/instruct-pix2pix'): reason-then-edit needs one to load")
        return StableDiffusionInstructPix2PixPipeline.from_pretrained(config.reason_then_edit.editor, **dtype)
    if config.text_encoder.pretrained_table:
        raise ValueError(f"preset {config.name!r} reads instructions with an InstructionReader; reason-then-edit's "
                         "editor needs a CLIP text encoder (text_encoder.config)")
    tokenizer, text_encoder = build_text_encoder(config, False)
    tokenizer.model_max_length = config.text_encoder.max_length  # the pipeline pads prompts to this length
    unet, vae = build_diffusion(config, False)
    with torch.device("cpu"):  # the scheduler's tables stay on the CPU under any default device (benchmarks)
        scheduler = make_scheduler(config.diffusion.scheduler)
    editor = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    return editor.to(dtype=torch_dtype) if torch_dtype is not None else editor



def editor_for_call(base: StableDiffusionInstructPix2PixPipeline, scheduler: str | None,
                    progress_bar_config: dict[str, Any]) -> StableDiffusionInstructPix2PixPipeline:
    """``base``'s components with a fresh scheduler (``scheduler`` names its class; None: base's own), so concurrent
    calls and per-run scheduler state never meet; base itself is left as it is."""
    sampler = swap_scheduler(base.scheduler, scheduler or type(base.scheduler).__name__)
    editor = type(base)(**{**base.components, "scheduler": sampler},
                        requires_safety_checker=base.config.requires_safety_checker)
    editor.set_progress_bar_config(**progress_bar_config)
    return editor

class ReasonThenEditPipeline:
    def __init__(self, *, config: ReasonBrainConfig, reasoner: StructuredReasoner, region_proposer: Any,
                 editor: StableDiffusionInstructPix2PixPipeline) -> None:
        if config.mode != REASON_THEN_EDIT_MODE:
            config = config.replace(mode=REASON_THEN_EDIT_MODE)  # this pipeline is the explicit choice of the mode
        self.config = config
        self.reasoner = reasoner
        self.region_proposer = region_proposer
        self.editor = editor
        self._progress_bar_config: dict[str, Any] = {"disable": True}

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: ReasonBrainConfig, *, load_backbones: bool = False,
                    torch_dtype: torch.dtype | None = None) -> ReasonThenEditPipeline:
        """The preset's backbones in reason-then-edit mode: Hub weights with ``load_backbones``, else random weights
        of the same classes and architectures (no download except Hub tokenizers a preset names)."""
        return cls(
            config=config,
            reasoner=StructuredReasoner.from_config(config, load_backbones=load_backbones, torch_dtype=torch_dtype),
            region_proposer=build_region_proposer(config.regions, load_pretrained=load_backbones),
            editor=build_editor(config, load_backbones=load_backbones, torch_dtype=torch_dtype),
        )

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, *, torch_dtype: torch.dtype | None = None,
                        **hub_kwargs: Any) -> ReasonThenEditPipeline:
        """Load a reason-then-edit checkpoint: its config (mode ``reason_then_edit``) names every backbone."""
        config = checkpoint_config(path_or_repo_id, **hub_kwargs)
        if config.mode != REASON_THEN_EDIT_MODE:
            raise ValueError(f"{path_or_repo_id} declares mode {config.mode!r} (its trained ReasonBrain modules edit): load it "
                             "with ReasonBrainEditPipeline, or choose reason-then-edit explicitly with "
                             "load_edit_pipeline(..., mode='reason_then_edit')")
        return cls.from_config(config, load_backbones=True, torch_dtype=torch_dtype)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """The config is the whole checkpoint: every weight is a backbone it names by Hub id."""
        self.config.save(folder)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> ReasonThenEditPipeline:
        self.reasoner.to(device, dtype)
        if hasattr(self.region_proposer, "to"):
            self.region_proposer.to(device, None)  # SAM stays in float32, as in ReasonBrainEditPipeline
        self.editor.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return self.editor.device

    def set_progress_bar_config(self, **kwargs: Any) -> None:
        self._progress_bar_config = kwargs

    # --- the edit -----------------------------------------------------------------------------------------
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
    ) -> ReasonThenEditOutput:
        """Reason about ``instruction`` on ``image``, then edit the object it is about. ``scheduler`` names a
        scheduler class for this call only."""
        cfg, rte = self.config, self.config.reason_then_edit
        steps, g_text, g_image = resolve_edit_settings(cfg, num_inference_steps, guidance_scale,
                                                       image_guidance_scale)
        text = check_instruction(instruction)
        check_edit_settings(steps, g_text, g_image, 1)
        self.reasoner.check_prompt(text)
        timer = StageTimer(self.device)

        # 1. Input image: any PIL-readable input, squashed to the working resolution (restored at the end)
        with timer.stage("preprocess"):
            photo = load_image(image)
            pixels, original_size = prepare_image(photo, cfg.resolution)  # (3, R, R) in [-1, 1]
            model_image = tensor_to_pil(pixels)

        # 2. Seed: an explicit generator wins, then the seed, else a fresh random seed (reported back)
        generator, seed = seeded_generator(seed, generator)

        # 3. The MLLM's structured answer: object, box, outcome, explicit edit (parsed leniently)
        with timer.stage("reasoning"):
            ia_tokens = self.reasoner.encode_image(pixels[None])  # (1, N, d_llm)
            answer = self.reasoner.answer(ia_tokens, text)
            reasoned = parse_reasoned_edit(answer, text)

        # 4. SAM regions (and SAM prompted with the box where it can be); the object's mask by edit_mask's rule
        with timer.stage("regions"):
            regions = self.region_proposer(model_image)
            box_prompt = (BoxPrompt(lambda box: self.region_proposer.segment_box(model_image, box),
                                    rte.box_prompt_min_score)
                          if isinstance(self.region_proposer, BoxSegmenter) else None)
            chosen = choose_object_mask(
                model_image.size, box=reasoned.box, object_name=reasoned.object, regions=regions,
                scores=lambda r: self.reasoner.region_scores(ia_tokens, reasoned.object, r),
                min_iou=rte.box_region_min_iou, box_prompt=box_prompt,
            )

        # 5. The editor on the explicit instruction, latents blended with the source's outside the edited area
        with timer.stage("edit"):
            edited, area, nsfw, sampler_name = self._edit(model_image, reasoned.edit_instruction, chosen.mask, steps,
                                                          g_text, g_image, generator, scheduler, progress_callback)

        # 6. Back to the input's size; outside the edited area, the input photo itself (keep_original_pixels)
        with timer.stage("restore"):
            area_pixels = F.interpolate(area, size=(cfg.resolution,) * 2, mode="nearest")[0, 0].cpu() > 0.5
            edit_area = resize_mask(area_pixels, original_size)
            images = [self._compose(photo, im, edit_area) for im in edited]
        timer.finish()
        return ReasonThenEditOutput(
            images=images,
            seed=seed,
            instruction=text,
            mllm_answer=answer,
            referenced_object=reasoned.object,
            box=reasoned.box,
            outcome=reasoned.outcome,
            edit_instruction=reasoned.edit_instruction,
            edit_instruction_source=reasoned.edit_instruction_source,
            mask=resize_mask(chosen.mask, original_size),
            mask_source=chosen.source,
            edit_area=edit_area,
            regions=regions,
            fallbacks=list(reasoned.notes) + ([chosen.note] if chosen.note else []) + (
                ["the editor's safety checker blanked the edit"] if nsfw and any(nsfw) else []),
            nsfw_content_detected=nsfw,
            timings={k: round(v, 4) for k, v in timer.timings.items()},
            settings={
                "num_inference_steps": steps,
                "guidance_scale": float(g_text),
                "image_guidance_scale": float(g_image),
                "scheduler": sampler_name,
                "resolution": cfg.resolution,
                "preset": cfg.name,
                "mllm": cfg.mllm.pretrained_model_name_or_path,
                "editor": rte.editor,
                "mask_dilation": rte.mask_dilation,
                "box_prompt_min_score": rte.box_prompt_min_score,
                "box_region_min_iou": rte.box_region_min_iou,
                "keep_original_pixels": rte.keep_original_pixels,
            },
        )

    def _edit(self, image: PIL.Image.Image, instruction: str, mask: torch.Tensor, steps: int, g_text: float,
              g_image: float, generator: torch.Generator, scheduler: str | None,
              progress_callback: ProgressCallback | None):
        """(edited images at the working size, the edited area (1, 1, h, w) on the latent grid, the safety checker's
        flags, the scheduler's name). A fresh scheduler per call: schedulers keep per-run state."""
        editor = editor_for_call(self.editor, scheduler, self._progress_bar_config)
        vae = editor.vae
        source_pixels = editor.image_processor.preprocess(image).to(editor.device, vae.dtype)  # as the pipeline does
        source = vae.encode(source_pixels).latent_dist.mode() * vae.config.scaling_factor  # (1, C, h, w)
        area = latent_edit_area(mask, tuple(source.shape[-2:]), self.config.reason_then_edit.mask_dilation)
        area = area.to(source.device)
        noise = randn_tensor(source.shape, generator=generator, device=source.device, dtype=source.dtype)
        blend = LatentBlend(source, area, noise)

        def on_step_end(pipe, step, timestep, tensors):
            out = blend(pipe, step, timestep, tensors)
            if progress_callback is not None:
                progress_callback(step + 1, len(pipe.scheduler.timesteps))
            return out

        result = editor(prompt=instruction, image=image, num_inference_steps=steps, guidance_scale=g_text,
                        image_guidance_scale=g_image, generator=generator, callback_on_step_end=on_step_end,
                        output_type="pil")
        return result.images, area, result.nsfw_content_detected, type(editor.scheduler).__name__

    def _compose(self, photo: PIL.Image.Image, edited: PIL.Image.Image, edit_area: torch.Tensor) -> PIL.Image.Image:
        """The edit at the photo's size; with keep_original_pixels, the photo itself outside ``edit_area`` (H, W),
        the seam feathered inwards over about one latent cell."""
        edited = restore_size(edited, photo.size)
        if not self.config.reason_then_edit.keep_original_pixels or bool(edit_area.all()):
            return edited
        hard = PIL.Image.fromarray(edit_area.numpy().astype("uint8") * 255)  # mode "L"
        cell = self.editor.vae_scale_factor * max(photo.size) / self.config.resolution
        soft = ImageChops.darker(hard.filter(ImageFilter.GaussianBlur(max(1.0, cell / 2))), hard)
        return PIL.Image.composite(edited, photo, soft)
