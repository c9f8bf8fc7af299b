"""ReasonBrainModel: every component of the paper in one module, built from a ReasonBrainConfig.

Checkpoint folder layout (one subfolder per component, strict loading):
    reasonbrain_config.json  tokenizer/  text_tokenizer/
    mllm/          the LLaVA model (only when it has no Hub id or is fully fine-tuned)
    mllm_adapter/  LoRA + [IMG] token rows + image adapter, in PEFT's own format (when LoRA is on)
    mllm_outcome_adapter/  the generation-only LoRA that writes the inferred outcome, in PEFT's own format (when
                   mllm.outcome_adapter is set)
    text_encoder/  (only when it has no Hub id)     vae/ (likewise)
    frce/  qformer/  cme/  conditioning/  unet/    ModelMixin folders (config.json + safetensors)
Which component comes from where is decided by config fields, never by path names.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn
from transformers import AutoTokenizer, CLIPTextModel, LlavaConfig, LlavaForConditionalGeneration

from reasonbrain.configuration import BUNDLED_TOKENIZER, CONFIG_NAME, ReasonBrainConfig
from reasonbrain.models.backbones import (
    build_diffusion,
    build_text_encoder,
    load_diffusion,
    load_mllm,
    load_strict,
    load_text_encoder,
    mllm_base_in_checkpoint,
    tokenizer_source,
    wrap_mllm,
)
from reasonbrain.models.cme import CrossModalEnhancer
from reasonbrain.models.conditioning import UNetConditioning
from reasonbrain.models.frce import FineGrainedReasoningCues, FRCEOutput
from reasonbrain.models.instruction_reader import InstructionReader
from reasonbrain.models.mllm import ReasonBrainMLLM, add_img_tokens
from reasonbrain.models.qformer import ReasonQFormer
from reasonbrain.models.scene_recogniser import SceneRecogniser
from reasonbrain.text import normalize_instruction

logger = logging.getLogger(__name__)


@dataclass
class ConditionOutput:
    """Everything computed once per edit (independent of the denoising step)."""

    input_offset: torch.Tensor  # (B, C_in, h, w) R-_visual + R-_text added to [z_t, latent(I)]
    context: torch.Tensor  # (B, L, cross_attention_dim) [e-_visual, e-_text] (or projected V^)
    img_hidden: torch.Tensor  # (B, r, d_llm) V
    guidance: torch.Tensor  # (B, Q, d_q) V^ = QFormer(V)
    frce: FRCEOutput | None
    mllm_loss: torch.Tensor | None
    mllm_sequence: dict[str, torch.Tensor] | None = None  # the MLLM's input (``edit_sequence``), [IMG] tokens last


@dataclass
class EditSequence:
    """``ReasonBrainModel.edit_sequence``: the MLLM input and what went into it."""

    sequence: dict[str, torch.Tensor]  # build_sequence's dict: input_ids, inputs_embeds, attention_mask, position_ids
    text_features: torch.Tensor  # (B, L, D_t) E_T(H)
    text_padding: torch.Tensor  # (B, L) True = padding
    frce: FRCEOutput | None


def _plain(value):
    """Config values compared across JSON round trips (tuples and lists alike)."""
    return list(value) if isinstance(value, tuple) else value


class ReasonBrainModel(nn.Module):
    def __init__(
        self,
        *,
        config: ReasonBrainConfig,
        mllm: ReasonBrainMLLM,
        text_encoder: CLIPTextModel,
        text_tokenizer,
        frce: FineGrainedReasoningCues | None,
        qformer: ReasonQFormer,
        cme: CrossModalEnhancer | None,
        conditioning: UNetConditioning,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        recogniser: SceneRecogniser | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.mllm = mllm
        self.text_encoder = text_encoder
        self.text_tokenizer = text_tokenizer
        self.frce = frce
        self.qformer = qformer
        self.cme = cme
        self.conditioning = conditioning
        self.unet = unet
        self.vae = vae
        self.recogniser = recogniser
        if recogniser is not None:
            recogniser.requires_grad_(False)  # trained apart (reasonbrain.training.train_recogniser)
        self.text_encoder.requires_grad_(config.text_encoder.trainable)
        self.vae.requires_grad_(False)

    # ------------------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, config: ReasonBrainConfig, *, load_backbones: bool = False, bundled_tokenizers: bool = False
    ) -> ReasonBrainModel:
        """Build every component. Random weights everywhere unless ``load_backbones`` (Hub ids -> weights).

        ``bundled_tokenizers`` swaps the presets' Hub tokenizers for the bundled one, so that real-size presets
        can be built fully offline with random weights (parameter counts, speed and memory benchmarks).
        """
        if bundled_tokenizers:
            config = config.replace(
                mllm={"tokenizer": BUNDLED_TOKENIZER, "img_token_ids": None},
                text_encoder={"tokenizer": BUNDLED_TOKENIZER, "tokenizer_subfolder": None},
            )
        mc = config.mllm
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(mc.tokenizer))
        img_ids = add_img_tokens(tokenizer, mc.num_img_tokens, mc.img_token_ids)
        if load_backbones and mc.pretrained_model_name_or_path:
            vlm = LlavaForConditionalGeneration.from_pretrained(mc.pretrained_model_name_or_path)
        else:
            vlm = LlavaForConditionalGeneration(LlavaConfig(**mc.config))
        config = config.replace(mllm={"img_token_ids": img_ids})
        text_tokenizer, text_encoder = build_text_encoder(config, load_backbones)
        unet, vae = build_diffusion(config, load_backbones)
        mllm = wrap_mllm(config, vlm, tokenizer, img_ids, adapter_path=None)
        return cls._assemble(config, mllm, text_encoder, text_tokenizer, unet, vae)

    @classmethod
    def _assemble(cls, config, mllm, text_encoder, text_tokenizer, unet, vae, folder: str | None = None):
        """Build (or, with ``folder``, strictly load) the ReasonBrain-own modules around the backbones."""
        comp = config.components
        text_dim = int(text_encoder.config.hidden_size)
        grid = mllm.grid_size
        cad = int(unet.config.cross_attention_dim)
        in_ch = int(unet.config.in_channels)

        def make(sub: str, klass, **kwargs):
            if folder is None:
                return klass(**kwargs)
            module = load_strict(klass, os.path.join(folder, sub))
            saved = module.config  # the module's own config.json must say what ReasonBrainConfig says
            differ = {k: (v, saved[k]) for k, v in kwargs.items()
                      if k in saved and _plain(saved[k]) != _plain(v)}
            if differ:
                raise ValueError(f"{folder}: {sub}/config.json disagrees with reasonbrain_config.json and the backbones: "
                                 + "; ".join(f"{k} is {b!r} there but {a!r} here" for k, (a, b) in differ.items()))
            return module

        frce = None
        if comp.patch_branch or comp.region_branch:
            f = config.frce
            frce = make(
                "frce", FineGrainedReasoningCues,
                vision_dim=mllm.vision_dim, text_dim=text_dim, llm_hidden_size=mllm.hidden_size, grid_size=grid,
                hidden_size=f.hidden_size, num_heads=f.num_heads, patch_size=f.patch_size,
                patch_layers=f.patch_layers, region_layers=f.region_layers, max_regions=f.max_regions,
                ff_mult=f.ff_mult, use_patch_branch=comp.patch_branch, use_region_branch=comp.region_branch,
                use_id_controller=comp.id_controller,
            )
        q = config.qformer
        qformer = make(
            "qformer", ReasonQFormer,
            encoder_hidden_size=mllm.hidden_size, num_layers=q.num_layers, num_queries=q.num_queries,
            hidden_size=q.hidden_size, num_heads=q.num_heads, intermediate_size=q.intermediate_size,
        )
        cme = None
        if comp.visual_enhancer or comp.text_enhancer:
            c = config.cme
            cme = make(
                "cme", CrossModalEnhancer,
                vision_dim=mllm.vision_dim, text_dim=text_dim, cue_dim=config.frce.hidden_size,
                guidance_dim=q.hidden_size, out_dim=cad, hidden_size=c.hidden_size, num_heads=c.num_heads,
                num_queries=c.num_queries, ff_mult=c.ff_mult, num_blocks=c.num_blocks,
                use_visual_enhancer=comp.visual_enhancer, use_text_enhancer=comp.text_enhancer,
            )
        conditioning = make(
            "conditioning", UNetConditioning,
            in_channels=in_ch, cross_attention_dim=cad, guidance_dim=q.hidden_size, grid_size=grid,
            use_visual=comp.visual_enhancer, use_text=comp.text_enhancer, use_grounding=comp.grounding_map,
        )
        rc = config.recogniser
        recogniser = (make("recogniser", SceneRecogniser, object_names=list(rc.object_names),
                           channels=list(rc.channels)) if rc.object_names else None)
        return cls(
            config=config, mllm=mllm, text_encoder=text_encoder, text_tokenizer=text_tokenizer, frce=frce,
            qformer=qformer, cme=cme, conditioning=conditioning, unet=unet, vae=vae, recogniser=recogniser,
        )

    # ------------------------------------------------------------------------------------------------------
    # save / load
    # ------------------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> None:
        folder = str(folder)
        os.makedirs(folder, exist_ok=True)
        cfg = self.config
        cfg.save(folder)
        self.mllm.tokenizer.save_pretrained(os.path.join(folder, "tokenizer"))
        self.text_tokenizer.save_pretrained(os.path.join(folder, "text_tokenizer"))
        if mllm_base_in_checkpoint(cfg.mllm):
            # With LoRA the frozen base is saved from a copy with the adapters removed (peft's unload()).
            base = copy.deepcopy(self.mllm.vlm).unload() if self.mllm.uses_lora else self.mllm.base
            base.save_pretrained(os.path.join(folder, "mllm"))
        if self.mllm.uses_lora:
            self.mllm.vlm.save_pretrained(os.path.join(folder, "mllm_adapter"))
        if cfg.mllm.outcome_adapter is not None:
            self.mllm.save_outcome_adapter(os.path.join(folder, "mllm_outcome_adapter"))
        if not cfg.text_encoder.pretrained_model_name_or_path:
            self.text_encoder.save_pretrained(os.path.join(folder, "text_encoder"))
        if not cfg.diffusion.vae_pretrained:
            self.vae.save_pretrained(os.path.join(folder, "vae"))
        self.unet.save_pretrained(os.path.join(folder, "unet"))
        for name in ("frce", "qformer", "cme", "conditioning", "recogniser"):
            module = getattr(self, name)
            if module is not None:
                module.save_pretrained(os.path.join(folder, name))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, torch_dtype: torch.dtype | None = None):
        """Load a checkpoint folder written by ``save_pretrained`` (strict: mismatched weights raise)."""
        folder = str(folder)
        config_path = os.path.join(folder, CONFIG_NAME)
        if not os.path.isfile(config_path):
            raise ValueError(f"{folder} is not a ReasonBrain checkpoint (no {CONFIG_NAME})")
        config = ReasonBrainConfig.from_json_file(config_path)
        mllm = load_mllm(config, folder)
        text_tokenizer, text_encoder = load_text_encoder(config, folder)
        unet, vae = load_diffusion(config, folder)
        model = cls._assemble(config, mllm, text_encoder, text_tokenizer, unet, vae, folder=folder)
        if torch_dtype is not None:
            model.to(dtype=torch_dtype)
        return model.eval()

    # ------------------------------------------------------------------------------------------------------
    # properties
    # ------------------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def grid_size(self) -> int:
        """Side of the vision feature grid; region masks are pooled onto it."""
        return self.mllm.grid_size

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def component_parameters(self) -> dict[str, tuple[int, int]]:
        """name -> (total, trainable) parameter counts."""
        out = {}
        parts = {
            "vision_tower (E_I)": self.mllm.base.model.vision_tower,
            "image_adapter (IA)": self.mllm.base.model.multi_modal_projector,
            "language_model": self.mllm.base.model.language_model,
            "lm_head": self.mllm.base.lm_head,
            "outcome_adapter": self.mllm.outcome_lm,  # its LoRA only: the rest is the language model's own
            "text_encoder (E_T)": self.text_encoder,
            "frce": self.frce,
            "qformer": self.qformer,
            "cme": self.cme,
            "conditioning": self.conditioning,
            "unet": self.unet,
            "vae": self.vae,
        }
        seen: set[int] = set()
        for name, module in parts.items():
            if module is None:
                continue
            total = trainable = 0
            for p in module.parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                total += p.numel()
                trainable += p.numel() if p.requires_grad else 0
            out[name] = (total, trainable)
        return out

    # ------------------------------------------------------------------------------------------------------
    # forward pieces
    # ------------------------------------------------------------------------------------------------------
    def encode_text(self, texts: list[str], max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """E_T: (B, L, D_t) hidden states and (B, L) padding mask (True = padding)."""
        if self.reads_normalized_text:
            texts = [normalize_instruction(t) for t in texts]
        tok = self.text_tokenizer(
            texts, padding="max_length", truncation=True,
            max_length=max_length or self.config.text_encoder.max_length, return_tensors="pt",
        )
        device = self.text_encoder.device  # not self.device: components may sit on different devices (offload)
        ids = tok.input_ids.to(device)
        mask = tok.attention_mask.to(device)
        mask[:, 0] = 1  # an empty text still gets one (pad) token to attend to
        if self.reads_normalized_text:
            return self.text_encoder(input_ids=ids, attention_mask=mask), mask == 0
        hidden = self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return hidden, mask == 0

    def with_outcome_adapter(self, settings: dict) -> None:
        """Give the MLLM a new generation-only outcome adapter (``ReasonBrainMLLM.add_outcome_adapter``; replacing
        any it had) and generate reasoning with it; the config records both."""
        self.config = self.config.replace(mllm={"outcome_adapter": None}).replace(
            mllm={"outcome_adapter": dict(settings), "generate_reasoning": True})
        self.mllm.add_outcome_adapter(self.config.mllm.outcome_adapter)

    def instruction_embeds(self, text_features: torch.Tensor, text_padding: torch.Tensor):
        """The InstructionReader's states (E_T(H), ``encode_text``) in the MLLM's embedding space, where they stand
        for the instruction: ((B, L, d_llm), (B, L) keep). None when E_T is not a reader (H is then tokens)."""
        if not self.reads_normalized_text:
            return None
        return self.text_encoder.to_llm(text_features), ~text_padding

    def text_prompt(self, ia_tokens: torch.Tensor, instructions: list[str], template: str) -> dict[str, torch.Tensor]:
        """The MLLM prompt for text generation, [IA] template(H) in the model's chat format (``mllm.prompt``), with H
        as the reader's states (the ones the edit's sequence holds) when E_T is an InstructionReader, else as the
        MLLM's tokens."""
        embeds = None
        if self.reads_normalized_text:
            embeds = self.instruction_embeds(*self.encode_text(instructions))
        return self.mllm.build_sequence(instructions, ia_tokens, text_template=template, append_img_tokens=False,
                                        instruction_embeds=embeds)

    @property
    def reads_normalized_text(self) -> bool:
        """E_T is an InstructionReader: it reads ``normalize_instruction``'s text, and its states also stand for
        the instruction in the MLLM sequence."""
        return isinstance(self.text_encoder, InstructionReader)

    def encode_objects(self, object_tokens: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The object token O = E_T(serialised object): (B, K, D_t) and its (B, K) padding mask."""
        return self.encode_text(object_tokens, max_length=self.config.frce.max_object_tokens)

    def encode_condition(
        self,
        pixel_values: torch.Tensor,
        instructions: list[str],
        object_tokens: list[str],
        region_masks: torch.Tensor | None,
        region_valid: torch.Tensor | None,
        latent_hw: tuple[int, int],
        compute_mllm_loss: bool = False,
        *,
        image_encoding: tuple[torch.Tensor, torch.Tensor] | None = None,
        profile_stage: Callable[[str], AbstractContextManager] | None = None,
    ) -> ConditionOutput:
        """FRCE -> MLLM -> QFormer -> CME -> UNet conditioning, for a batch of (image, instruction).

        ``image_encoding``: ``mllm.encode_image(pixel_values)`` when the caller already has it (computed once per
        edit). ``profile_stage``: a context-manager factory timing the sub-stages by name (benchmarks).
        """
        stage = profile_stage or (lambda name: nullcontext())
        b = pixel_values.shape[0]
        if not (len(instructions) == len(object_tokens) == b):
            raise ValueError(f"batch size mismatch: {b} images, {len(instructions)} instructions, "
                             f"{len(object_tokens)} object tokens")
        # 1. encoders: E_I (multi-scale) and IA; E_T for the instruction and the object token O (edit_sequence)
        if image_encoding is None:
            with stage("vision_encoder"):
                image_encoding = self.mllm.encode_image(pixel_values)
        ia_tokens, image_features = image_encoding  # (B, N, d_llm), (B, N, Dv*k)
        if ia_tokens.shape[0] != b or image_features.shape[0] != b:
            raise ValueError(f"image_encoding holds {ia_tokens.shape[0]} images for a batch of {b}")
        edit = self.edit_sequence(ia_tokens, image_features, instructions, object_tokens, region_masks, region_valid,
                                  profile_stage=stage)
        text_features, text_padding, frce_out = edit.text_features, edit.text_padding, edit.frce  # 2. FRCE
        # 3. MLLM over [IA(E_I(I)), R_V, R_T, E_T(H), [IMG]] -> V
        with stage("mllm"):
            mllm_out = self.mllm(edit.sequence, compute_loss=compute_mllm_loss)
        # 4. QFormer: V^ = QFormer(V)
        with stage("qformer"):
            guidance = self.qformer(mllm_out.img_hidden)  # (B, Q, d_q)
        # 5. CME: visual and textual enhancers
        with stage("cme"):
            visual = textual = None
            if self.cme is not None:
                visual, textual = self.cme(
                    guidance,
                    image_features=image_features,
                    r_v=frce_out.r_v, r_v_padding=frce_out.r_v_padding,
                    text_features=text_features, text_padding=text_padding,
                    r_t=frce_out.r_t, r_t_padding=frce_out.r_t_padding,
                )
            # 6. UNet-side terms: additive input maps and cross-attention context
            offset, context = self.conditioning(
                latent_hw, guidance,
                visual_enhanced=visual.enhanced if visual is not None else None,
                visual_context=visual.context if visual is not None else None,
                text_enhanced=textual.enhanced if textual is not None else None,
                text_context=textual.context if textual is not None else None,
                text_padding=text_padding,
                id_map=frce_out.id_map if frce_out is not None else None,
            )
        return ConditionOutput(
            input_offset=offset, context=context, img_hidden=mllm_out.img_hidden, guidance=guidance,
            frce=frce_out, mllm_loss=mllm_out.mllm_loss, mllm_sequence=edit.sequence,
        )

    def edit_sequence(
        self,
        ia_tokens: torch.Tensor,
        image_features: torch.Tensor,
        instructions: list[str],
        object_tokens: list[str],
        region_masks: torch.Tensor | None,
        region_valid: torch.Tensor | None,
        *,
        profile_stage: Callable[[str], AbstractContextManager] | None = None,
    ) -> EditSequence:
        """The MLLM's input for an edit, [IA(E_I(I)), R_V, R_T, E_T(H), [IMG]]: E_T of the instruction and the object
        token O, FRCE (R_V, R_T = ID Controller(O, R_V)), the sequence (``encode_condition``'s steps 1-3)."""
        stage = profile_stage or (lambda name: nullcontext())
        comp = self.config.components
        with stage("text_encoder"):
            text_features, text_padding = self.encode_text(instructions)  # (B, L, D_t)
            object_embeds = object_padding = None
            if self.frce is not None and comp.id_controller:
                object_embeds, object_padding = self.encode_objects(object_tokens)  # (B, K, D_t)
        # 2. FRCE: R_V = [R_local; R_global], R_T = ID Controller(O, R_V)
        frce_out = None
        if self.frce is not None:
            with stage("frce"):
                if comp.region_branch and region_masks is not None:
                    region_masks = region_masks.to(device=image_features.device, dtype=image_features.dtype)
                    region_valid = region_valid.to(image_features.device)
                frce_out = self.frce(image_features, region_masks, region_valid, object_embeds, object_padding)
        with stage("mllm"):
            instruction_embeds = self.instruction_embeds(text_features, text_padding)  # (B, L, d_llm) or None
            sequence = self.mllm.build_sequence(
                instructions, ia_tokens, instruction_embeds=instruction_embeds,
                r_v=frce_out.r_v_llm if frce_out is not None else None,
                r_v_padding=frce_out.r_v_padding if frce_out is not None else None,
                r_t=frce_out.r_t_llm if frce_out is not None else None,
                r_t_padding=frce_out.r_t_padding if frce_out is not None else None,
            )
        return EditSequence(sequence=sequence, text_features=text_features, text_padding=text_padding, frce=frce_out)

    def predict_noise(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        image_latents: torch.Tensor,
        input_offset: torch.Tensor,
        context: torch.Tensor,
    ) -> torch.Tensor:
        """eps(t, [z_t, latent(I)] + R-_visual + R-_text, context=[e-_visual, e-_text]) (eq. A2)."""
        unet_input = torch.cat([noisy_latents, image_latents], dim=1) + input_offset  # (B, 2C, h, w)
        return self.unet(unet_input, timesteps, encoder_hidden_states=context).sample

    def encode_image_latents(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """latent(I) for the UNet's image channels (InstructPix2Pix: the distribution's mode, unscaled)."""
        return self.vae.encode(pixel_values.to(self.vae.dtype)).latent_dist.mode()

    def encode_target_latents(self, pixel_values: torch.Tensor, generator=None) -> torch.Tensor:
        latents = self.vae.encode(pixel_values.to(self.vae.dtype)).latent_dist.sample(generator)
        return latents * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / self.vae.config.scaling_factor).sample.clamp(-1, 1)


__all__ = ["ReasonBrainModel", "ConditionOutput"]
