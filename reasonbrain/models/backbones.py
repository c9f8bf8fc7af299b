"""The backbones a ReasonBrainModel wraps (tokenizers, the MLLM with its LoRA and prompt, E_T, UNet, VAE): built from
config, or loaded strictly from a checkpoint folder (``ReasonBrainModel.save_pretrained``'s layout).

Which component comes from where is decided by config fields, never by path names.
"""

from __future__ import annotations

import os
from importlib import resources

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from torch import nn
from transformers import (
    AutoTokenizer,
    CLIPTextConfig,
    CLIPTextModel,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from reasonbrain.configuration import BUNDLED_TOKENIZER, MLLMConfig, ReasonBrainConfig
from reasonbrain.models.instruction_reader import InstructionReader
from reasonbrain.models.mllm import ReasonBrainMLLM, add_img_tokens
from reasonbrain.models.prompt import PromptLayout
from reasonbrain.pretrained_words import load_table, tokenizer_file


def bundled_tokenizer_path() -> str:
    return str(resources.files("reasonbrain.presets").joinpath("tokenizer"))


def tokenizer_source(name: str) -> str:
    return bundled_tokenizer_path() if name == BUNDLED_TOKENIZER else name


def reader_tokenizer(table: str) -> PreTrainedTokenizerFast:
    """The tokenizer that comes with a pretrained table (its ids index the table)."""
    # Llama-2's special tokens; padding reuses <unk> (it is masked out)
    return PreTrainedTokenizerFast(tokenizer_file=tokenizer_file(table), unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<unk>")


def build_reader(config: ReasonBrainConfig) -> InstructionReader:
    """A new InstructionReader (random trainable weights) with its pretrained table loaded."""
    tc = config.text_encoder
    table = load_table(tc.pretrained_table)
    return InstructionReader(
        table_name=tc.pretrained_table, vocab_size=table.shape[0], table_dim=table.shape[1],
        llm_hidden_size=int(config.mllm.config["text_config"]["hidden_size"]), **tc.config,
    ).load_pretrained_table()


def load_strict(cls, path: str, **kwargs):
    """``cls.from_pretrained`` that raises on missing, unexpected or mismatched weights."""
    model, info = cls.from_pretrained(path, output_loading_info=True, **kwargs)
    problems = {k: list(info.get(k) or []) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        raise ValueError(f"{cls.__name__} weights in {path} do not match its config: {problems}")
    return model


# --- built from config --------------------------------------------------------------------------------------------
def build_text_encoder(config: ReasonBrainConfig, load_backbones: bool):
    """(text tokenizer, E_T): an InstructionReader over a pretrained table, or a CLIP text encoder."""
    tc = config.text_encoder
    if tc.pretrained_table:
        return reader_tokenizer(tc.pretrained_table), build_reader(config)
    kw = {"subfolder": tc.tokenizer_subfolder} if tc.tokenizer_subfolder else {}
    text_tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(tc.tokenizer), **kw)
    if load_backbones and tc.pretrained_model_name_or_path:
        kw = {"subfolder": tc.subfolder} if tc.subfolder else {}
        text_encoder = CLIPTextModel.from_pretrained(tc.pretrained_model_name_or_path, **kw)
    else:
        text_encoder = CLIPTextModel(CLIPTextConfig(**tc.config))
    return text_tokenizer, text_encoder


def build_diffusion(config: ReasonBrainConfig, load_backbones: bool) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    dc = config.diffusion
    if load_backbones and dc.unet_pretrained and dc.unet_init != "random":
        unet = UNet2DConditionModel.from_pretrained(dc.unet_pretrained, subfolder=dc.unet_subfolder)
        if dc.unet_init == "expand_conv_in":
            unet = _expand_conv_in(unet, 2 * config.latent_channels)
    else:
        unet = UNet2DConditionModel(**dc.unet)
    if load_backbones and dc.vae_pretrained:
        vae = AutoencoderKL.from_pretrained(dc.vae_pretrained, subfolder=dc.vae_subfolder)
    else:
        vae = AutoencoderKL(**dc.vae)
    return unet, vae


def wrap_mllm(config: ReasonBrainConfig, vlm: LlavaForConditionalGeneration, tokenizer, img_ids: list[int], *,
              adapter_path: str | None, outcome_adapter_path: str | None = None) -> ReasonBrainMLLM:
    """The ReasonBrainMLLM around a LLaVA model: its LoRA (new, or loaded from ``adapter_path``), its prompt and, when
    the config names one, its outcome adapter (new, or loaded from ``outcome_adapter_path``)."""
    mc = config.mllm
    ReasonBrainMLLM.prepare_base(vlm, len(tokenizer), mc.freeze_vision_tower)
    if mc.lora is not None:
        tied = vlm.get_input_embeddings().weight is vlm.get_output_embeddings().weight
        if adapter_path is None:
            vlm = get_peft_model(vlm, ReasonBrainMLLM.lora_config(mc.lora, img_ids, tied))
        else:
            vlm = get_peft_model(vlm, LoraConfig.from_pretrained(adapter_path))
            state = load_file(os.path.join(adapter_path, "adapter_model.safetensors"))
            result = set_peft_model_state_dict(vlm, state)
            adapter_missing = _untied_missing(vlm, [k for k in result.missing_keys if _is_adapter_key(k)])
            if result.unexpected_keys or adapter_missing:
                raise ValueError(
                    f"LoRA adapter in {adapter_path} does not match the model: unexpected "
                    f"{list(result.unexpected_keys)[:5]}, missing {adapter_missing[:5]}"
                )
    mllm = ReasonBrainMLLM(
        vlm=vlm,
        tokenizer=tokenizer,
        prompt=PromptLayout.from_tokenizer(tokenizer, chat_template=mc.chat_template, user_message=mc.user_message),
        img_token_ids=img_ids,
        multiscale_layers=mc.multiscale_layers,
        vision_feature_layer=mc.vision_feature_layer,
        max_instruction_tokens=mc.max_instruction_tokens,
    )
    if mc.outcome_adapter is not None:
        if outcome_adapter_path is None:
            mllm.add_outcome_adapter(mc.outcome_adapter)
        else:
            mllm.add_outcome_adapter(path=outcome_adapter_path)
    return mllm


# --- loaded from a checkpoint folder ------------------------------------------------------------------------------
def mllm_base_in_checkpoint(mc: MLLMConfig) -> bool:
    """The checkpoint holds the LLaVA model itself (mllm/) unless it has a Hub id and only a LoRA is trained."""
    return not mc.pretrained_model_name_or_path or mc.lora is None


def load_mllm(config: ReasonBrainConfig, folder: str) -> ReasonBrainMLLM:
    mc = config.mllm
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
    img_ids = add_img_tokens(tokenizer, mc.num_img_tokens, mc.img_token_ids)
    base_src = os.path.join(folder, "mllm") if mllm_base_in_checkpoint(mc) else mc.pretrained_model_name_or_path
    vlm = load_strict(LlavaForConditionalGeneration, base_src)
    adapter = os.path.join(folder, "mllm_adapter") if mc.lora is not None else None
    outcome = None
    if mc.outcome_adapter is not None:
        outcome = os.path.join(folder, "mllm_outcome_adapter")
        if not os.path.isdir(outcome):
            raise ValueError(f"{folder}'s config names an outcome adapter (mllm.outcome_adapter) but {outcome} "
                             "is missing; train one (python -m reasonbrain.training.train_outcome) or set "
                             "mllm.outcome_adapter to null")
    return wrap_mllm(config, vlm, tokenizer, img_ids, adapter_path=adapter, outcome_adapter_path=outcome)


def load_text_encoder(config: ReasonBrainConfig, folder: str):
    """(text tokenizer, E_T) of a checkpoint folder."""
    text_tokenizer = AutoTokenizer.from_pretrained(os.path.join(folder, "text_tokenizer"))
    tc = config.text_encoder
    if tc.pretrained_table:
        text_encoder = load_strict(InstructionReader, os.path.join(folder, "text_encoder")).load_pretrained_table()
    elif tc.pretrained_model_name_or_path:
        kw = {"subfolder": tc.subfolder} if tc.subfolder else {}
        text_encoder = load_strict(CLIPTextModel, tc.pretrained_model_name_or_path, **kw)
    else:
        text_encoder = load_strict(CLIPTextModel, os.path.join(folder, "text_encoder"))
    return text_tokenizer, text_encoder


def load_diffusion(config: ReasonBrainConfig, folder: str) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    dc = config.diffusion
    unet = load_strict(UNet2DConditionModel, os.path.join(folder, "unet"))
    if dc.vae_pretrained:
        vae = load_strict(AutoencoderKL, dc.vae_pretrained, subfolder=dc.vae_subfolder)
    else:
        vae = load_strict(AutoencoderKL, os.path.join(folder, "vae"))
    return unet, vae


def _is_adapter_key(key: str) -> bool:
    return any(s in key for s in ("lora_", "modules_to_save", "trainable_tokens"))


def _untied_missing(model: nn.Module, missing: list[str]) -> list[str]:
    """Drop missing keys whose tensor is shared with (tied to) a tensor that was loaded."""
    if not missing:
        return missing
    by_tensor: dict[int, set[str]] = {}
    for name, tensor in list(model.named_parameters(remove_duplicate=False)) + list(
        model.named_buffers(remove_duplicate=False)
    ):
        by_tensor.setdefault(id(tensor), set()).add(name)
    missing_set = set(missing)
    return [k for k in missing if not any(k in names and names - missing_set for names in by_tensor.values())]


def _expand_conv_in(unet: UNet2DConditionModel, in_channels: int) -> UNet2DConditionModel:
    """InstructPix2Pix initialisation: extra input channels with zero weights (the image latent starts inert)."""
    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet
