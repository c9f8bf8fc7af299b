"""TRCB's ID Controller (paper eq. 2, fig. 5a): R_T = FF(CrossAttn(query=O, key/value=R_V))."""

from __future__ import annotations

import torch
from torch import nn

from reasonbrain.models.layers import CrossAttentionBlock


class IDController(nn.Module):
    def __init__(self, *, dim: int, num_heads: int, ff_mult: int = 4) -> None:
        super().__init__()
        self.block = CrossAttentionBlock(dim=dim, num_heads=num_heads, ff_mult=ff_mult)

    def forward(
        self, object_tokens: torch.Tensor, r_v: torch.Tensor, r_v_padding: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # object_tokens (B, K, D) query; r_v (B, L, D) key/value; returns R_T (B, K, D), weights (B, K, L)
        return self.block(object_tokens, r_v, key_padding_mask=r_v_padding)
