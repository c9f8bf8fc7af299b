"""ReasonBrainEditPipeline: (image, hypothetical instruction) -> edit, with the reasoning made visible.

Diffusers-style API (``from_pretrained``, ``.to()``, one ``__call__`` with numbered steps, swappable
``scheduler``, a ``generator``/``seed``, a dataclass output). It is not a ``DiffusionPipeline`` subclass because
the ReasonBrain checkpoint is one composite folder (see ``ReasonBrainModel``), loaded strictly as a whole.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import PIL.Image
import torch
from tqdm.auto import tqdm

from reasonbrain.binding import PhraseSimilarity, SceneEntry, bind_instruction
from reasonbrain.configuration import REASONBRAIN_MODE, ReasonBrainConfig
from reasonbrain.image_io import load_image, prepare_image, restore_size, tensor_to_pil
from reasonbrain.models.reasonbrain import ReasonBrainModel
from reasonbrain.pipelines.input_checks import (
    check_edit_settings,
    check_instruction,
    instruction_token_limit,
    resolve_edit_settings,
)
from reasonbrain.pipelines.output import EXPLANATION, INFERRED_OUTCOME, ReasonBrainEditOutput
from reasonbrain.pipelines.timing import StageTimer
from reasonbrain.referring import ReferencedObject, extract_referenced_object, serialize_object_token
from reasonbrain.regions import build_region_proposer, masks_to_feature_grid, pad_regions
from reasonbrain.schedulers import make_scheduler, swap_scheduler
from reasonbrain.seeds import seeded_generator
from reasonbrain.text import normalize_instruction

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (steps done, total steps)


REFERRING_PROMPT = (
    " Which single object in the image does this instruction refer to? Instruction: {} "
    "Answer with the object's name only."
)
REASONING_PROMPT = " Instruction: {} Briefly explain what the image should look like after this happens."
REFERRING_MAX_NEW_TOKENS = 12


class ReasonBrainEditPipeline:
    def __init__(self, *, model: ReasonBrainModel, scheduler=None, region_proposer=None, vocabulary=None) -> None:
        if model.config.mode != REASONBRAIN_MODE:  # a checkpoint's mode is never switched silently
            raise ValueError(f"this checkpoint declares mode {model.config.mode!r}: load it with "
                             "reasonbrain.pipelines.load_edit_pipeline (or ReasonThenEditPipeline)")
        self.model = model.eval()
        self.scheduler = scheduler or make_scheduler(model.config.diffusion.scheduler)
        self.region_proposer = region_proposer
        if region_proposer is None and model.config.components.region_branch:
            backend = model.config.regions.backend
            if backend != "color_segments":  # a SAM backend: its weights are the caller's choice, never random by default
                raise ValueError(
                    f"this model's region branch uses the {backend!r} region proposer: pass region_proposer="
                    "build_region_proposer(model.config.regions) for its pretrained weights (or load_pretrained=False "
                    "for random weights, in tests), or load the pipeline with from_pretrained / from_config"
                )
            self.region_proposer = build_region_proposer(model.config.regions)  # fully set by the config, no weights
        if vocabulary is None and model.config.defaults.referring_vocabulary == "synthworld":
            from reasonbrain.synthworld import VOCABULARY as vocabulary
        self.vocabulary = vocabulary
        self._progress_bar_config: dict[str, Any] = {"disable": True}
        self._offload_device: torch.device | None = None  # set by enable_model_cpu_offload()
        self._lora_fused = False
        self.generation_cache: str | None = None  # "static": see enable_static_generation_cache()
        self._similarity: PhraseSimilarity | None = None

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str | os.PathLike, *, torch_dtype: torch.dtype | None = None, vocabulary=None,
        **hub_kwargs: Any,
    ) -> ReasonBrainEditPipeline:
        """Load a checkpoint folder, or download one from the Hub by repo id first."""
        folder = str(path_or_repo_id)
        if not os.path.isdir(folder):
            from huggingface_hub import snapshot_download

            folder = snapshot_download(folder, **hub_kwargs)
        model = ReasonBrainModel.from_pretrained(folder, torch_dtype=torch_dtype)
        sched_dir = os.path.join(folder, "scheduler")
        scheduler = None
        if os.path.isdir(sched_dir):
            with open(os.path.join(sched_dir, "scheduler_config.json"), encoding="utf-8") as f:
                scheduler = make_scheduler(json.load(f))
        proposer = None
        if model.config.components.region_branch:
            proposer = build_region_proposer(model.config.regions, load_pretrained=True)
        return cls(model=model, scheduler=scheduler, region_proposer=proposer, vocabulary=vocabulary)

    @classmethod
    def from_config(cls, config: ReasonBrainConfig, *, load_backbones: bool = False, **kwargs: Any):
        """A pipeline built from a config: random weights, or Hub backbones with ``load_backbones``."""
        model = ReasonBrainModel.from_config(config, load_backbones=load_backbones)
        proposer = None
        if config.components.region_branch:
            proposer = build_region_proposer(config.regions, load_pretrained=load_backbones)
        return cls(model=model, region_proposer=proposer, **kwargs)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        if self._lora_fused:
            raise ValueError("the MLLM's LoRA is fused into its weights; call unfuse_lora() before saving")
        self.model.save_pretrained(folder)
        self.scheduler.save_pretrained(os.path.join(str(folder), "scheduler"))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        if device is not None:
            self._offload_device = None  # an explicit device ends CPU offload
        self.model.to(device=device, dtype=dtype)
        if self.region_proposer is not None and hasattr(self.region_proposer, "to"):
            self.region_proposer.to(device, None)
        return self

    def enable_model_cpu_offload(self, device: torch.device | str) -> None:
        """Small GPUs: keep the components in CPU memory and move each group to ``device`` only for its stages
        (SAM; the MLLM with the encoders, FRCE, QFormer and CME; the VAE; the UNet). Same results, slower edits
        (the weights cross PCIe on every edit); peak GPU memory is about that of the largest group.
        ``.to(device)`` ends it."""
        self.to("cpu")
        self._offload_device = torch.device(device)

    def fuse_lora(self) -> None:
        """Merge the MLLM's LoRA (and [IMG] embedding rows) into its weights (peft ``merge_adapter``) for faster
        inference: fewer kernels per layer, which matters most in text generation. Same results up to rounding."""
        if self.model.mllm.uses_lora and not self._lora_fused:
            self.model.mllm.vlm.merge_adapter()
            self._lora_fused = True

    @property
    def lora_fused(self) -> bool:
        return self._lora_fused

    def unfuse_lora(self) -> None:
        if self._lora_fused:
            self.model.mllm.vlm.unmerge_adapter()
            self._lora_fused = False

    def enable_static_generation_cache(self) -> None:
        """Generate the MLLM's text (referring answer, reasoning) with a static KV cache: same tokens; on CUDA
        transformers compiles the decoding step (CUDA graphs), which removes most of the per-token overhead
        after a slow first edit. ``generation_cache = None`` turns it off."""
        self.generation_cache = "static"

    def enable_xformers_memory_efficient_attention(self) -> None:
        """xformers attention in the UNet and VAE. Without it diffusers uses torch SDPA (AttnProcessor2_0)."""
        from diffusers.utils import is_xformers_available

        if not is_xformers_available():
            raise ValueError("xformers is not installed (GPU installs only: pip install xformers); "
                             "torch's scaled_dot_product_attention is used without it")
        self.model.unet.enable_xformers_memory_efficient_attention()
        self.model.vae.enable_xformers_memory_efficient_attention()

    @contextmanager
    def _on_device(self, *modules: Any):
        """With CPU offload: ``modules`` on the execution device for the block, back to the CPU after it."""
        modules = tuple(m for m in modules if m is not None and hasattr(m, "to"))
        if self._offload_device is None:
            yield
            return
        for m in modules:
            m.to(self._offload_device)
        try:
            yield
        finally:
            for m in modules:
                m.to("cpu")

    def set_progress_bar_config(self, **kwargs: Any) -> None:
        self._progress_bar_config = kwargs

    @property
    def config(self) -> ReasonBrainConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        """Where the edit runs (the execution device under CPU offload)."""
        return self._offload_device or self.model.device

    # --- validation ---------------------------------------------------------------------------------------
    def check_inputs(
        self, instruction: Any, num_inference_steps: Any, guidance_scale: Any, image_guidance_scale: Any,
        num_images_per_prompt: Any,
    ) -> str:
        text = check_instruction(instruction)
        n_tokens, limit = self.instruction_tokens(text)
        if n_tokens > limit:
            raise ValueError(f"The instruction is {n_tokens} tokens long; this model reads at most {limit}. Shorten it.")
        if any(tok in text for tok in self.model.mllm.tokenizer.convert_ids_to_tokens(self.model.mllm.img_token_ids)):
            raise ValueError("The instruction contains reserved [IMG] tokens; remove them.")
        check_edit_settings(num_inference_steps, guidance_scale, image_guidance_scale, num_images_per_prompt)
        return text

    def instruction_tokens(self, text: str) -> tuple[int, int]:
        """(tokens ``text`` takes, the most this model reads), counted by whichever side reads the instruction."""
        model = self.model
        if model.reads_normalized_text:
            return len(model.text_tokenizer(normalize_instruction(text)).input_ids), instruction_token_limit(model.config)
        return len(model.mllm.tokenizer.encode(text, add_special_tokens=False)), instruction_token_limit(model.config)

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
        num_images_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        referring: str | None = None,
        scheduler: str | None = None,
        progress_callback: ProgressCallback | None = None,
        detailed_timings: bool = False,
    ) -> ReasonBrainEditOutput:
        """Edit ``image`` as ``instruction`` implies. ``scheduler`` names a scheduler class for this call only
        (the pipeline's own ``scheduler`` is left as it is, so concurrent callers do not affect each other).
        ``detailed_timings`` also times the conditioning's sub-stages and each denoising step (benchmarks; it
        synchronises the device at each boundary)."""
        timer = StageTimer(self.device, detailed=detailed_timings)  # "total" is this call's wall time
        model, cfg = self.model, self.model.config
        steps, g_text, g_image = resolve_edit_settings(cfg, num_inference_steps, guidance_scale,
                                                       image_guidance_scale)
        referring = referring or cfg.defaults.referring
        if referring not in ("parser", "mllm"):
            raise ValueError(f"referring must be 'parser' or 'mllm', got {referring!r}")
        text = self.check_inputs(instruction, steps, g_text, g_image, num_images_per_prompt)
        device, dtype = self.device, model.dtype

        # 1. Input image: normalise any PIL-readable input, resize to the model's resolution
        with timer.stage("preprocess"):
            pil = load_image(image)
            pixels, original_size = prepare_image(pil, cfg.resolution)  # (3, R, R) in [-1, 1]
            model_image = tensor_to_pil(pixels)
            pixels = pixels.unsqueeze(0).to(device=device, dtype=dtype)  # (1, 3, R, R)

        # 2. Seed: an explicit generator wins, then the seed, else a fresh random seed (reported back)
        generator, seed = seeded_generator(seed, generator)

        # 3. SAM regions (region branch), pooled onto the vision feature grid
        regions = grid_masks = valid = None
        if cfg.components.region_branch:
            with timer.stage("regions"), self._on_device(self.region_proposer):
                regions = self.region_proposer(model_image)
                grid = masks_to_feature_grid(regions, (model.grid_size, model.grid_size))
                grid_masks, valid = pad_regions([grid], cfg.frce.max_regions)

        # Steps 4-6 need the MLLM side (under CPU offload: one move of that group per edit)
        do_cfg = g_text > 1.0 and g_image >= 1.0
        latent_hw = (cfg.resolution // model.vae_scale_factor,) * 2
        with self._on_device(model.mllm, model.text_encoder, model.frce, model.qformer, model.cme,
                             model.conditioning):
            # 4. E_I(I) and IA, once per edit: reused by text generation and by the conditioning
            with timer.stage("vision_encoder"):
                ia_tokens, image_features = model.mllm.encode_image(pixels)  # (1, N, d_llm), (1, N, Dv*k)

            # 5. MLLM text: the referring answer (referring="mllm") and the reasoning text (on presets that generate
            #    one; its time is then recorded under "reasoning"), one greedy batch over token prompts (a reader's
            #    prompt holds its states: its own call). With an outcome adapter the reasoning comes after step 7.
            explains = cfg.mllm.generate_reasoning and model.mllm.outcome_lm is None
            prompts: dict[str, tuple[str, int]] = {}
            if referring == "mllm":
                prompts["referring"] = (REFERRING_PROMPT.format(text), REFERRING_MAX_NEW_TOKENS)
            if explains and not model.reads_normalized_text:
                prompts["reasoning"] = (REASONING_PROMPT.format(text), cfg.mllm.reasoning_max_new_tokens)
            answers: dict[str, str] = {}
            if prompts or explains:
                with timer.stage("reasoning" if explains else "referring"):
                    answers = self._generate(ia_tokens, prompts) if prompts else {}
                    if explains and model.reads_normalized_text:
                        answers["reasoning"] = self._reasoning(ia_tokens, [text])[0]
            reasoning = answers.get("reasoning")

            # 6. The referenced object -> object token O: bound among the objects the scene recogniser finds
            #    (an object the picture lacks raises ObjectNotInImageError, a user's mistake)
            with timer.stage("referring"):
                scene = self.recognise_objects(pixels, model_image)
                obj = self._refer(text, answers.get("referring"), scene)
                object_token = serialize_object_token(obj)
                object_token_ids = model.text_tokenizer(object_token, add_special_tokens=False).input_ids

            # 7. Conditioning, once per edit: FRCE -> MLLM -> QFormer -> CME (+ the empty-instruction CFG branch)
            with timer.stage("conditioning"):
                texts, objs = ([text, ""], [object_token, ""]) if do_cfg else ([text], [object_token])
                n = len(texts)
                cond = model.encode_condition(
                    pixels.expand(n, -1, -1, -1), texts, objs,
                    grid_masks.expand(n, -1, -1, -1) if grid_masks is not None else None,
                    valid.expand(n, -1) if valid is not None else None,
                    latent_hw,
                    image_encoding=(ia_tokens.expand(n, -1, -1), image_features.expand(n, -1, -1)),
                    profile_stage=timer.substage,
                )
            if model.mllm.outcome_lm is not None and cfg.mllm.generate_reasoning:
                # the inferred outcome: the MLLM, its outcome adapter on, goes on after the edit's own sequence
                # (the instruction's, not the CFG branch's), whose [IMG] states V carry what it inferred
                with timer.stage("reasoning"):
                    reasoning = self._outcome({k_: v[:1] for k_, v in cond.mllm_sequence.items()})[0]

        # 8. Latents: image latent for the UNet's extra channels, initial noise
        with timer.stage("encode_image"), self._on_device(model.vae):
            image_latents = model.encode_image_latents(pixels)  # (1, C, h, w)
        k = num_images_per_prompt
        shape = (k, cfg.latent_channels, *latent_hw)
        latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)
        sampler = swap_scheduler(self.scheduler, scheduler) if scheduler else swap_scheduler(
            self.scheduler, type(self.scheduler).__name__
        )  # a fresh instance per call: schedulers keep per-run state
        sampler.set_timesteps(steps, device=device)
        latents = latents * sampler.init_noise_sigma

        if do_cfg:  # InstructPix2Pix branches: (text, image), (no text, image), (no text, no image)
            offset = torch.cat([cond.input_offset[0:1], cond.input_offset[1:2], cond.input_offset[1:2]])
            context = torch.cat([cond.context[0:1], cond.context[1:2], cond.context[1:2]])
            img = torch.cat([image_latents, image_latents, torch.zeros_like(image_latents)])
            branches = 3
        else:
            offset, context, img, branches = cond.input_offset, cond.context, image_latents, 1
        offset = offset.repeat_interleave(k, dim=0)
        context = context.repeat_interleave(k, dim=0)
        img = img.repeat_interleave(k, dim=0)

        # 9. Denoising loop: all CFG branches in one UNet call; the conditioning above is reused at every step
        timesteps = sampler.timesteps
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(sampler.step).parameters else {}
        with timer.stage("denoise"), self._on_device(model.unet):
            for i, t in enumerate(tqdm(timesteps, **self._progress_bar_config)):
                timer.step_started()
                model_in = sampler.scale_model_input(torch.cat([latents] * branches), t)
                noise = model.predict_noise(model_in, t.expand(model_in.shape[0]), img, offset, context)
                if do_cfg:
                    n_text, n_image, n_uncond = noise.chunk(3)
                    noise = n_uncond + g_text * (n_text - n_image) + g_image * (n_image - n_uncond)
                latents = sampler.step(noise, t, latents, **step_kwargs).prev_sample
                timer.step_finished()
                if progress_callback is not None:
                    progress_callback(i + 1, len(timesteps))

        # 10. Decode and restore the input's size
        with timer.stage("decode"), self._on_device(model.vae):
            decoded = model.decode_latents(latents).float().cpu()
            images = [restore_size(im, original_size) for im in tensor_to_pil(decoded)]

        region_attention = patch_attention = None
        if cond.frce is not None and cond.frce.id_attention is not None:
            # with the grounding map on, report the attention the UNet is conditioned on (O's last token)
            focus = cond.frce.id_focus if cfg.components.grounding_map else None
            attn = (focus if focus is not None else cond.frce.id_attention)[0].float().cpu()  # (Lp + R,)
            lp = cond.frce.num_patch_tokens
            if lp:
                side = int(math.isqrt(lp))
                patch_attention = attn[:lp].reshape(side, side).tolist()
            if regions is not None:
                ra = attn[lp : lp + len(regions)]
                region_attention = (ra / ra.sum().clamp(min=1e-12)).tolist()
        timer.finish()
        return ReasonBrainEditOutput(
            images=images,
            seed=seed,
            instruction=text,
            referenced_object=obj,
            object_token=object_token,
            object_token_ids=list(object_token_ids),
            regions=regions,
            region_attention=region_attention,
            patch_attention=patch_attention,
            reasoning=reasoning,
            reasoning_kind=self.reasoning_kind if reasoning is not None else None,
            scene_objects=[dataclasses.asdict(e) for e in scene if e.confident] if scene is not None else None,
            timings={k_: round(v, 4) for k_, v in timer.timings.items()},
            detailed_timings={"conditioning": dict(timer.substages), "denoise_steps": list(timer.steps)}
            if detailed_timings else None,
            settings={
                "num_inference_steps": steps,
                "guidance_scale": float(g_text),
                "image_guidance_scale": float(g_image),
                "scheduler": type(sampler).__name__,
                "resolution": cfg.resolution,
                "preset": cfg.name,
                "referring": referring,
                "num_images_per_prompt": k,
            },
        )

    def chain(
        self, image: Any, instructions: Sequence[str], *, seed: int | None = None, **kwargs: Any
    ) -> list[ReasonBrainEditOutput]:
        """A multi-hop edit: each instruction edits the previous step's result. Returns every step's output."""
        if isinstance(instructions, str) or not instructions:
            raise ValueError("chain() takes a non-empty list of instructions, one per step")
        outputs, current = [], image
        for step, instruction in enumerate(instructions):
            step_seed = None if seed is None else seed + step
            out = self(current, instruction, seed=step_seed, **kwargs)
            outputs.append(out)
            current = out.images[0]
        return outputs

    def swap_scheduler(self, name: str) -> None:
        self.scheduler = swap_scheduler(self.scheduler, name)

    # --- referring and text generation ----------------------------------------------------------------------
    def recognise_objects(self, pixels: torch.Tensor, image: PIL.Image.Image) -> list[SceneEntry] | None:
        """The objects the model's SceneRecogniser finds in ``pixels`` (1, 3, R, R), most certain first; None when
        the model has no recogniser. Names only: its coarse cells put an object in the right third of the picture
        only 59 % of the time and its colour far less often (validation sources), too unreliable to tell a user.
        A synth-only model on a picture outside the world (``synthworld.domain``: a photo) is sure of nothing: what
        it sees there is no answer to "is there a cheetah?", so nothing is listed and nothing refused."""
        from reasonbrain.synthworld.domain import check_image, synth_only

        recogniser = self.model.recogniser
        if recogniser is None:
            return None
        with self._on_device(recogniser):
            found = recogniser(pixels.to(recogniser.device, recogniser.dtype))
        names = recogniser.config.object_names
        rc = self.model.config.recogniser
        probabilities = found.probabilities[0].float().cpu()
        kept = torch.nonzero(probabilities >= rc.absent_below).flatten().tolist()
        trusted = not synth_only(self.model.config) or check_image(image).in_domain
        return [SceneEntry(names[k], confident=trusted and bool(probabilities[k] >= rc.threshold))
                for k in sorted(kept, key=lambda k: -float(probabilities[k]))]

    @property
    def similarity(self) -> PhraseSimilarity | None:
        """Phrase similarity over the text encoder's pretrained table (binding unseen wording), when it has one."""
        cfg = self.model.config
        table = cfg.text_encoder.pretrained_table or cfg.defaults.binding_table
        if table and self._similarity is None:
            self._similarity = PhraseSimilarity(table)
        return self._similarity

    def _refer(self, text: str, mllm_answer: str | None, scene: list[SceneEntry] | None = None) -> ReferencedObject:
        """The object the instruction is bound to among ``scene`` (``reasonbrain.binding``), or (referring="mllm")
        the object the MLLM named."""
        if self.vocabulary is not None:
            parsed = bind_instruction(text, self.vocabulary, scene, self.similarity)
        else:
            parsed = extract_referenced_object(normalize_instruction(text), self.vocabulary)
        if mllm_answer is None:
            return parsed
        name = " ".join(mllm_answer.replace(".", " ").split()[:4]).strip().lower()
        if not name:
            logger.info("the MLLM gave no object for %r; falling back to the parser", text)
            return parsed
        return ReferencedObject(name=name, phrase=name, attributes={}, box=None, source="mllm")

    @property
    def reasoning_kind(self) -> str | None:
        """What this model's reasoning text is (INFERRED_OUTCOME or EXPLANATION); None when it writes none."""
        if not self.model.config.mllm.generate_reasoning:
            return None
        return INFERRED_OUTCOME if self.model.mllm.outcome_lm is not None else EXPLANATION

    @torch.no_grad()
    def infer_outcomes(self, images: Sequence[Any], instructions: Sequence[str]) -> list[str | None]:
        """The reasoning text an edit of each (image, instruction) shows, without the denoising (benchmarks score
        it: ``benchmarks/outcome_eval.py``). With an outcome adapter it is the model's inferred outcome, written
        after the edit's own MLLM sequence; None where the edit would refuse (the object is not in the picture)."""
        model, cfg = self.model, self.model.config
        if not cfg.mllm.generate_reasoning:
            raise ValueError("this model writes no reasoning text (mllm.generate_reasoning is false); train an "
                             "outcome adapter with python -m reasonbrain.training.train_outcome")
        if model.mllm.outcome_lm is None:
            texts, pixels = self._checked_batch(images, instructions)
            with self._on_device(model.mllm, model.text_encoder):
                return list(self._reasoning(model.mllm.encode_image(pixels)[0], texts))
        sequence, rows = self.edit_sequences(images, instructions)
        said: list[str | None] = [None] * len(instructions)
        if rows:
            with self._on_device(model.mllm):
                for i, outcome in zip(rows, self._outcome(sequence)):
                    said[i] = outcome
        return said

    @torch.no_grad()
    def edit_sequences(self, images: Sequence[Any], instructions: Sequence[str]
                       ) -> tuple[dict[str, torch.Tensor] | None, list[int]]:
        """The MLLM sequence an edit of each (image, instruction) runs, [IA, R_V, R_T, E_T(H), [IMG]] (steps 1-7
        of ``__call__`` without the CFG branch), and the indices of the pairs it holds: an edit that would refuse
        (the object is not in the picture) has no row. (None, []) when every one would."""
        from reasonbrain.referring import ObjectNotInImageError

        model, cfg = self.model, self.model.config
        texts, pixels = self._checked_batch(images, instructions)
        model_images = [tensor_to_pil(px) for px in pixels.float().cpu()]
        with self._on_device(model.mllm, model.text_encoder, model.frce):
            ia_tokens, image_features = model.mllm.encode_image(pixels)  # (B, N, d_llm), (B, N, Dv*k)
            rows, objects, grids = [], [], []
            for i, (text, image) in enumerate(zip(texts, model_images)):
                answer = None
                if cfg.defaults.referring == "mllm":
                    answer = self._generate(ia_tokens[i : i + 1], {"referring": (
                        REFERRING_PROMPT.format(text), REFERRING_MAX_NEW_TOKENS)})["referring"]
                try:
                    obj = self._refer(text, answer, self.recognise_objects(pixels[i : i + 1], image))
                except ObjectNotInImageError:
                    continue
                rows.append(i)
                objects.append(serialize_object_token(obj))
                if cfg.components.region_branch:
                    with self._on_device(self.region_proposer):
                        regions = self.region_proposer(image)
                    grids.append(masks_to_feature_grid(regions, (model.grid_size, model.grid_size)))
            if not rows:
                return None, []
            masks, valid = pad_regions(grids, cfg.frce.max_regions) if grids else (None, None)
            edit = model.edit_sequence(ia_tokens[rows], image_features[rows], [texts[i] for i in rows], objects,
                                       masks, valid)
        return edit.sequence, rows

    def _checked_batch(self, images: Sequence[Any], instructions: Sequence[str]) -> tuple[list[str], torch.Tensor]:
        """Checked instructions and the images at the model's resolution (B, 3, R, R) on its device."""
        if len(images) != len(instructions) or not images:
            raise ValueError(f"give one instruction per image, got {len(images)} images, {len(instructions)} "
                             "instructions")
        d = self.model.config.defaults
        texts = [self.check_inputs(t, d.num_inference_steps, d.guidance_scale, d.image_guidance_scale, 1)
                 for t in instructions]
        pixels = torch.stack([prepare_image(load_image(im), self.model.config.resolution)[0] for im in images])
        return texts, pixels.to(device=self.device, dtype=self.model.dtype)

    def _outcome(self, sequence: dict[str, torch.Tensor]) -> list[str]:
        """The outcome adapter's text after each row of an edit's MLLM sequence (``ReasonBrainModel.edit_sequence``:
        [IA, R_V, R_T, E_T(H), [IMG]])."""
        return self.model.mllm.generate_text(sequence, self.model.config.mllm.reasoning_max_new_tokens,
                                             cache_implementation=self.generation_cache, outcome_adapter=True)

    def _reasoning(self, ia_tokens: torch.Tensor, texts: list[str]) -> list[str]:
        """The MLLM's explanation (no outcome adapter) for each (IA tokens (B, N, d), instruction): the reasoning
        prompt, the instruction in it as in the edit's sequence (a reader's states, or tokens)."""
        model = self.model
        prompt = model.text_prompt(ia_tokens, texts, REASONING_PROMPT)
        return model.mllm.generate_text(prompt, model.config.mllm.reasoning_max_new_tokens,
                                        cache_implementation=self.generation_cache)

    def _generate(self, ia_tokens: torch.Tensor, prompts: dict[str, tuple[str, int]]) -> dict[str, str]:
        """{name: (prompt, max new tokens)} -> {name: text}, one greedy batch over the image's IA tokens (1, N, d)."""
        names = list(prompts)
        sequence = self.model.mllm.build_sequence(
            [prompts[k][0] for k in names], ia_tokens.expand(len(names), -1, -1),
            text_template="{}", append_img_tokens=False,
        )
        texts = self.model.mllm.generate_text(sequence, [prompts[k][1] for k in names],
                                              cache_implementation=self.generation_cache)
        return dict(zip(names, texts))
