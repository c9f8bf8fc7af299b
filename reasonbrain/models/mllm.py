"""The MLLM of eq. 3: V = MLLM([IA(E_I(I)), R_V, R_T, E_T(H), [IMG_1..IMG_r]]) over a transformers LLaVA model.

E_I is the LLaVA vision tower, IA its multimodal projector (trainable), the language model is adapted with LoRA
(peft) and r new [IMG] tokens are added to the tokenizer and embeddings (their ids live in the config). The sequence
sits in the model's chat format (``reasonbrain.models.prompt``).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    LlavaForConditionalGeneration,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from reasonbrain.models.prompt import IMAGE_SLOT, PromptLayout

logger = logging.getLogger(__name__)

IMG_TOKEN_FORMAT = "[IMG{}]"
# The outcome adapter's default targets: every linear layer of the language model's blocks, and the generation
# model's input embedding and output head (the LLaVA model's own are left as they are). A table trained only to
# predict [IMG] tokens has nearly collinear word rows (synth: mean |cos| 0.95), so words need both.
OUTCOME_TARGET_MODULES = (r"model\.embed_tokens|lm_head"
                          r"|model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))")


def img_tokens(num: int) -> list[str]:
    return [IMG_TOKEN_FORMAT.format(i) for i in range(num)]


def add_img_tokens(tokenizer: PreTrainedTokenizerBase, num: int, expected_ids: list[int] | None) -> list[int]:
    """Add the r [IMG] tokens (no-op when present) and check their ids against the config's."""
    tokenizer.add_tokens(img_tokens(num), special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(img_tokens(num))
    if expected_ids is not None and list(expected_ids) != list(ids):
        raise ValueError(
            f"the tokenizer gives the [IMG] tokens ids {ids[:3]}..., the config says {list(expected_ids)[:3]}...; "
            "use the tokenizer saved with this checkpoint or set mllm.img_token_ids to null to re-assign them"
        )
    return list(ids)


@dataclass
class MLLMOutput:
    img_hidden: torch.Tensor  # (B, r, d_llm) V: hidden states at the [IMG] positions
    mllm_loss: torch.Tensor | None  # eq. A1, NLL of each [IMG_i] given the prefix (mean over tokens)


class ReasonBrainMLLM(nn.Module):
    def __init__(
        self,
        *,
        vlm: LlavaForConditionalGeneration | PeftModel,
        tokenizer: PreTrainedTokenizerBase,
        prompt: PromptLayout,
        img_token_ids: list[int],
        multiscale_layers: list[int],
        vision_feature_layer: int = -2,
        max_instruction_tokens: int = 96,
    ) -> None:
        super().__init__()
        self.vlm = vlm
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.img_token_ids = list(img_token_ids)
        self.multiscale_layers = list(multiscale_layers)
        self.vision_feature_layer = vision_feature_layer
        self.max_instruction_tokens = max_instruction_tokens
        placeholder = tokenizer.convert_tokens_to_ids(IMAGE_SLOT)
        self.placeholder_id = placeholder if placeholder != tokenizer.unk_token_id else tokenizer.pad_token_id
        vocab = self.base.get_input_embeddings().weight.shape[0]
        if max(self.img_token_ids) >= vocab:
            raise ValueError(f"[IMG] token id {max(self.img_token_ids)} is outside the embedding table ({vocab})")
        vc = self.base.config.vision_config
        self.register_buffer("clip_mean", torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("clip_std", torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.vision_image_size = int(vc.image_size)
        self.grid_size = int(vc.image_size // vc.patch_size)
        self.vision_dim = int(vc.hidden_size) * len(self.multiscale_layers)
        self.hidden_size = int(self.base.config.text_config.hidden_size)
        self.outcome_lm: PeftModel | None = None  # see add_outcome_adapter()

    # --- construction ---------------------------------------------------------------------------------------
    @staticmethod
    def lora_config(lora: dict, img_token_ids: list[int], tied: bool) -> LoraConfig:
        modules_to_save = ["multi_modal_projector"] + ([] if tied else ["lm_head"])
        return LoraConfig(
            r=int(lora["r"]),
            lora_alpha=int(lora["alpha"]),
            lora_dropout=float(lora.get("dropout", 0.0)),
            target_modules=lora.get("target_modules", r".*language_model.*\.(q_proj|k_proj|v_proj|qkv_proj|o_proj)"),
            trainable_token_indices={"embed_tokens": list(img_token_ids)},
            modules_to_save=modules_to_save,
        )

    @staticmethod
    def prepare_base(vlm: LlavaForConditionalGeneration, num_tokens: int, freeze_vision_tower: bool) -> None:
        if vlm.get_input_embeddings().weight.shape[0] < num_tokens:
            vlm.resize_token_embeddings(num_tokens)
        if freeze_vision_tower:
            vlm.model.vision_tower.requires_grad_(False)

    # --- the generation-only outcome adapter -------------------------------------------------------------------
    def add_outcome_adapter(self, settings: dict | None = None, *, path: str | None = None) -> None:
        """Give the MLLM a generation-only LoRA (a new one from ``settings``, or the one saved in ``path``).

        The adapter lives on its own causal LM whose weights *are* the language model's (the same tensors, no copy):
        text generation with ``outcome_adapter=True`` runs through it, while the edit's forward (``forward``, the
        [IMG] tokens) never touches its modules, so edits are bit-identical with and without it. Its LoRA weights
        are frozen here; ``reasonbrain.training.train_outcome`` trains them.
        """
        if self.uses_lora:
            raise ValueError("an outcome adapter needs a fully fine-tuned MLLM (mllm.lora null); this one is "
                             "LoRA-wrapped, so its language model's weights are not plain tensors to share")
        if (settings is None) == (path is None):
            raise ValueError("give the outcome adapter's settings (a new adapter) or the folder it was saved in")
        shell = _language_model_sharing_weights(self.base)
        flags = {id(p): p.requires_grad for p in shell.parameters()}  # peft freezes the shared weights: restore
        if path is not None:
            lm = get_peft_model(shell, LoraConfig.from_pretrained(path))
            result = set_peft_model_state_dict(lm, load_file(os.path.join(path, "adapter_model.safetensors")))
            missing = [k for k in result.missing_keys if "lora_" in k]
            if result.unexpected_keys or missing:
                raise ValueError(f"outcome adapter in {path} does not match the language model: unexpected "
                                 f"{list(result.unexpected_keys)[:5]}, missing {missing[:5]}")
        else:
            lm = get_peft_model(shell, LoraConfig(
                r=int(settings["r"]), lora_alpha=int(settings["alpha"]),
                lora_dropout=float(settings.get("dropout", 0.0)),
                target_modules=settings.get("target_modules", OUTCOME_TARGET_MODULES),
            ))
        for p in lm.parameters():
            p.requires_grad_(flags.get(id(p), False))
        self.outcome_lm = lm.to(self.base.device)

    def outcome_parameters(self) -> list[nn.Parameter]:
        """The outcome adapter's own (LoRA) weights."""
        if self.outcome_lm is None:
            return []
        return [p for n, p in self.outcome_lm.named_parameters() if "lora_" in n]

    def save_outcome_adapter(self, folder: str) -> None:
        """The adapter in PEFT's own format (adapter_config.json + adapter_model.safetensors): its LoRA weights
        only (the embedding and head it adapts are the language model's, saved with it)."""
        if self.outcome_lm is None:
            raise ValueError("this MLLM has no outcome adapter to save")
        self.outcome_lm.save_pretrained(folder, save_embedding_layers=False)

    @property
    def base(self) -> LlavaForConditionalGeneration:
        return self.vlm.get_base_model() if isinstance(self.vlm, PeftModel) else self.vlm

    @property
    def uses_lora(self) -> bool:
        return isinstance(self.vlm, PeftModel)

    # --- E_I and IA -----------------------------------------------------------------------------------------
    def encode_image(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values (B, 3, H, W) in [-1, 1] -> IA tokens (B, N, d_llm), multi-scale E_I(I) (B, grid**2, Dv*k).

        IA(E_I(I)) is transformers' ``get_image_features`` at ``vision_feature_layer`` with the LLaVA config's
        ``vision_feature_select_strategy``; the multi-scale features are the patch grid of ``multiscale_layers``."""
        base = self.base
        x = (pixel_values.float() + 1) / 2  # resize in float32 (bicubic+antialias has no bf16 kernel)
        size = self.vision_image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        x = ((x - self.clip_mean) / self.clip_std).to(base.model.vision_tower.dtype)
        out = base.model.get_image_features(
            x, vision_feature_layer=self.vision_feature_layer,
            vision_feature_select_strategy=base.config.vision_feature_select_strategy, output_hidden_states=True,
        )
        ia_tokens = torch.stack(out.pooler_output)  # (B, N, d_llm); N counts CLS under the "full" strategy
        n_patches = self.grid_size**2  # a vision layer's states are (B, 1 + n_patches, Dv): CLS, then the grid
        multiscale = torch.cat([out.hidden_states[i][:, -n_patches:] for i in self.multiscale_layers], dim=-1)
        return ia_tokens, multiscale  # (B, N, d_llm), (B, n_patches, Dv*k)

    # --- the MLLM sequence ------------------------------------------------------------------------------------
    def build_sequence(
        self,
        instructions: list[str],
        ia_tokens: torch.Tensor,
        r_v: torch.Tensor | None = None,
        r_v_padding: torch.Tensor | None = None,
        r_t: torch.Tensor | None = None,
        r_t_padding: torch.Tensor | None = None,
        *,
        text_template: str = " Instruction: {}",
        append_img_tokens: bool = True,
        instruction_embeds: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """lead [IA][R_V][R_T] between template(H) tail [IMG_1..IMG_r], left-padded to a batch; lead, between and
        tail come from ``self.prompt`` (e.g. "[BOS]USER:", "", " ASSISTANT:").

        With ``append_img_tokens=False`` the sequence ends at the prompt's tail (a prompt for text generation).
        ``instruction_embeds``: (states (B, L, d_llm), keep (B, L)) that stand for H instead of its tokens (an
        InstructionReader's output); the template's own words stay tokens.
        """
        tok = self.tokenizer
        b = ia_tokens.shape[0]
        if len(instructions) != b:
            raise ValueError(f"got {len(instructions)} instructions for {b} images")
        parts = [(ia_tokens, None), (r_v, r_v_padding), (r_t, r_t_padding)]
        visual_embeds = torch.cat([t for t, _ in parts if t is not None], dim=1)  # (B, Nvis, d_llm)
        visual_keep = torch.cat(
            [torch.ones(t.shape[:2], dtype=torch.bool, device=t.device) if pad is None else ~pad
             for t, pad in parts if t is not None],
            dim=1,
        )  # (B, Nvis)
        n_vis = visual_embeds.shape[1]
        n_text = 0
        if instruction_embeds is not None:
            text_states, text_keep = instruction_embeds  # (B, L, d_llm), (B, L)
            n_text = text_states.shape[1]
            text_lead, _, text_tail = text_template.partition("{}")
        prefix, between = self.prompt.lead, self.prompt.between
        suffix = self.prompt.tail + (self.img_token_ids if append_img_tokens else [])
        rows, keeps, text_starts = [], [], []
        for i, text in enumerate(instructions):
            if instruction_embeds is not None:
                lead = tok.encode(text_lead, add_special_tokens=False)
                tail = tok.encode(text_tail, add_special_tokens=False) if text_tail else []
                body = lead + [self.placeholder_id] * n_text + tail
                body_keep = [True] * len(lead) + text_keep[i].tolist() + [True] * len(tail)
            else:
                body = tok.encode(text_template.format(text), add_special_tokens=False)[: self.max_instruction_tokens]
                body_keep = [True] * len(body)
            ids = prefix + [self.placeholder_id] * n_vis + between + body + suffix
            keep = ([True] * len(prefix) + visual_keep[i].tolist() + [True] * len(between) + body_keep
                    + [True] * len(suffix))
            rows.append(ids)
            keeps.append(keep)
            if instruction_embeds is not None:
                text_starts.append(len(prefix) + n_vis + len(between) + len(lead))
        length = max(len(r) for r in rows)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        input_ids = torch.full((b, length), pad, dtype=torch.long)
        attention = torch.zeros((b, length), dtype=torch.long)
        vis_mask = torch.zeros((b, length), dtype=torch.bool)
        text_mask = torch.zeros((b, length), dtype=torch.bool)
        for i, (ids, keep) in enumerate(zip(rows, keeps)):
            off = length - len(ids)  # left padding
            input_ids[i, off:] = torch.tensor(ids)
            attention[i, off:] = torch.tensor(keep, dtype=torch.long)
            vis_mask[i, off + len(prefix) : off + len(prefix) + n_vis] = True
            if n_text:
                text_mask[i, off + text_starts[i] : off + text_starts[i] + n_text] = True
        device = ia_tokens.device
        input_ids, attention, vis_mask = input_ids.to(device), attention.to(device), vis_mask.to(device)
        embeds = self.base.get_input_embeddings()(input_ids)  # (B, L, d_llm)
        embeds = embeds.masked_scatter(vis_mask.unsqueeze(-1), visual_embeds.to(embeds.dtype))
        if n_text:
            embeds = embeds.masked_scatter(text_mask.to(device).unsqueeze(-1), text_states.to(embeds.dtype))
        position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": input_ids, "inputs_embeds": embeds, "attention_mask": attention,
                "position_ids": position_ids}

    def img_token_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = torch.tensor(self.img_token_ids, device=input_ids.device)
        mask = torch.isin(input_ids, ids)  # (B, L)
        counts = mask.sum(dim=1)
        r = len(self.img_token_ids)
        if bool((counts != r).any()):
            raise ValueError(
                f"each sequence must hold exactly {r} [IMG] tokens, found {counts.tolist()}; "
                "do not put [IMG] tokens in instructions"
            )
        return mask

    def forward(self, sequence: dict[str, torch.Tensor], compute_loss: bool = False) -> MLLMOutput:
        input_ids = sequence["input_ids"]
        img_mask = self.img_token_mask(input_ids)
        base = self.base
        hidden = base.model.language_model(
            inputs_embeds=sequence["inputs_embeds"],
            attention_mask=sequence["attention_mask"],
            position_ids=sequence["position_ids"],
        ).last_hidden_state  # (B, L, d_llm)
        b = hidden.shape[0]
        img_hidden = hidden[img_mask].view(b, len(self.img_token_ids), -1)  # (B, r, d_llm)
        loss = None
        if compute_loss:
            # eq. A1: the state before [IMG_i] predicts [IMG_i] (teacher forcing over the r tokens).
            predicts_img = img_mask[:, 1:]  # (B, L-1)
            logits = base.lm_head(hidden[:, :-1][predicts_img])  # (B*r, vocab)
            loss = F.cross_entropy(logits.float(), input_ids[:, 1:][predicts_img])
        return MLLMOutput(img_hidden=img_hidden, mllm_loss=loss)

    @torch.no_grad()
    def generate_text(self, sequence: dict[str, torch.Tensor], max_new_tokens: int | Sequence[int], *,
                      cache_implementation: str | None = None, outcome_adapter: bool = False) -> list[str]:
        """Greedy text from the MLLM given a prefix sequence (used for reasoning text and object answers).

        ``outcome_adapter``: generate with the outcome adapter (``add_outcome_adapter``) on.

        ``cache_implementation="static"``: transformers' fixed-size KV cache; on CUDA, transformers then compiles
        the decoding step (CUDA graphs), so the first call pays the compilation and later tokens cost less.

        ``max_new_tokens`` may give one limit per row: the batch runs to the largest and each row is cut to its own
        (greedy rows are independent, so a row's text is the one a call on its own would give, up to rounding).
        """
        b = sequence["inputs_embeds"].shape[0]
        limits = [max_new_tokens] * b if isinstance(max_new_tokens, int) else list(max_new_tokens)
        if len(limits) != b or min(limits) < 1:
            raise ValueError(f"max_new_tokens needs one positive limit per row ({b} rows), got {max_new_tokens!r}")
        if outcome_adapter and self.outcome_lm is None:
            raise ValueError("outcome_adapter=True but this MLLM has no outcome adapter")
        model = self.outcome_lm.get_base_model() if outcome_adapter else self.base
        out = model.generate(
            inputs_embeds=sequence["inputs_embeds"],
            attention_mask=sequence["attention_mask"],
            max_new_tokens=max(limits),
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            **({"cache_implementation": cache_implementation} if cache_implementation else {}),
        )  # (B, new tokens)
        rows = [row[:n].tolist() for row, n in zip(out, limits)]
        return [t.strip() for t in self.tokenizer.batch_decode(rows, skip_special_tokens=True)]


def _language_model_sharing_weights(vlm: LlavaForConditionalGeneration) -> PreTrainedModel:
    """A causal LM (new modules) whose parameters and buffers are the LLaVA language model's and head's own
    tensors: adapters injected into it leave the LLaVA model's modules untouched."""
    lm = vlm.model.language_model
    source = {f"model.{n}": t for n, t in chain(lm.named_parameters(remove_duplicate=False),
                                                 lm.named_buffers(remove_duplicate=False))}
    source["lm_head.weight"] = vlm.lm_head.weight
    with torch.device("meta"):
        shell = AutoModelForCausalLM.from_config(copy.deepcopy(vlm.config.text_config))
    for name, tensor in list(chain(shell.named_parameters(remove_duplicate=False),
                                   shell.named_buffers(remove_duplicate=False))):
        if name not in source or source[name].shape != tensor.shape:
            raise ValueError(f"the language model has no weight {name} of shape {tuple(tensor.shape)} to share")
        owner, _, leaf = name.rpartition(".")
        setattr(shell.get_submodule(owner), leaf, source[name])
    left = [n for n, t in chain(shell.named_parameters(), shell.named_buffers()) if t.is_meta]
    if left:
        raise ValueError(f"weights of the generation model were not shared: {left[:5]}")
    shell.generation_config = copy.deepcopy(vlm.generation_config)
    return shell.eval()
