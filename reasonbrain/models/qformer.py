"""QFormer aligning the MLLM's [IMG] hidden states with the diffusion side: V^ = QFormer(V)."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel


class ReasonQFormer(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        *,
        encoder_hidden_size: int,
        num_layers: int = 6,
        num_queries: int = 77,
        hidden_size: int = 768,
        num_heads: int = 12,
        intermediate_size: int = 3072,
    ) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.randn(1, num_queries, hidden_size) * 0.02)
        self.qformer = Blip2QFormerModel(
            Blip2QFormerConfig(
                hidden_size=hidden_size,
                num_hidden_layers=num_layers,
                num_attention_heads=num_heads,
                intermediate_size=intermediate_size,
                encoder_hidden_size=encoder_hidden_size,
                cross_attention_frequency=1,
            )
        )

    def forward(self, img_hidden: torch.Tensor) -> torch.Tensor:
        # img_hidden (B, r, d_llm) -> V^ (B, num_queries, hidden)
        queries = self.query_tokens.expand(img_hidden.shape[0], -1, -1)
        return self.qformer(query_embeds=queries, encoder_hidden_states=img_hidden).last_hidden_state
