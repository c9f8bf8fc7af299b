"""Engine: owns the edit pipeline (lazy load, one edit at a time) and turns its output into what the app stores.

The pipeline edits in one mode (``Settings.mode``, else the checkpoint's declared mode; a preset: reasonbrain):
``ReasonBrainEditPipeline`` (mode reasonbrain) or ``ReasonThenEditPipeline`` (mode reason_then_edit, the backbones a
config names). The mode is never switched silently: a checkpoint that cannot edit in the requested mode is refused.

No database work happens here; the app stores an :class:`EditResult` with :class:`app.store.Store` afterwards.
On a ZeroGPU Space (the ``spaces`` package importable) only the pipeline call runs inside ``spaces.GPU``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image

from app.settings import Settings
from reasonbrain.configuration import REASON_THEN_EDIT_MODE
from reasonbrain.seeds import check_seed, random_seed
from reasonbrain.visualization import bound_region, label_map, render_attention_heatmap

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from reasonbrain.configuration import ReasonBrainConfig
    from reasonbrain.pipelines.output import ReasonBrainEditOutput
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.pipelines.reason_then_edit import ReasonThenEditPipeline
    from reasonbrain.pipelines.reason_then_edit_output import ReasonThenEditOutput
    from reasonbrain.synthworld.domain import DomainCheck

    EditPipeline = ReasonBrainEditPipeline | ReasonThenEditPipeline
    EditOutput = ReasonBrainEditOutput | ReasonThenEditOutput

logger = logging.getLogger(__name__)

NUM_EXAMPLES = 6
CONFIG_FILE = "reasonbrain_config.json"
# what identifies a checkpoint: weights, configs, tokenizers (not READMEs or caches)
HASHED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".model", ".txt")
TRAIN_HINT = (
    "train the bundled model with `python -m reasonbrain.training.train --config configs/train_synth.json` and "
    "copy its final checkpoint there, point --checkpoint (REASONBRAIN_CHECKPOINT) at a checkpoint folder or Hub "
    "repo id, or run with --preset tiny (random weights)"
)
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# what checkpoint_hash says about the weights (app.render.model_label reads it back): a preset's prefix, and the
# whole hash of a pipeline built in code
RANDOM = "random"
PRETRAINED = "pretrained"
CUSTOM = "custom"


@dataclass
class EditRequest:
    image: PIL.Image.Image | str | bytes  # also: numpy array (H, W[, C])
    instruction: str
    steps: int | None = None  # None -> the preset's defaults
    guidance_scale: float | None = None
    image_guidance_scale: float | None = None
    seed: int | None = None  # None -> a fresh random seed (reported in the result)
    scheduler: str | None = None  # one of Engine.scheduler_names()


@dataclass(frozen=True)
class InstructionLength:
    """How long an instruction is, as the pipeline counts it, against the model's limits (the prompt counter)."""

    chars: int
    max_chars: int
    tokens: int | None  # None: not counted (the model is not loaded yet, or far too many characters)
    max_tokens: int

    @property
    def too_long(self) -> bool:
        return self.chars > self.max_chars or (self.tokens is not None and self.tokens > self.max_tokens)


@dataclass
class EditResult:
    output: EditOutput  # the pipeline's output (output.images[0] is the edit; output.mode says which pipeline)
    input_image: PIL.Image.Image  # the normalised RGB input as edited
    preset: str
    checkpoint_hash: str
    details: dict[str, Any]  # JSON-serialisable; what the store keeps as details_json

    @property
    def image(self) -> PIL.Image.Image:
        return self.output.images[0]

    @property
    def seed(self) -> int:
        return self.output.seed

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.output.settings)

    @property
    def timings(self) -> dict[str, float]:
        return dict(self.output.timings)


class Engine:
    def __init__(
        self, settings: Settings, *, pipeline_factory: Callable[[], EditPipeline] | None = None
    ) -> None:
        self.settings = settings
        self._factory = pipeline_factory
        self._pipeline: EditPipeline | None = None
        self._load_lock = threading.Lock()
        self._edit_lock = threading.Lock()
        self._cache_lock = threading.RLock()
        self._config_cache: ReasonBrainConfig | None = None
        self._hash: str | None = None
        self._resolved_checkpoint: str | None = None
        self._examples: list[tuple[PIL.Image.Image, str]] | None = None
        self._gpu_call, self.uses_zerogpu = self._wrap_gpu(self._run_pipeline)

    # --- ZeroGPU ----------------------------------------------------------------------------------------------
    def _wrap_gpu(self, fn: Callable[..., Any]) -> tuple[Callable[..., Any], bool]:
        """``spaces.GPU(duration=...)(fn)`` when the ``spaces`` package is present, else ``fn`` itself."""
        try:
            import spaces
        except ImportError:
            return fn, False
        logger.info("spaces found: edits run inside spaces.GPU(duration=%d)", self.settings.gpu_duration)
        return spaces.GPU(duration=self.settings.gpu_duration)(fn), True

    def _run_pipeline(
        self, image: PIL.Image.Image, instruction: str, call_kwargs: dict[str, Any],
        progress: Callable[[int, int], None] | None = None,
    ) -> EditOutput:
        """The GPU part: the pipeline call only (picklable arguments and result, no database work)."""
        assert self._pipeline is not None
        out = self._pipeline(image, instruction, progress_callback=progress, **call_kwargs)
        if out.regions is not None:
            out.regions = out.regions.to("cpu")
        return out

    # --- loading ----------------------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._pipeline is not None

    @property
    def device(self) -> torch.device:
        import torch

        if self.settings.device:
            return torch.device(self.settings.device)
        accelerator = getattr(torch, "accelerator", None)
        if accelerator is not None and accelerator.is_available():
            return accelerator.current_accelerator()
        if torch.cuda.is_available():  # ZeroGPU's `spaces` makes this true in the main process (not the above)
            return torch.device("cuda")
        return torch.device("cpu")

    def load(self) -> None:
        """Build or load the pipeline and move it to the device (idempotent, thread-safe)."""
        if self._pipeline is not None:
            return
        with self._load_lock:
            if self._pipeline is not None:
                return
            start = time.perf_counter()
            pipe = self._build_pipeline()
            if self.settings.mode is not None and pipe.config.mode != self.settings.mode:
                raise ValueError(f"the pipeline edits in mode {pipe.config.mode!r}, not the requested "
                                 f"{self.settings.mode!r}")
            pipe.to(self.device)
            self._pipeline = pipe
            seconds = time.perf_counter() - start
        # lock order: _load_lock is never taken while _cache_lock is held, and released before this
        logger.info("loaded %s (%s) on %s in %.1f s", self.preset_name, self.checkpoint_hash, self.device, seconds)

    def _build_pipeline(self) -> EditPipeline:
        """The pipeline of the settings: the factory's, a preset's (random weights; in reason-then-edit mode the
        pretrained backbones the preset names, if it names any), or the checkpoint's in its mode."""
        if self._factory is not None:
            return self._factory()
        from reasonbrain import ReasonBrainConfig, ReasonBrainEditPipeline

        if self.settings.preset:
            config = ReasonBrainConfig.from_preset(self.settings.preset)
            if self.settings.mode == REASON_THEN_EDIT_MODE:
                from reasonbrain.pipelines.reason_then_edit import ReasonThenEditPipeline

                return ReasonThenEditPipeline.from_config(config, load_backbones=names_backbones(config))
            pipe = ReasonBrainEditPipeline.from_config(config)
        else:
            from reasonbrain.pipelines.modes import load_edit_pipeline

            pipe = load_edit_pipeline(self._checkpoint_folder(), mode=self.settings.mode)
        if isinstance(pipe, ReasonBrainEditPipeline):
            pipe.fuse_lora()  # ours, inference only: LoRA merged into the MLLM (fewer kernels per token)
        return pipe

    def _checkpoint_folder(self) -> str:
        """The local checkpoint folder (a Hub repo id is downloaded once)."""
        ckpt = self.settings.checkpoint
        if os.path.isdir(ckpt):
            return ckpt
        with self._cache_lock:
            if self._resolved_checkpoint is None:
                if not _REPO_ID.fullmatch(ckpt) or os.path.exists(os.path.dirname(ckpt) or ckpt):
                    raise FileNotFoundError(f"checkpoint folder {ckpt!r} does not exist: {TRAIN_HINT}")
                from huggingface_hub import snapshot_download

                try:
                    self._resolved_checkpoint = snapshot_download(ckpt)
                except Exception as err:  # hub errors vary by version; re-raised with the fix
                    raise FileNotFoundError(
                        f"checkpoint {ckpt!r} is neither a local folder nor a downloadable Hub repo ({err}): "
                        f"{TRAIN_HINT}"
                    ) from err
            return self._resolved_checkpoint

    def _config(self) -> ReasonBrainConfig:
        """The model config as the pipeline will edit with it (its ``mode`` the requested one where a pipeline of
        that mode can be built from it), without loading weights."""
        if self._pipeline is None and self._factory is not None and not self.settings.preset and not os.path.isdir(
            self.settings.checkpoint
        ):
            self.load()  # a custom pipeline with no config on disk (never called while holding _cache_lock)
        if self._pipeline is not None:
            return self._pipeline.config
        with self._cache_lock:
            if self._config_cache is None:
                from reasonbrain import ReasonBrainConfig

                if self.settings.preset:
                    config = ReasonBrainConfig.from_preset(self.settings.preset)
                else:
                    path = os.path.join(self._checkpoint_folder(), CONFIG_FILE)
                    if not os.path.isfile(path):
                        raise FileNotFoundError(f"{path} is missing: not a ReasonBrain checkpoint; {TRAIN_HINT}")
                    config = ReasonBrainConfig.from_json_file(path)
                if self.settings.mode == REASON_THEN_EDIT_MODE and config.mode != REASON_THEN_EDIT_MODE:
                    config = config.replace(mode=REASON_THEN_EDIT_MODE)  # as ReasonThenEditPipeline does
                self._config_cache = config
            return self._config_cache

    @property
    def mode(self) -> str:
        """How the model edits: ``reasonbrain`` or ``reason_then_edit`` (``reasonbrain.configuration.EDIT_MODES``)."""
        return self._config().mode

    @property
    def model_label(self) -> str:
        """The model in use and its mode, as every result shows it (``app.render.model_label``)."""
        from app.render import model_label

        return model_label(self.preset_name, self.mode, self.checkpoint_hash)

    @property
    def preset_name(self) -> str:
        return self.settings.preset or self._config().name

    @property
    def checkpoint_hash(self) -> str:
        """``random-<preset>`` for presets (``pretrained-<preset>`` in reason-then-edit mode with the backbones the
        preset names), else sha256 (12 hex) over the checkpoint's weight/config files."""
        pretrained = bool(self.settings.preset) and self.mode == REASON_THEN_EDIT_MODE and names_backbones(
            self._config())  # outside the cache lock (_config may load a custom pipeline)
        with self._cache_lock:
            if self._hash is None:
                if self.settings.preset:
                    self._hash = f"{PRETRAINED if pretrained else RANDOM}-{self.settings.preset}"
                elif self._factory is not None and not os.path.isdir(self.settings.checkpoint):
                    self._hash = CUSTOM
                else:
                    self._hash = checkpoint_fingerprint(self._checkpoint_folder())
            return self._hash

    # --- editing ----------------------------------------------------------------------------------------------
    def edit(self, request: EditRequest, progress: Callable[[int, int], None] | None = None) -> EditResult:
        """Run one edit. Bad input raises ValueError (the pipeline's own messages, unchanged). Edits are
        serialised by a lock; ``progress(done, total)`` is called after every denoising step."""
        if not isinstance(request, EditRequest):
            raise ValueError(f"edit() takes an EditRequest, got {type(request).__name__}")
        image = self.read_image(request.image)
        self.load()
        pipe = self._pipeline
        assert pipe is not None
        defaults = pipe.config.defaults
        steps = _whole("steps", defaults.num_inference_steps if request.steps is None else request.steps)
        g_text = defaults.guidance_scale if request.guidance_scale is None else request.guidance_scale
        g_image = defaults.image_guidance_scale if request.image_guidance_scale is None else request.image_guidance_scale
        _check_request(pipe, request.instruction, steps, g_text, g_image)  # before taking the GPU
        if request.scheduler is not None and request.scheduler not in self.scheduler_names():
            raise ValueError(
                f"unknown scheduler {request.scheduler!r}; choose one of {', '.join(self.scheduler_names())}"
            )
        seed = random_seed() if request.seed is None else check_seed(_whole("seed", request.seed))
        call_kwargs = {
            "num_inference_steps": steps, "guidance_scale": g_text, "image_guidance_scale": g_image,
            "seed": seed, "scheduler": request.scheduler,
        }
        with self._edit_lock:
            if self.uses_zerogpu:  # the GPU worker cannot call back into this process
                out = self._gpu_call(image, request.instruction, call_kwargs)
                if progress is not None:
                    progress(steps, steps)
            else:
                out = self._gpu_call(image, request.instruction, call_kwargs, progress)
        return EditResult(
            output=out,
            input_image=image,
            preset=self.preset_name,
            checkpoint_hash=self.checkpoint_hash,
            details=self._details(out, image),
        )

    def read_image(self, source: Any) -> PIL.Image.Image:
        """Any upload -> normalised RGB, enforcing ``max_upload_mb`` and ``max_image_side`` (checked on the
        header, before decoding). ValueError says what to do."""
        from reasonbrain.image_io import load_image

        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            self._check_upload_size(len(data))
            self._check_header(io.BytesIO(data))
            return load_image(data)
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            if not os.path.isfile(path):
                raise ValueError(f"image file not found: {path}")
            self._check_upload_size(os.path.getsize(path))
            with open(path, "rb") as f:
                self._check_header(f)
            return load_image(path)
        if isinstance(source, PIL.Image.Image):
            self._check_side(*source.size)
            return load_image(source)
        if isinstance(source, np.ndarray):
            if source.ndim >= 2:
                self._check_side(int(source.shape[1]), int(source.shape[0]))
            return load_image(source)
        if source is None:
            raise ValueError("no image: upload an image (PNG, JPEG or WebP) or pick an example first")
        raise ValueError(f"unsupported image input {type(source).__name__}; pass a PIL image, a path or bytes")

    def _check_upload_size(self, n_bytes: int) -> None:
        if n_bytes > self.settings.max_upload_bytes:
            raise ValueError(
                f"the image file is {n_bytes / 2**20:.1f} MB; the limit is {self.settings.max_upload_mb:g} MB. "
                "Downscale or compress it (e.g. save as JPEG) and try again."
            )

    def _check_header(self, fp: Any) -> None:
        try:
            with PIL.Image.open(fp) as im:  # reads the header only
                width, height = im.size
        except PIL.Image.DecompressionBombError as err:
            raise ValueError(
                f"the image declares too many pixels to decode safely ({err}); the longest side may be at most "
                f"{self.settings.max_image_side} px"
            ) from err
        except (OSError, SyntaxError, ValueError, EOFError):
            return  # not a readable header: load_image reports exactly what is wrong
        self._check_side(width, height)

    def _check_side(self, width: int, height: int) -> None:
        limit = self.settings.max_image_side
        if max(width, height) > limit:
            raise ValueError(
                f"the image is {width}x{height} px; the longest side may be at most {limit} px. Downscale it first."
            )

    def _details(self, out: EditOutput, image: PIL.Image.Image) -> dict[str, Any]:
        """The output's own JSON (as the CLI writes it: regions, bound region, reasoning; or the reason-then-edit
        fields) plus what the app adds: the mode, the region backend, the input size, the model."""
        details = out.to_dict()
        details.update(
            mode=self.mode,  # the library's ReasonBrainEditOutput carries none
            region_backend=self._config().regions.backend,  # which proposer made the regions (the app names it)
            input_size=list(image.size),
            preset=self.preset_name,
            checkpoint_hash=self.checkpoint_hash,
        )
        return details

    # --- what the UI offers -----------------------------------------------------------------------------------
    def instruction_length(self, text: Any) -> InstructionLength:
        """``text`` measured as ``check_inputs`` measures it (whitespace collapsed; tokens by the model's own
        tokenizer once the model is loaded), against the pipeline's character limit and the model's token limit."""
        from reasonbrain.pipelines.input_checks import MAX_INSTRUCTION_CHARS, instruction_token_limit

        normalised = "".join(ch for ch in " ".join(text.split()) if ch.isprintable()) if isinstance(text, str) else ""
        if self.mode == REASON_THEN_EDIT_MODE:
            return _reasoning_prompt_length(self._pipeline, normalised)
        max_tokens = instruction_token_limit(self._config())
        tokens = None
        if self._pipeline is not None and normalised and len(normalised) <= 2 * MAX_INSTRUCTION_CHARS:
            tokens = self._pipeline.instruction_tokens(normalised)[0]
        return InstructionLength(chars=len(normalised), max_chars=MAX_INSTRUCTION_CHARS, tokens=tokens,
                                 max_tokens=max_tokens)

    @property
    def photo_examples(self) -> bool:
        """What the app offers as examples (the one rule): photos (``app.photo_examples``) when the model edits
        photos, i.e. in reason-then-edit mode unless it is synth-only; else the synthetic world's scenes (a
        ReasonBrain model: trained on that world, or a preset's random weights)."""
        return self.mode == REASON_THEN_EDIT_MODE and not self.synth_only

    def example_images(self) -> list[tuple[PIL.Image.Image, str]]:
        """Example images, each with an instruction (computed once): ~6 synthetic scenes at the model's resolution,
        or the photos an installed package ships (none when they are missing); see ``photo_examples``."""
        photos = self.photo_examples
        resolution = self._config().resolution  # outside the cache lock (it may load a custom pipeline)
        with self._cache_lock:
            if self._examples is None:
                if photos:
                    from app.photo_examples import example_photos

                    self._examples = example_photos()
                else:
                    from reasonbrain.synthworld import sample_scene

                    samples = [sample_scene(seed=i, resolution=resolution) for i in range(NUM_EXAMPLES)]
                    self._examples = [(s.src, s.record.instruction) for s in samples]
            return [(im.copy(), text) for im, text in self._examples]

    def example_instructions(self) -> dict[str, list[str]]:
        """A few instructions per reasoning category (physical, temporal, causal, story): the synthetic world's, or
        ones written for photos (see ``photo_examples``)."""
        if self.photo_examples:
            from app.photo_examples import example_instructions as photo_instructions

            return photo_instructions()
        from reasonbrain.synthworld import example_instructions

        return example_instructions()

    # --- the model's world ------------------------------------------------------------------------------------
    @property
    def synth_only(self) -> bool:
        """True when the model knows only the synthetic world (decided by its config, not its name)."""
        from reasonbrain.synthworld.domain import synth_only

        return synth_only(self._config())

    def domain_check(self, image: Any) -> DomainCheck | None:
        """Whether ``image`` (any upload) looks like a scene of the world a synth-only model knows; None when the
        model is not synth-only (nothing to warn about). ValueError for an unreadable image."""
        if not self.synth_only:
            return None
        from reasonbrain.synthworld.domain import check_image

        return check_image(self.read_image(image))

    def scheduler_names(self) -> list[str]:
        from reasonbrain.schedulers import SCHEDULERS

        return list(SCHEDULERS)

    def defaults(self) -> dict[str, Any]:
        """``{"steps", "guidance_scale", "image_guidance_scale", "scheduler", "resolution"}`` of the model."""
        cfg = self._config()
        if self._pipeline is not None:
            sampler = self._pipeline.editor.scheduler if cfg.mode == REASON_THEN_EDIT_MODE else self._pipeline.scheduler
            scheduler = type(sampler).__name__
        else:
            scheduler = self._scheduler_name_on_disk() or cfg.diffusion.scheduler.get(
                "_class_name", "EulerAncestralDiscreteScheduler"
            )
        return {
            "steps": int(cfg.defaults.num_inference_steps),
            "guidance_scale": float(cfg.defaults.guidance_scale),
            "image_guidance_scale": float(cfg.defaults.image_guidance_scale),
            "scheduler": scheduler,
            "resolution": int(cfg.resolution),
        }

    def _scheduler_name_on_disk(self) -> str | None:
        if self.settings.preset or not os.path.isdir(self.settings.checkpoint):
            return None
        path = os.path.join(self.settings.checkpoint, "scheduler", "scheduler_config.json")
        if not os.path.isfile(path):
            return None
        import json

        with open(path, encoding="utf-8") as f:
            return json.load(f).get("_class_name")


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint identity
# ----------------------------------------------------------------------------------------------------------------
def checkpoint_fingerprint(folder: str) -> str:
    """sha256 (first 12 hex) over the relative paths and bytes of the weight/config files in ``folder``."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if name.endswith(HASHED_SUFFIXES) and not name.startswith("."):
                files.append(os.path.relpath(os.path.join(root, name), folder))
    if not files:
        raise FileNotFoundError(f"{folder} holds no weight or config files: not a checkpoint; {TRAIN_HINT}")
    digest = hashlib.sha256()
    for rel in sorted(files, key=lambda p: p.replace(os.sep, "/")):
        path = os.path.join(folder, rel)
        digest.update(f"{rel.replace(os.sep, '/')}\0{os.path.getsize(path)}\0".encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def names_backbones(config: ReasonBrainConfig) -> bool:
    """Whether ``config`` names pretrained backbones (an MLLM or an editor on the Hub): a real preset. A preset
    naming none (tiny) builds its reason-then-edit pipeline from random weights of the same classes."""
    return bool(config.mllm.pretrained_model_name_or_path or config.reason_then_edit.editor)


def _check_request(pipe: EditPipeline, instruction: Any, steps: Any, g_text: Any, g_image: Any) -> None:
    """The pipeline's own input checks, before the GPU is taken: ValueError with the pipeline's message."""
    if pipe.config.mode == REASON_THEN_EDIT_MODE:
        from reasonbrain.pipelines.input_checks import check_edit_settings, check_instruction

        text = check_instruction(instruction)
        check_edit_settings(steps, g_text, g_image, 1)
        pipe.reasoner.check_prompt(text)
    else:
        pipe.check_inputs(instruction, steps, g_text, g_image, 1)


def _reasoning_prompt_length(pipe: ReasonThenEditPipeline | None, text: str) -> InstructionLength:
    """Reason-then-edit: the instruction's tokens in the MLLM's structured prompt (what ``check_prompt`` counts,
    less the prompt's own) against what that prompt leaves for it; before loading, against the whole limit."""
    from reasonbrain.models.reasoner import PROMPT_TOKEN_LIMIT
    from reasonbrain.pipelines.input_checks import MAX_INSTRUCTION_CHARS
    from reasonbrain.reasoning_prompt import structured_prompt

    if pipe is None:
        return InstructionLength(chars=len(text), max_chars=MAX_INSTRUCTION_CHARS, tokens=None,
                                 max_tokens=PROMPT_TOKEN_LIMIT)
    tokenizer = pipe.reasoner.mllm.tokenizer
    overhead = len(tokenizer.encode(structured_prompt(""), add_special_tokens=False))
    tokens = None
    if text and len(text) <= 2 * MAX_INSTRUCTION_CHARS:
        tokens = len(tokenizer.encode(structured_prompt(text), add_special_tokens=False)) - overhead
    return InstructionLength(chars=len(text), max_chars=MAX_INSTRUCTION_CHARS, tokens=tokens,
                             max_tokens=PROMPT_TOKEN_LIMIT - overhead)


def _whole(name: str, value: Any) -> Any:
    """Integral floats (what sliders send) -> int; anything else is passed on for the pipeline to judge."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if name == "seed":
        raise ValueError(f"seed must be a whole number, got {value!r}")
    return value


# bound_region, label_map, render_attention_heatmap: the library's (reasonbrain.visualization), re-exported for the tabs
__all__ = [
    "EditRequest", "EditResult", "Engine", "InstructionLength", "bound_region", "checkpoint_fingerprint", "label_map",
    "names_backbones", "render_attention_heatmap",
]
