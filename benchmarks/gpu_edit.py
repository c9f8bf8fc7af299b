"""Real-size speed and memory of one edit: the reasonbrain-3b / -7b presets, random weights, bf16, 512 px, per
method for comparison (``--methods``: reasonbrain, reason_then_edit, plain_editor; default all three).

    python benchmarks/gpu_edit.py --presets reasonbrain-3b reasonbrain-7b --steps 20 50 --json-out gpu_edit.json
    python benchmarks/gpu_edit.py --presets tiny --device cpu --dtype fp32 --steps 2 --repeats 1   # smoke test

Per preset: build the model from its config directly on the device (random weights: no download, no Hub
cache), one warm-up edit and one warm-up bare loop, then for each step count ``--repeats`` edits and
``--repeats`` bare loops, interleaved; medians. Reported per stage (ms): SAM 2 regions, encoders (E_I + IA,
E_T, VAE encode), MLLM text generation (referring answer + reasoning text, one greedy batch), FRCE, the
MLLM's [IMG] pass, QFormer, CME, the denoising loop and its mean step, VAE decode; peak GPU memory
(``torch.cuda.max_memory_allocated``) and two ratios against a bare InstructPix2Pix loop with the SAME UNet,
VAE, text encoder, scheduler and step count (3-way CFG batch, VAE encode of the source + decode; no MLLM,
FRCE or CME): whole edit / bare edit, and denoising loop / bare denoising loop. The MLLM's LoRA is fused
(``pipe.fuse_lora()``) unless ``--no-fuse-lora``; ``--cpu-offload`` adds a row with model CPU offload.

Methods (``reasonbrain.pipelines.modes.COMPARISON_METHODS``): ``reasonbrain`` is the table above. Then the preset's
backbones are built again as ``ReasonThenEditPipeline`` (random weights, directly on the device) and timed per call
with ``reason_then_edit`` and with ``plain_editor`` (``PlainEditPipeline`` on the SAME editor object: its bare
baseline), interleaved, ``--repeats`` each after one warm-up: stages MLLM answer, SAM 2 regions, editor (VAE encode,
CLIP text encoder, denoising loop with latent blending, VAE decode), total, and peak GPU memory. The MLLM answer is
NOT scripted: EOS is switched off, so every answer runs to ``reason_then_edit.max_new_tokens`` (the worst case;
the number of answer tokens is reported); a random answer parses to nothing, so the raw instruction is edited
over the whole picture (no region scoring): the editor's work is the plain editor's plus the latent blend.

Offline substitutes (so the numbers are timing and memory only, never quality):
- tokenizers: the real presets name Hub tokenizers; the bundled BPE tokenizer (reasonbrain/presets/tokenizer,
  ~650 tokens plus the [IMG] tokens it adds) stands in for both. Every id is far below the models' vocabularies;
  the MLLM places image features by mask, so LLaVA's ``image_token_index`` is never looked up. Instructions
  come out a little longer in tokens than with the real tokenizers (a smaller vocabulary).
- text generation: with random weights the MLLM would stop at an arbitrary end-of-sequence token, so EOS is
  switched off and every answer runs to its limit (12 referring tokens, ``reasoning_max_new_tokens`` for the
  reasoning text): the worst case.
- SAM 2: ``transformers.Sam2Model`` from the preset's config, random weights, run as the pipeline runs it (its
  own dtype, fp32: ``pipeline.to()`` does not cast the proposer). With random weights no mask passes SAM's
  predicted-IoU and stability filters, so they are switched off: all ``points_per_side**2 * 3`` candidates go
  through the pipeline's NMS, which keeps ``max_regions - 1`` plus the background (as a trained SAM 2 does on a
  natural image; the NMS over every candidate is the pessimistic side, ~50 ms of CPU). The count is reported.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import logging
import platform
import statistics
import sys
import time
import traceback
from contextlib import contextmanager
from typing import Any

import numpy as np
import PIL.Image
import torch

from reasonbrain.configuration import (
    BUNDLED_TOKENIZER,
    REASON_THEN_EDIT_MODE,
    REASONBRAIN_MODE,
    ReasonBrainConfig,
)
from reasonbrain.models.reasonbrain import ReasonBrainModel
from reasonbrain.pipelines.modes import COMPARISON_METHODS, PLAIN_EDITOR
from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
from reasonbrain.pipelines.plain_edit import PlainEditPipeline
from reasonbrain.pipelines.reason_then_edit import ReasonThenEditPipeline
from reasonbrain.regions import build_region_proposer

logger = logging.getLogger("gpu_edit")

INSTRUCTION = "What would happen if the ice cube were left in the sun?"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Issue 8's targets (H100, 512 px, 20 steps): seconds per edit, and the 7B peak memory.
TARGETS = {"edit_s": {"reasonbrain-3b": 2.0, "reasonbrain-7b": 3.0}, "overhead_ratio": 1.15,
           "peak_gb": {"reasonbrain-7b": 24.0}}
GB = 1024**3


# ------------------------------------------------------------------------------------------------------------
# building
# ------------------------------------------------------------------------------------------------------------
def reduced_layers(config: ReasonBrainConfig, num_layers: int) -> ReasonBrainConfig:
    """The same preset with at most ``num_layers`` transformer layers in the MLLM's language model and the
    CLIP text encoder, and in the vision tower as few as its feature layers allow (CPU checks of the build path)."""
    mllm = copy.deepcopy(config.mllm.config)
    text = mllm.setdefault("text_config", {})
    text["num_hidden_layers"] = min(int(text.get("num_hidden_layers", num_layers)), num_layers)
    vision = mllm.setdefault("vision_config", {})
    deepest = max(-i for i in [*config.mllm.multiscale_layers, config.mllm.vision_feature_layer])
    vision["num_hidden_layers"] = min(int(vision.get("num_hidden_layers", deepest)), max(num_layers, deepest))
    text_encoder = dict(config.text_encoder.config)
    text_encoder["num_hidden_layers"] = min(int(text_encoder.get("num_hidden_layers", num_layers)), num_layers)
    return config.replace(mllm={"config": mllm}, text_encoder={"config": text_encoder})


def uses_hub_tokenizers(config: ReasonBrainConfig) -> bool:
    return config.mllm.tokenizer != BUNDLED_TOKENIZER or config.text_encoder.tokenizer != BUNDLED_TOKENIZER



def benchmark_config(preset: str, resolution: int | None, num_layers: int | None) -> tuple[ReasonBrainConfig, list[str]]:
    """The preset's config at ``resolution`` with at most ``num_layers`` layers, and notes saying what differs from
    the real thing (reduced layers; the bundled tokenizer standing in for Hub ones)."""
    config = ReasonBrainConfig.from_preset(preset)
    notes = []
    if resolution is not None and resolution != config.resolution:
        config = config.replace(resolution=resolution)
    if num_layers is not None:
        config = reduced_layers(config, num_layers)
        notes.append(f"REDUCED config: at most {num_layers} layers in the LLM and text encoder (not real-size)")
    if uses_hub_tokenizers(config):
        notes.append(f"bundled tokenizer stands in for {config.mllm.tokenizer!r} and {config.text_encoder.tokenizer!r}")
    return config, notes

def build_pipeline(
    preset: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    resolution: int | None = None,
    num_layers: int | None = None,
    seed: int = 0,
) -> tuple[ReasonBrainEditPipeline, list[str]]:
    """A random-weight pipeline for ``preset``, built directly on ``device`` (no slow CPU init of billions of
    parameters), then cast to ``dtype`` as ``from_pretrained(torch_dtype=...)`` does. Returns (pipeline, notes)."""
    config, notes = benchmark_config(preset, resolution, num_layers)
    substitute = uses_hub_tokenizers(config)
    torch.manual_seed(seed)
    with torch.device(device):  # parameters are created (and randomly initialised) on the device
        model = ReasonBrainModel.from_config(config, bundled_tokenizers=substitute)
        proposer = build_region_proposer(model.config.regions, load_pretrained=False)  # SAM 2, random weights
    pipe = ReasonBrainEditPipeline(model=model, region_proposer=proposer)  # the scheduler stays on the CPU
    pipe.to(device, dtype)
    check_token_ids(pipe)
    # Random weights: no EOS, so every generated answer runs to its token limit (see the module docstring).
    pipe.model.mllm.base.generation_config.eos_token_id = None
    # Random weights: no SAM 2 candidate passes the quality filters; without them NMS keeps a full set of regions.
    if hasattr(pipe.region_proposer, "pred_iou_thresh"):
        pipe.region_proposer.pred_iou_thresh = pipe.region_proposer.stability_score_thresh = 0.0
        notes.append("SAM 2 quality filters off (random weights): every point's masks go through NMS")
    return pipe, notes


def check_token_ids(pipe: ReasonBrainEditPipeline) -> None:
    """Every id the substitute tokenizers can produce must index the models' embedding tables."""
    model = pipe.model
    mllm_vocab = model.mllm.base.get_input_embeddings().weight.shape[0]
    text_vocab = model.text_encoder.get_input_embeddings().weight.shape[0]
    if len(model.mllm.tokenizer) > mllm_vocab or max(model.mllm.img_token_ids) >= mllm_vocab:
        raise ValueError(f"MLLM tokenizer ({len(model.mllm.tokenizer)} ids) exceeds the embeddings ({mllm_vocab})")
    if len(model.text_tokenizer) > text_vocab:
        raise ValueError(f"text tokenizer ({len(model.text_tokenizer)} ids) exceeds the embeddings ({text_vocab})")


def build_methods(
    preset: str, *, device: torch.device, dtype: torch.dtype, resolution: int | None = None,
    num_layers: int | None = None, seed: int = 0,
) -> tuple[ReasonThenEditPipeline, PlainEditPipeline, list[str]]:
    """The preset's backbones (random weights, built on ``device``) as reason-then-edit, and the plain editor on the
    same editor object. Returns (reason-then-edit, plain editor, notes)."""
    config, notes = benchmark_config(preset, resolution, num_layers)
    if uses_hub_tokenizers(config):
        config = config.replace(mllm={"tokenizer": BUNDLED_TOKENIZER},
                                text_encoder={"tokenizer": BUNDLED_TOKENIZER, "tokenizer_subfolder": None})
    torch.manual_seed(seed)
    with torch.device(device):
        rte = ReasonThenEditPipeline.from_config(config)
    rte.to(device, dtype)
    rte.reasoner.mllm.base.generation_config.eos_token_id = None  # answers run to max_new_tokens (docstring)
    if hasattr(rte.region_proposer, "pred_iou_thresh"):
        rte.region_proposer.pred_iou_thresh = rte.region_proposer.stability_score_thresh = 0.0
        notes.append("SAM 2 quality filters off (random weights): every point's masks go through NMS")
    notes.append(f"MLLM answers run to max_new_tokens={config.reason_then_edit.max_new_tokens} (EOS off, not scripted)")
    return rte, PlainEditPipeline(config=rte.config, editor=rte.editor), notes


def parameter_counts(pipe: ReasonBrainEditPipeline) -> dict[str, int]:
    counts = {name: total for name, (total, _) in pipe.model.component_parameters().items()}
    proposer = getattr(pipe.region_proposer, "model", None)
    if proposer is not None:
        counts["sam2"] = sum(p.numel() for p in proposer.parameters())
    counts["total"] = sum(counts.values())
    return counts


def scene_image(size: int) -> PIL.Image.Image:
    """A deterministic scene-like image: a gradient background with a few flat shapes."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([0.4 + 0.3 * yy, 0.5 + 0.2 * xx, 0.7 - 0.3 * yy], axis=-1)
    for cx, cy, r, color in ((0.3, 0.6, 0.15, (0.9, 0.9, 1.0)), (0.7, 0.4, 0.12, (0.8, 0.2, 0.1))):
        rgb[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = color
    rgb[int(0.75 * size):, :] = (0.45, 0.35, 0.25)  # a table
    return PIL.Image.fromarray((rgb * 255).astype(np.uint8))


# ------------------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StageTimer:
    """Seconds per stage and per denoising step; synchronises the device at every boundary."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.timings: dict[str, float] = {}
        self.steps: list[float] = []

    @contextmanager
    def stage(self, name: str):
        synchronize(self.device)
        start = time.perf_counter()
        yield
        synchronize(self.device)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    @contextmanager
    def step(self):
        synchronize(self.device)
        start = time.perf_counter()
        yield
        synchronize(self.device)
        self.steps.append(time.perf_counter() - start)


@torch.no_grad()
def bare_instruct_pix2pix_edit(
    pipe: ReasonBrainEditPipeline, image: PIL.Image.Image, instruction: str, *, steps: int, seed: int,
    guidance_scale: float, image_guidance_scale: float, timer: StageTimer,
) -> PIL.Image.Image:
    """diffusers' StableDiffusionInstructPix2PixPipeline loop, written out so that its stages can be timed: the
    pipeline's own UNet, VAE, text encoder (+ tokenizer) and a fresh scheduler of the same class and config."""
    from diffusers.image_processor import VaeImageProcessor

    model = pipe.model
    unet, vae, device, dtype = model.unet, model.vae, pipe.device, model.dtype
    processor = VaeImageProcessor(vae_scale_factor=model.vae_scale_factor)
    with timer.stage("preprocess"):
        pixels = processor.preprocess(image, height=image.height, width=image.width).to(device, dtype)
    with timer.stage("text_encoder"):
        ids = model.text_tokenizer(
            [instruction, ""], padding="max_length", truncation=True,
            max_length=model.config.text_encoder.max_length, return_tensors="pt",
        ).input_ids.to(device)
        embeds = model.text_encoder(ids)[0]  # (2, L, D)
        context = torch.cat([embeds[0:1], embeds[1:2], embeds[1:2]])  # (text, image), (-, image), (-, -)
    with timer.stage("encode_image"):
        image_latents = vae.encode(pixels).latent_dist.mode()  # (1, C, h, w)
        image_latents = torch.cat([image_latents, image_latents, torch.zeros_like(image_latents)])
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps, device=device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    latents = torch.randn(image_latents[:1].shape, generator=generator, dtype=torch.float32).to(device, dtype)
    latents = latents * scheduler.init_noise_sigma
    with timer.stage("denoise"):
        for t in scheduler.timesteps:
            with timer.step():
                model_in = scheduler.scale_model_input(torch.cat([latents] * 3), t)
                model_in = torch.cat([model_in, image_latents], dim=1)  # (3, 2C, h, w)
                noise = unet(model_in, t, encoder_hidden_states=context).sample
                n_text, n_image, n_uncond = noise.chunk(3)
                noise = n_uncond + guidance_scale * (n_text - n_image) + image_guidance_scale * (n_image - n_uncond)
                latents = scheduler.step(noise, t, latents).prev_sample
    with timer.stage("decode"):
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
        return processor.postprocess(decoded.float(), output_type="pil")[0]


def timed(device: torch.device, fn) -> tuple[float, Any]:
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def reasonbrain_stages(out) -> dict[str, float]:
    """The pipeline's stage timings (s) flattened: top-level stages plus the conditioning's sub-stages."""
    t, detail = dict(out.timings), out.detailed_timings or {}
    sub = detail.get("conditioning", {})
    steps = detail.get("denoise_steps") or []
    row = {
        "preprocess": t.get("preprocess", 0.0),
        "regions": t.get("regions", 0.0),
        "vision_encoder": t.get("vision_encoder", 0.0),
        "text_encoder": sub.get("text_encoder", 0.0),
        "encode_image": t.get("encode_image", 0.0),
        "mllm_generate": t.get("reasoning", 0.0),  # referring answer + reasoning text, one batch
        "referring": t.get("referring", 0.0),
        "frce": sub.get("frce", 0.0),
        "mllm_forward": sub.get("mllm", 0.0),
        "qformer": sub.get("qformer", 0.0),
        "cme": sub.get("cme", 0.0),
        "conditioning": t.get("conditioning", 0.0),
        "denoise": t.get("denoise", 0.0),
        "denoise_step": statistics.fmean(steps) if steps else 0.0,
        "decode": t.get("decode", 0.0),
    }
    return row


def bare_stages(timer: StageTimer) -> dict[str, float]:
    row = dict(timer.timings)
    row["denoise_step"] = statistics.fmean(timer.steps) if timer.steps else 0.0
    return row


def median_ms(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(1000 * statistics.median(r[k] for r in rows), 2) for k in rows[0]}


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / GB, 3) if device.type == "cuda" else None


def allocated_gb(device: torch.device) -> float | None:
    return round(torch.cuda.memory_allocated(device) / GB, 3) if device.type == "cuda" else None


# ------------------------------------------------------------------------------------------------------------
# one preset
# ------------------------------------------------------------------------------------------------------------
def run_preset(
    preset: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, result: dict[str, Any],
    on_row=lambda: None,
) -> None:
    """Fills ``result`` as it goes (a failure part-way keeps the rows already measured); ``on_row()`` after each
    row (the caller saves the JSON so far)."""
    result.update(preset=preset, status="running")
    reset_peak(device)
    build_s, (pipe, notes) = timed(device, lambda: build_pipeline(
        preset, device=device, dtype=dtype, resolution=args.resolution, num_layers=args.num_layers))
    cfg = pipe.config
    result.update(
        build_s=round(build_s, 2), notes=notes, resolution=cfg.resolution, scheduler=type(pipe.scheduler).__name__,
        scheduler_algorithm=pipe.scheduler.config.get("algorithm_type"),
        default_steps=cfg.defaults.num_inference_steps, referring=cfg.defaults.referring,
        generate_reasoning=cfg.mllm.generate_reasoning, reasoning_max_new_tokens=cfg.mllm.reasoning_max_new_tokens,
        parameters=parameter_counts(pipe), dtype=str(pipe.model.dtype).replace("torch.", ""),
        sam2_dtype=str(getattr(pipe.region_proposer, "dtype", None)).replace("torch.", ""),
        weights_gb=allocated_gb(device), build_peak_gb=peak_gb(device),
    )
    if args.channels_last:
        pipe.model.unet.to(memory_format=torch.channels_last)
        pipe.model.vae.to(memory_format=torch.channels_last)
    from diffusers.utils import is_xformers_available

    if device.type == "cuda" and is_xformers_available():
        pipe.enable_xformers_memory_efficient_attention()
    result["attention"] = sorted({type(p).__name__ for p in pipe.model.unet.attn_processors.values()})
    if args.fuse_lora:
        pipe.fuse_lora()
    result["lora_fused"] = args.fuse_lora and pipe.model.mllm.uses_lora
    if args.compile:
        pipe.model.unet.compile()
    if args.static_cache:
        pipe.enable_static_generation_cache()
    result["generation_cache"] = pipe.generation_cache or "dynamic"

    image = scene_image(cfg.resolution)
    g_text, g_image = cfg.defaults.guidance_scale, cfg.defaults.image_guidance_scale

    def edit(steps: int):
        return pipe(image, INSTRUCTION, seed=0, num_inference_steps=steps, guidance_scale=g_text,
                    image_guidance_scale=g_image, detailed_timings=True)

    def bare(steps: int) -> StageTimer:
        timer = StageTimer(device)
        bare_instruct_pix2pix_edit(pipe, image, INSTRUCTION, steps=steps, seed=0, guidance_scale=g_text,
                                   image_guidance_scale=g_image, timer=timer)
        return timer

    # Warm-up (CUDA context, cuBLAS/cuDNN autotuning; with --compile, the compilation): not in the timings.
    warm_edit_s, out = timed(device, lambda: edit(args.steps[0]))
    warm_bare_s, _ = timed(device, lambda: bare(args.steps[0]))
    result["warmup_s"] = {"edit": round(warm_edit_s, 2), "bare": round(warm_bare_s, 2)}
    result["num_regions"] = len(out.regions) if out.regions is not None else 0
    result["max_regions"] = cfg.frce.max_regions
    result["settings"] = out.settings
    logger.info("%s: built in %.1f s, warm-up edit %.2f s, bare %.2f s", preset, build_s, warm_edit_s, warm_bare_s)

    result["runs"] = {}
    for steps in args.steps:
        edits, bares, edit_rows, bare_rows = [], [], [], []
        edit_peak = bare_peak = None
        for _ in range(args.repeats):
            reset_peak(device)
            seconds, out = timed(device, lambda: edit(steps))  # noqa: B023 (called at once)
            edit_peak = max(edit_peak or 0.0, peak_gb(device) or 0.0) if device.type == "cuda" else None
            edits.append(seconds)
            edit_rows.append(reasonbrain_stages(out) | {"total": seconds})
            reset_peak(device)
            seconds, timer = timed(device, lambda: bare(steps))  # noqa: B023
            bare_peak = max(bare_peak or 0.0, peak_gb(device) or 0.0) if device.type == "cuda" else None
            bares.append(seconds)
            bare_rows.append(bare_stages(timer) | {"total": seconds})
        ours, theirs = median_ms(edit_rows), median_ms(bare_rows)
        ours["other"] = round(ours["total"] - sum(v for k, v in ours.items()
                                                  if k not in ("total", "denoise_step", "conditioning")), 2)
        result["runs"][str(steps)] = {
            "steps": steps, "repeats": args.repeats,
            "reasonbrain_ms": ours, "bare_ms": theirs,
            "edit_s_all": [round(s, 4) for s in edits], "bare_s_all": [round(s, 4) for s in bares],
            "peak_gb": edit_peak, "bare_peak_gb": bare_peak,
            "ratio_edit": round(ours["total"] / theirs["total"], 3),
            "ratio_denoise": round(ours["denoise"] / theirs["denoise"], 3),
        }
        run = result["runs"][str(steps)]
        logger.info("%s, %d steps: edit %.0f ms, bare %.0f ms, ratios %.2fx (edit) %.2fx (denoise), peak %s GB",
                    preset, steps, ours["total"], theirs["total"], run["ratio_edit"], run["ratio_denoise"],
                    run["peak_gb"])
        on_row()

    if args.cpu_offload and args.compile:
        result["cpu_offload"] = None  # moving a compiled UNet between devices recompiles it: not a fair row
        notes.append("CPU-offload row skipped under --compile")
    elif args.cpu_offload:
        # One edit (kernels are already warm): the weights cross to the device group by group.
        pipe.enable_model_cpu_offload(device)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        reset_peak(device)
        seconds, out = timed(device, lambda: edit(args.steps[0]))
        result["cpu_offload"] = {"steps": args.steps[0], "edit_ms": round(1000 * seconds, 1),
                                 "peak_gb": peak_gb(device), "runs": 1,
                                 "stages_ms": {k: round(1000 * v, 1) for k, v in out.timings.items()}}
        logger.info("%s, model CPU offload: edit %.0f ms, peak %s GB", preset, 1000 * seconds, peak_gb(device))
        on_row()
    result["status"] = "ok"


METHOD_STAGES = (("reasoning", "mllm_answer"), ("regions", "sam_regions"), ("edit", "editor"),
                 ("preprocess", "preprocess"), ("restore", "restore"), ("total", "total"))


def run_methods(
    preset: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, result: dict[str, Any],
    on_row=lambda: None,
) -> None:
    """``result["methods"]``: per step count, a row per method (median ms per stage, peak GB)."""
    names = [m for m in args.methods if m != REASONBRAIN_MODE]
    if not names:
        return
    build_s, (rte, plain, notes) = timed(device, lambda: build_methods(
        preset, device=device, dtype=dtype, resolution=args.resolution, num_layers=args.num_layers))
    pipes = {REASON_THEN_EDIT_MODE: rte, PLAIN_EDITOR: plain}
    image = scene_image(rte.config.resolution)
    rows: dict[str, Any] = {"build_s": round(build_s, 2), "notes": notes, "runs": {},
                            "max_new_tokens": rte.config.reason_then_edit.max_new_tokens}
    result["methods"] = rows

    def edit(name: str, steps: int):
        return pipes[name](image, INSTRUCTION, seed=0, num_inference_steps=steps)

    for name in names:  # warm-up, not in the timings
        out = edit(name, args.steps[0])
        if name == REASON_THEN_EDIT_MODE:
            rows["answer_tokens"] = len(rte.reasoner.mllm.tokenizer.encode(out.mllm_answer, add_special_tokens=False))
            rows["mask_source"] = out.mask_source
    for steps in args.steps:
        timings: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        peaks: dict[str, float | None] = {n: None for n in names}
        for _ in range(args.repeats):
            for name in names:
                reset_peak(device)
                out = edit(name, steps)
                timings[name].append({key: out.timings.get(stage, 0.0) for stage, key in METHOD_STAGES})
                if device.type == "cuda":
                    peaks[name] = max(peaks[name] or 0.0, peak_gb(device))
        rows["runs"][str(steps)] = {name: {"ms": median_ms(timings[name]), "peak_gb": peaks[name]} for name in names}
        logger.info("%s, %d steps: %s", preset, steps, ", ".join(
            f"{n} {rows['runs'][str(steps)][n]['ms']['total']:.0f} ms" for n in names))
        on_row()


def free_device(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ------------------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------------------
ROWS = (
    ("regions", "SAM 2 region proposal"),
    ("vision_encoder", "vision encoder E_I + IA (once per edit)"),
    ("text_encoder", "text encoder E_T (instruction, object token)"),
    ("encode_image", "VAE encode (source latent)"),
    ("mllm_generate", "MLLM text generation (referring answer + reasoning)"),
    ("referring", "referring (object token)"),
    ("frce", "FRCE (patch + region branches, ID Controller)"),
    ("mllm_forward", "MLLM [IMG] pass (V)"),
    ("qformer", "QFormer"),
    ("cme", "CME + UNet conditioning"),
    ("denoise", "denoising loop"),
    ("denoise_step", "  per step (mean)"),
    ("decode", "VAE decode"),
    ("preprocess", "preprocess"),
    ("other", "other (latents, scheduler set-up, output)"),
)


def markdown(result: dict[str, Any], env: dict[str, Any]) -> str:
    """The ReasonBrain table (when that method ran, or the failure), then the method rows."""
    ran = "build_s" in result or result.get("status") != "ok"
    head = reasonbrain_markdown(result, env) if ran else f"### {result['preset']}\n"
    return head + "\n" + methods_markdown(result)


def reasonbrain_markdown(result: dict[str, Any], env: dict[str, Any]) -> str:
    preset = result["preset"]
    lines = [f"### {preset}", ""]
    if result.get("status") != "ok":
        lines += [f"FAILED: {result.get('error')}", "", "```", result.get("traceback", "").rstrip(), "```", ""]
        if not result.get("runs"):
            return "\n".join(lines)
    params = result.get("parameters", {})
    lines.append(
        f"{params.get('total', 0) / 1e9:.2f} B parameters, {result.get('dtype')} (SAM 2: {result.get('sam2_dtype')}), "
        f"{result.get('resolution')} px, {result.get('scheduler')} ({result.get('scheduler_algorithm')}), "
        f"attention {', '.join(result.get('attention', []))}, LoRA fused: {result.get('lora_fused')}; "
        f"weights {result.get('weights_gb')} GB; build "
        f"{result.get('build_s')} s; warm-up (excluded) {result.get('warmup_s')}; SAM regions kept "
        f"{result.get('num_regions')} of max {result.get('max_regions')}."
    )
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    lines.append("")
    runs = result.get("runs", {})
    if not runs:
        return "\n".join(lines)
    keys = list(runs)
    head = "| stage (ms, median) | " + " | ".join(f"ReasonBrain {k} steps | bare {k} steps" for k in keys) + " |"
    lines += [head, "|---|" + "---:|---:|" * len(keys)]
    for key, label in ROWS:
        cells = []
        for k in keys:
            ours, theirs = runs[k]["reasonbrain_ms"], runs[k]["bare_ms"]
            cells += [f"{ours.get(key, 0.0):.1f}", f"{theirs[key]:.1f}" if key in theirs else ""]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = []
    for k in keys:
        cells += [f"**{runs[k]['reasonbrain_ms']['total']:.1f}**", f"**{runs[k]['bare_ms']['total']:.1f}**"]
    lines.append("| **total (wall, one edit)** | " + " | ".join(cells) + " |")
    cells = []
    for k in keys:
        cells += [f"{runs[k]['peak_gb']}" if runs[k]["peak_gb"] is not None else "n/a",
                  f"{runs[k]['bare_peak_gb']}" if runs[k]["bare_peak_gb"] is not None else "n/a"]
    lines.append("| peak GPU memory (GB, max_memory_allocated) | " + " | ".join(cells) + " |")
    lines.append("")
    lines += ["| steps | edit / bare edit | denoising loop / bare loop | edit s | peak GB |", "|---:|---:|---:|---:|---:|"]
    for k in keys:
        r = runs[k]
        lines.append(f"| {k} | {r['ratio_edit']:.2f}x | {r['ratio_denoise']:.2f}x | "
                     f"{r['reasonbrain_ms']['total'] / 1000:.3f} | {r['peak_gb']} |")
    if result.get("cpu_offload"):
        o = result["cpu_offload"]
        lines.append(f"| {o['steps']} (model CPU offload, 1 run) | | | {o['edit_ms'] / 1000:.3f} | {o['peak_gb']} |")
    lines.append("")
    lines.append(targets_line(preset, result, env))
    lines.append("")
    return "\n".join(lines)


def methods_markdown(result: dict[str, Any]) -> str:
    rows = result.get("methods")
    if not rows or not rows.get("runs"):
        return ""
    lines = [f"#### {result['preset']}: methods for comparison (build {rows['build_s']} s; MLLM answer "
             f"{rows.get('answer_tokens')} tokens of max {rows['max_new_tokens']}, mask: {rows.get('mask_source')})", ""]
    lines += [f"- {note}" for note in rows["notes"]] + [""]
    lines += ["| method | steps | MLLM answer | SAM 2 regions | editor (loop + VAE) | total ms | peak GB |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for steps, by_method in rows["runs"].items():
        for name, row in by_method.items():
            ms = row["ms"]
            cells = [f"{ms[k]:.1f}" if ms[k] or name != PLAIN_EDITOR else "–"
                     for k in ("mllm_answer", "sam_regions", "editor")]
            lines.append(f"| {name} | {steps} | " + " | ".join(cells) + f" | **{ms['total']:.1f}** | "
                         f"{row['peak_gb'] if row['peak_gb'] is not None else 'n/a'} |")
    return "\n".join(lines) + "\n"


def targets_line(preset: str, result: dict[str, Any], env: dict[str, Any]) -> str:
    run = result.get("runs", {}).get("20")
    if run is None or result.get("resolution") != 512 or preset not in TARGETS["edit_s"]:
        return "Targets (issue 8) apply to the real presets at 512 px and 20 steps."
    edit_s = run["reasonbrain_ms"]["total"] / 1000
    parts = [f"edit {edit_s:.2f} s (target < {TARGETS['edit_s'][preset]:.0f} s)",
             f"denoising overhead {run['ratio_denoise']:.2f}x (target <= {TARGETS['overhead_ratio']}x)",
             f"whole edit {run['ratio_edit']:.2f}x the bare loop"]
    if preset in TARGETS["peak_gb"]:
        parts.append(f"peak {run['peak_gb']} GB (target < {TARGETS['peak_gb'][preset]:.0f} GB)")
    return f"Targets (issue 8, H100; measured on {env.get('device_name')}): " + "; ".join(parts) + "."


def environment(device: torch.device, dtype: torch.dtype, args: argparse.Namespace) -> dict[str, Any]:
    import diffusers
    import transformers

    env = {
        "device": str(device), "dtype": str(dtype).replace("torch.", ""), "torch": torch.__version__,
        "diffusers": diffusers.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "compile": args.compile, "channels_last": args.channels_last,
        "cpu_offload_row": args.cpu_offload, "fuse_lora": args.fuse_lora, "static_cache": args.static_cache,
        "repeats": args.repeats, "steps": args.steps,
        "num_layers_override": args.num_layers, "instruction": INSTRUCTION,
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["device_memory_gb"] = round(torch.cuda.get_device_properties(device).total_memory / GB, 1)
    else:
        env["device_name"] = platform.processor() or "cpu"
        env["cpu_threads"] = torch.get_num_threads()
    return env


def header(env: dict[str, Any], args: argparse.Namespace) -> str:
    return (f"\n## gpu_edit: {env['device_name']}, torch {env['torch']}"
            + (f" (CUDA {env['cuda']})" if "cuda" in env else "")
            + f", diffusers {env['diffusers']}, transformers {env['transformers']}, {env['dtype']}, "
            f"{args.repeats} timed runs per row (median), warm-up excluded"
            + (", torch.compile(unet) (compile time excluded, see warm-up)" if args.compile else "")
            + (", channels_last" if args.channels_last else "") + f"; script wall {env['wall_s']} s\n")


def write_json(path: str | None, env: dict[str, Any], results: list[dict[str, Any]]) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "results": results}, f, indent=2, default=str)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["reasonbrain-3b", "reasonbrain-7b"])
    ap.add_argument("--steps", nargs="+", type=int, default=[20, 50])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--repeats", type=int, default=3, help="timed edits (and bare loops) per step count")
    ap.add_argument("--resolution", type=int, default=None, help="default: the preset's (512 on real presets)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the UNet (the compilation happens in the warm-up, excluded from timings)")
    ap.add_argument("--channels-last", action="store_true", help="UNet and VAE in channels_last memory format")
    ap.add_argument("--cpu-offload", action="store_true",
                    help="an extra row: one edit with enable_model_cpu_offload (small GPUs)")
    ap.add_argument("--static-cache", action="store_true",
                    help="MLLM text generation with a static KV cache (compiled decoding step on CUDA; the compile "
                         "falls in the warm-up edit)")
    ap.add_argument("--no-fuse-lora", dest="fuse_lora", action="store_false",
                    help="keep the MLLM's LoRA unmerged (default: pipe.fuse_lora(), as an inference server should)")
    ap.add_argument("--num-layers", type=int, default=None,
                    help="cap the LLM / text-encoder depth (a REDUCED model, for checking the build path)")
    ap.add_argument("--methods", nargs="+", choices=list(COMPARISON_METHODS), default=list(COMPARISON_METHODS),
                    help="reasonbrain: the ReasonBrain table; reason_then_edit / plain_editor: the method rows")
    ap.add_argument("--json-out", default=None, help="write every number here as JSON")
    args = ap.parse_args(argv)
    if args.repeats < 1 or not args.steps or min(args.steps) < 1:
        ap.error("--repeats and --steps must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    env = environment(device, dtype, args)
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    for preset in args.presets:
        result: dict[str, Any] = {"preset": preset}
        results.append(result)
        try:
            save = lambda: write_json(args.json_out, env, results)  # noqa: E731
            if REASONBRAIN_MODE in args.methods:
                run_preset(preset, args, device, dtype, result, on_row=save)
            free_device(device)
            run_methods(preset, args, device, dtype, result, on_row=save)
            result["status"] = "ok"
        except Exception as err:  # report it, go on with the next preset
            logger.error("%s failed: %s", preset, err)
            traceback.print_exc()
            result.update(status="error", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
        free_device(device)
        env["wall_s"] = round(time.perf_counter() - started, 1)
        # each preset's table and the JSON so far, at once: a run cut short still leaves the finished presets
        print("\n" + markdown(results[-1], env), flush=True)
        write_json(args.json_out, env, results)

    print(header(env, args))
    for result in results:
        print(markdown(result, env))
    if args.json_out:
        print(f"JSON: {args.json_out}")
    return 0 if all(r.get("status") == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
