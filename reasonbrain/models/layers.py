"""Attention building blocks shared by FRCE, the ID Controller and CME."""

from __future__ import annotations

import torch
from torch import nn


class FeedForward(nn.Module):
    def __init__(self, *, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CrossAttentionBlock(nn.Module):
    """Pre-norm cross-attention + feed-forward, both residual. Returns the attention weights too.

    query (B, Lq, D), key_value (B, Lk, D), key_padding_mask (B, Lk) True where the key is PADDING.
    """

    def __init__(self, *, dim: int, num_heads: int, ff_mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = FeedForward(dim=dim, mult=ff_mult, dropout=dropout)

    def forward(
        self,
        query: torch.Tensor,
        key_value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        kv = self.norm_kv(key_value)
        attended, weights = self.attn(
            self.norm_q(query), kv, kv, key_padding_mask=key_padding_mask, need_weights=True,
            average_attn_weights=True,
        )  # (B, Lq, D), (B, Lq, Lk)
        x = query + attended
        x = x + self.ff(self.norm_ff(x))
        return x, weights


class TransformerEncoder(nn.Module):
    """A stack of pre-norm self-attention layers with a padding mask (True = padding)."""

    def __init__(self, *, dim: int, num_heads: int, num_layers: int, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            CrossAttentionBlock(dim=dim, num_heads=num_heads, ff_mult=ff_mult, dropout=dropout)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x, _ = layer(x, x, key_padding_mask=padding_mask)  # self-attention: query = key = value
        return self.norm(x)
