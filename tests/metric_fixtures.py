"""Tiny random CLIP and DINO (ViT) models built from config, for the metric tests (offline, CPU, milliseconds)."""

from __future__ import annotations

import os

import torch


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes (so every text is encodable without merges)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def tiny_clip_tokenizer():
    from transformers import CLIPTokenizer

    alphabet = _byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[])


def tiny_clip(seed: int = 0, image_size: int = 32):
    """(CLIPModel, tokenizer, image processor) with random weights."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tok = tiny_clip_tokenizer()
    bos, eos = tok.convert_tokens_to_ids("<|startoftext|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=image_size, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    processor = CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    return model, tok, processor


def tiny_dino(seed: int = 0, image_size: int = 32):
    """(ViTModel without pooler, image processor) with random weights."""
    from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       image_size=image_size, patch_size=8)
    model = ViTModel(config, add_pooling_layer=False).eval()
    return model, ViTImageProcessorPil(size={"height": image_size, "width": image_size})


def tiny_clip_embedder(seed: int = 0):
    from reasonbrain.evaluation.embedders import ClipEmbedder

    model, tok, proc = tiny_clip(seed)
    return ClipEmbedder(model, tok, proc)


def tiny_dino_embedder(seed: int = 0):
    from reasonbrain.evaluation.embedders import DinoEmbedder

    model, proc = tiny_dino(seed)
    return DinoEmbedder(model, proc)


def save_tiny_clip(folder: str | os.PathLike, seed: int = 0) -> str:
    from transformers import CLIPProcessor

    model, tok, proc = tiny_clip(seed)
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=proc, tokenizer=tok).save_pretrained(folder)
    return str(folder)


def save_tiny_dino(folder: str | os.PathLike, seed: int = 0) -> str:
    model, proc = tiny_dino(seed)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return str(folder)


CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def save_tiny_llava_judge(folder: str | os.PathLike, seed: int = 0) -> str:
    """A tiny random LLaVA (CLIP vision + Llama) with a processor and chat template, as a judge would load it."""
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessorPil,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reasonbrain", "presets",
                                 "tokenizer")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok, chat_template=CHAT_TEMPLATE, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=4, image_size=32, patch_size=8),
        text_config=dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=256,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2),
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)
