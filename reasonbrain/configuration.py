"""ReasonBrainConfig: one configuration for every component, with JSON presets.

A preset names each backbone by Hub id (for weights) *and* carries its architecture as a plain dict, so every
preset can be built with random weights without any download (tests, speed benchmarks). Presets live in
``reasonbrain/presets/<name>.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

CONFIG_NAME = "reasonbrain_config.json"
BUNDLED_TOKENIZER = "bundled"  # the small BPE tokenizer shipped in reasonbrain/presets/tokenizer/
# The chat format of models built from scratch (synth, tiny): "USER:<image>H ASSISTANT:".
PLAIN_CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'].upper() + ':' + message['content'] + ' ' }}"
                       "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")
# How a checkpoint edits: its trained ReasonBrain modules, or (untrained modules) reason-then-edit: the pretrained MLLM
# writes an explicit instruction, SAM 2 masks the object and a pretrained InstructPix2Pix edits inside the mask.
REASONBRAIN_MODE = "reasonbrain"
REASON_THEN_EDIT_MODE = "reason_then_edit"
EDIT_MODES = (REASONBRAIN_MODE, REASON_THEN_EDIT_MODE)


@dataclass
class MLLMConfig:
    """The multimodal LLM (a transformers LLaVA-class model): vision tower E_I, image adapter IA, language model."""

    model_type: str = "llava"
    pretrained_model_name_or_path: str | None = None  # None: built from `config` (weights live in the checkpoint)
    config: dict[str, Any] = field(default_factory=dict)  # transformers LlavaConfig kwargs (architecture)
    tokenizer: str = BUNDLED_TOKENIZER  # Hub id / path, or "bundled"
    # The prompt (reasonbrain.models.prompt): one user turn, `user_message` ("<image>" where [IA][R_V][R_T] go, "{}"
    # where the instruction goes), in the tokenizer's chat template where it has one, else in `chat_template` (Jinja).
    chat_template: str | None = PLAIN_CHAT_TEMPLATE
    user_message: str = "<image>{}"
    num_img_tokens: int = 32  # r learnable [IMG] tokens
    img_token_ids: list[int] | None = None  # filled when the tokens are added; checked on every load
    vision_feature_layer: int = -2  # layer fed to IA (as in LLaVA)
    multiscale_layers: list[int] = field(default_factory=lambda: [-2])  # E_I(I) multi-scale features for FRCE/CME
    lora: dict[str, Any] | None = field(default_factory=lambda: {"r": 8, "alpha": 16, "dropout": 0.05})
    freeze_vision_tower: bool = True
    max_instruction_tokens: int = 96
    generate_reasoning: bool = False  # let the MLLM write a short reasoning text (real presets; synth: its outcome)
    reasoning_max_new_tokens: int = 48
    # A generation-only LoRA on the language model ({"r", "alpha", "dropout", "target_modules"}), trained apart
    # (reasonbrain.training.train_outcome): it writes the inferred outcome and is never part of the edit's forward.
    # Needs a fully fine-tuned MLLM (lora null).
    outcome_adapter: dict[str, Any] | None = None


@dataclass
class TextEncoderConfig:
    """E_T: the diffusion side's CLIP text encoder (frozen), or, with ``pretrained_table``, an InstructionReader over
    a frozen pretrained token table that a pinned package ships (``reasonbrain.pretrained_words``); ``config`` then
    holds the reader's arguments and the table's own tokenizer is used (``tokenizer`` is ignored)."""

    pretrained_table: str | None = None
    pretrained_model_name_or_path: str | None = None
    subfolder: str | None = None
    tokenizer: str = BUNDLED_TOKENIZER
    tokenizer_subfolder: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # CLIPTextConfig kwargs
    max_length: int = 77
    trainable: bool = False  # frozen on real presets; trained with the rest when built from scratch (synth)


@dataclass
class FRCEConfig:
    hidden_size: int = 1024
    num_heads: int = 8
    patch_size: int = 2  # patch adapter groups p x p feature-grid cells into one token (MAE-style)
    patch_layers: int = 2  # depth of the patch-level extractor E_P
    region_layers: int = 2  # depth of the region-level extractor E_R
    max_regions: int = 16  # SAM regions kept (the background region included)
    ff_mult: int = 4
    max_object_tokens: int = 16  # the object token O is a short token sequence, e.g. "<obj> red apple | left </obj>"


@dataclass
class QFormerConfig:
    num_layers: int = 6
    num_queries: int = 77
    hidden_size: int = 768
    num_heads: int = 12
    intermediate_size: int = 3072


@dataclass
class CMEConfig:
    num_blocks: int = 5  # the paper's five hybrid cross-attention blocks; fixed
    hidden_size: int = 768
    num_heads: int = 8
    num_queries: int = 32  # learnable tokens Q^2 per enhancer
    ff_mult: int = 4


@dataclass
class DiffusionConfig:
    """UNet (InstructPix2Pix-style, 8 input channels), VAE and scheduler."""

    unet_pretrained: str | None = None  # Hub id of an InstructPix2Pix / SD UNet
    unet_subfolder: str | None = "unet"
    unet_init: str = "random"  # "random" | "pretrained" | "expand_conv_in" (SD -> 8 channels, zero-init)
    unet: dict[str, Any] = field(default_factory=dict)  # UNet2DConditionModel kwargs
    vae_pretrained: str | None = None
    vae_subfolder: str | None = "vae"
    vae: dict[str, Any] = field(default_factory=dict)  # AutoencoderKL kwargs
    scheduler: dict[str, Any] = field(default_factory=lambda: {"_class_name": "EulerAncestralDiscreteScheduler"})
    train_scheduler: dict[str, Any] = field(default_factory=lambda: {"_class_name": "DDPMScheduler"})


@dataclass
class RegionsConfig:
    backend: str = "transformers_sam2"  # "transformers_sam2" | "sam2" | "color_segments"
    pretrained_model_name_or_path: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    points_per_side: int = 16
    max_regions: int = 16
    min_area: float = 0.002
    iou_threshold: float = 0.7


@dataclass
class ComponentsConfig:
    """The paper's ablation switches (table 4 / A1). Off means the component is not built at all."""

    patch_branch: bool = True
    region_branch: bool = True
    id_controller: bool = True
    visual_enhancer: bool = True
    text_enhancer: bool = True
    # Ours, not in the paper (off in the paper's presets): the ID Controller's attention over R_V, spread back
    # onto the image grid, is added to the UNet input as a "where to edit" map (see UNetConditioning).
    grounding_map: bool = False


@dataclass
class RecogniserConfig:
    """Ours: which objects the picture holds (multi-label over ``object_names``), so that an instruction is bound
    among them and one naming an absent object is refused. Empty ``object_names``: no recogniser is built."""

    object_names: list[str] = field(default_factory=list)
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    threshold: float = 0.5  # an object counts as present (and is listed) at this probability or more
    # an instruction naming an object is refused only below this probability: the model's own blurrier outputs
    # (multi-hop chains) must not turn a faint object into "not in this picture"
    absent_below: float = 0.05


@dataclass
class PipelineDefaults:
    num_inference_steps: int = 20
    guidance_scale: float = 7.5
    image_guidance_scale: float = 1.5
    referring: str = "parser"  # "parser" | "mllm"
    referring_vocabulary: str | None = None  # "synthworld": the synthetic world's object names for the parser
    # a pretrained table (reasonbrain.pretrained_words) whose embeddings bind unseen wording to the vocabulary's
    # names; a text encoder's own pretrained_table is used when it has one
    binding_table: str | None = None


@dataclass
class ReasonThenEditConfig:
    """Settings of the reason-then-edit mode (``reasonbrain.pipelines.reason_then_edit``)."""

    # Hub id / folder of a diffusers StableDiffusionInstructPix2PixPipeline, loaded with the backbones; built from the
    # `text_encoder` and `diffusion` sections (random weights) when the backbones are not loaded
    editor: str | None = None
    max_new_tokens: int = 128  # the MLLM's structured answer
    mask_dilation: int = 2  # latent cells the edited area reaches beyond the object's mask
    box_region_min_iou: float = 0.5  # a SAM region replaces the MLLM's box when their IoU reaches this
    box_prompt_min_score: float = 0.5  # SAM 2's mask for the MLLM's box is used when its predicted IoU reaches this
    # outside the edited area the output is the input photo itself (at its own size); False: the decoded source latents
    keep_original_pixels: bool = True


_SECTIONS = {
    "mllm": MLLMConfig,
    "text_encoder": TextEncoderConfig,
    "frce": FRCEConfig,
    "qformer": QFormerConfig,
    "cme": CMEConfig,
    "diffusion": DiffusionConfig,
    "regions": RegionsConfig,
    "components": ComponentsConfig,
    "recogniser": RecogniserConfig,
    "defaults": PipelineDefaults,
    "reason_then_edit": ReasonThenEditConfig,
}


@dataclass
class ReasonBrainConfig:
    name: str = "custom"
    resolution: int = 512
    mllm: MLLMConfig = field(default_factory=MLLMConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    frce: FRCEConfig = field(default_factory=FRCEConfig)
    qformer: QFormerConfig = field(default_factory=QFormerConfig)
    cme: CMEConfig = field(default_factory=CMEConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    components: ComponentsConfig = field(default_factory=ComponentsConfig)
    recogniser: RecogniserConfig = field(default_factory=RecogniserConfig)
    defaults: PipelineDefaults = field(default_factory=PipelineDefaults)
    mode: str = REASONBRAIN_MODE  # one of EDIT_MODES; loading a checkpoint follows it (never switched silently)
    reason_then_edit: ReasonThenEditConfig = field(default_factory=ReasonThenEditConfig)

    def __post_init__(self) -> None:
        for key, cls in _SECTIONS.items():
            value = getattr(self, key)
            if isinstance(value, dict):
                setattr(self, key, _section_from_dict(cls, value, key))
        self.validate()

    # --- validation -------------------------------------------------------------------------------------------
    def validate(self) -> None:
        errors: list[str] = []
        c = self.components
        if self.resolution < 32 or self.resolution % 8:
            errors.append(f"resolution must be a multiple of 8 and >= 32, got {self.resolution}")
        if self.mllm.model_type != "llava":
            errors.append(f"mllm.model_type {self.mllm.model_type!r} is not supported; use 'llava'")
        if self.mllm.num_img_tokens < 1:
            errors.append("mllm.num_img_tokens must be >= 1")
        ids = self.mllm.img_token_ids
        if ids is not None and (len(ids) != self.mllm.num_img_tokens or len(set(ids)) != len(ids)):
            errors.append(
                f"mllm.img_token_ids holds {len(ids)} ids (unique: {len(set(ids))}) but num_img_tokens is "
                f"{self.mllm.num_img_tokens}; they must match one to one"
            )
        if not self.mllm.multiscale_layers:
            errors.append("mllm.multiscale_layers must name at least one vision layer")
        if self.mllm.lora is not None:
            for k in ("r", "alpha"):
                if int(self.mllm.lora.get(k, 0)) < 1:
                    errors.append(f"mllm.lora.{k} must be a positive integer")
        if self.mllm.outcome_adapter is not None:
            for k in ("r", "alpha"):
                if int(self.mllm.outcome_adapter.get(k, 0)) < 1:
                    errors.append(f"mllm.outcome_adapter.{k} must be a positive integer")
            if self.mllm.lora is not None:
                errors.append("mllm.outcome_adapter needs a fully fine-tuned MLLM: set mllm.lora to null (the outcome "
                              "adapter shares the language model's weights, which a LoRA-wrapped MLLM does not hold)")
        if self.cme.num_blocks != 5:
            errors.append(f"cme.num_blocks must be 5 (the paper's five hybrid blocks), got {self.cme.num_blocks}")
        for sec, hidden, heads in (
            ("frce", self.frce.hidden_size, self.frce.num_heads),
            ("qformer", self.qformer.hidden_size, self.qformer.num_heads),
            ("cme", self.cme.hidden_size, self.cme.num_heads),
        ):
            if hidden % heads:
                errors.append(f"{sec}.hidden_size ({hidden}) must be divisible by {sec}.num_heads ({heads})")
        if self.qformer.num_layers < 1 or self.qformer.num_queries < 1:
            errors.append("qformer.num_layers and qformer.num_queries must be >= 1")
        if self.frce.patch_size < 1:
            errors.append("frce.patch_size must be >= 1")
        if self.frce.max_regions < 1 or self.regions.max_regions > self.frce.max_regions:
            errors.append(
                f"regions.max_regions ({self.regions.max_regions}) must be between 1 and frce.max_regions "
                f"({self.frce.max_regions})"
            )
        if c.id_controller and not (c.patch_branch or c.region_branch):
            errors.append("components.id_controller needs R_V: turn on patch_branch or region_branch")
        if c.visual_enhancer and not (c.patch_branch or c.region_branch):
            errors.append("components.visual_enhancer attends to R_V: turn on patch_branch or region_branch")
        if c.text_enhancer and not c.id_controller:
            errors.append("components.text_enhancer attends to R_T: turn on id_controller")
        if c.grounding_map and not c.id_controller:
            errors.append("components.grounding_map spreads the ID Controller's attention: turn on id_controller")
        unet = self.diffusion.unet
        if unet and unet.get("in_channels", 8) != 2 * self.latent_channels:
            errors.append(
                f"diffusion.unet.in_channels must be 2 x the VAE latent channels ({2 * self.latent_channels}) "
                "for the [z_t, latent(I)] input"
            )
        if self.diffusion.unet_init not in ("random", "pretrained", "expand_conv_in"):
            errors.append("diffusion.unet_init must be 'random', 'pretrained' or 'expand_conv_in'")
        if self.defaults.referring not in ("parser", "mllm"):
            errors.append("defaults.referring must be 'parser' or 'mllm'")
        if self.defaults.referring_vocabulary not in (None, "synthworld"):
            errors.append("defaults.referring_vocabulary must be null or 'synthworld'")
        if self.mode not in EDIT_MODES:
            errors.append(f"mode must be one of {', '.join(EDIT_MODES)}, got {self.mode!r}")
        rte = self.reason_then_edit
        if (rte.max_new_tokens < 1 or rte.mask_dilation < 0 or not 0.0 < rte.box_region_min_iou <= 1.0
                or not 0.0 <= rte.box_prompt_min_score <= 1.0):
            errors.append("reason_then_edit needs max_new_tokens >= 1, mask_dilation >= 0, box_region_min_iou in "
                          "(0, 1] and box_prompt_min_score in [0, 1]")
        if errors:
            raise ValueError("Invalid ReasonBrainConfig:\n  - " + "\n  - ".join(errors))

    # --- derived ----------------------------------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return int(self.diffusion.vae.get("latent_channels", 4))

    @property
    def cross_attention_dim(self) -> int:
        return int(self.diffusion.unet.get("cross_attention_dim", 768))

    # --- (de)serialisation ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def save(self, folder: str | os.PathLike) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, CONFIG_NAME), "w", encoding="utf-8") as f:
            f.write(self.to_json_string())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReasonBrainConfig:
        data = copy.deepcopy(data)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown ReasonBrainConfig keys: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> ReasonBrainConfig:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ReasonBrainConfig:
        """Load a bundled preset (``tiny``, ``synth``, ``reasonbrain-3b``, ``reasonbrain-7b``)."""
        if name not in list_presets():
            raise ValueError(f"Unknown preset {name!r}; available: {', '.join(list_presets())}")
        text = resources.files("reasonbrain.presets").joinpath(f"{name}.json").read_text(encoding="utf-8")
        data = json.loads(text)
        data = _deep_update(data, overrides)
        return cls.from_dict(data)

    def replace(self, **overrides: Any) -> ReasonBrainConfig:
        """A new config with nested overrides, e.g. ``replace(components={"region_branch": False})``."""
        return ReasonBrainConfig.from_dict(_deep_update(self.to_dict(), overrides))


def list_presets() -> list[str]:
    folder = resources.files("reasonbrain.presets")
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def _section_from_dict(cls: type, value: dict[str, Any], key: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(value) - names
    if unknown:
        raise ValueError(f"Unknown keys in config section {key!r}: {sorted(unknown)}; valid keys: {sorted(names)}")
    return cls(**value)


def _deep_update(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested update; a ``config`` dict (an architecture or backend kwargs) is replaced whole, never merged."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "config":
            out[k] = _deep_update(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
