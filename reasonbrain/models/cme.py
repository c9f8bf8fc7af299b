"""Cross-Modal Enhancer (paper section 3.2, fig. 5b): visual- and textual-oriented enhancers.

Each enhancer is the paper's five hybrid cross-attention blocks followed by a linear projection and a norm:
  F1 = CA1(q=Q2, kv=V^)            F2 = CA2(q=X, kv=R)
  V- = Norm(F1 + CA3(q=F1, kv=F2))  F4 = CA4(q=F2, kv=V-)   R- = CA5(q=F4, kv=R)
with (X, R) = (E_I(I), R_V) for the visual enhancer and (E_T(H), R_T) for the textual one.
Outputs: R- (query-aligned, added to the UNet input after the conditioning adapter) and e- = V- (context).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from reasonbrain.models.layers import CrossAttentionBlock


@dataclass
class EnhancerOutput:
    enhanced: torch.Tensor  # (B, Lx, D_out) R-, aligned with the enhancer's query stream X
    context: torch.Tensor  # (B, Q2, D_out) e-, cross-attention context for the UNet


class ModalityEnhancer(nn.Module):
    def __init__(
        self, *, query_dim: int, cue_dim: int, guidance_dim: int, hidden_size: int, num_heads: int,
        num_queries: int, ff_mult: int, out_dim: int,
    ) -> None:
        super().__init__()
        self.learnable_queries = nn.Parameter(torch.randn(1, num_queries, hidden_size) * 0.02)  # Q2
        self.query_in = nn.Linear(query_dim, hidden_size)
        self.cue_in = nn.Linear(cue_dim, hidden_size)
        self.guidance_in = nn.Linear(guidance_dim, hidden_size)
        block = dict(dim=hidden_size, num_heads=num_heads, ff_mult=ff_mult)
        self.block1 = CrossAttentionBlock(**block)
        self.block2 = CrossAttentionBlock(**block)
        self.block3 = CrossAttentionBlock(**block)
        self.fuse_norm = nn.LayerNorm(hidden_size)
        self.block4 = CrossAttentionBlock(**block)
        self.block5 = CrossAttentionBlock(**block)
        self.proj_out = nn.Linear(hidden_size, out_dim)
        self.norm_out = nn.LayerNorm(out_dim)

    def forward(
        self,
        query: torch.Tensor,
        cues: torch.Tensor,
        guidance: torch.Tensor,
        query_padding: torch.Tensor | None = None,
        cue_padding: torch.Tensor | None = None,
    ) -> EnhancerOutput:
        # query X (B, Lx, Dx), cues R (B, Lr, Dr), guidance V^ (B, Lv, Dv)
        x, r, v = self.query_in(query), self.cue_in(cues), self.guidance_in(guidance)
        q2 = self.learnable_queries.expand(x.shape[0], -1, -1)
        f1, _ = self.block1(q2, v)  # (B, Q2, H)
        f2, _ = self.block2(x, r, key_padding_mask=cue_padding)  # (B, Lx, H)
        fused, _ = self.block3(f1, f2, key_padding_mask=query_padding)
        v_bar = self.fuse_norm(f1 + fused)  # (B, Q2, H)
        f4, _ = self.block4(f2, v_bar)  # (B, Lx, H)
        r_bar, _ = self.block5(f4, r, key_padding_mask=cue_padding)  # (B, Lx, H)
        return EnhancerOutput(
            enhanced=self.norm_out(self.proj_out(r_bar)),
            context=self.norm_out(self.proj_out(v_bar)),
        )


class CrossModalEnhancer(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        *,
        vision_dim: int,
        text_dim: int,
        cue_dim: int,
        guidance_dim: int,
        out_dim: int,
        hidden_size: int = 768,
        num_heads: int = 8,
        num_queries: int = 32,
        ff_mult: int = 4,
        num_blocks: int = 5,
        use_visual_enhancer: bool = True,
        use_text_enhancer: bool = True,
    ) -> None:
        super().__init__()
        if num_blocks != 5:
            raise ValueError(f"CME has exactly the paper's five hybrid cross-attention blocks, got {num_blocks}")
        if not (use_visual_enhancer or use_text_enhancer):
            raise ValueError("CME needs at least one enhancer; leave it out of the model instead")
        common = dict(
            cue_dim=cue_dim, guidance_dim=guidance_dim, hidden_size=hidden_size, num_heads=num_heads,
            num_queries=num_queries, ff_mult=ff_mult, out_dim=out_dim,
        )
        self.visual = ModalityEnhancer(query_dim=vision_dim, **common) if use_visual_enhancer else None
        self.textual = ModalityEnhancer(query_dim=text_dim, **common) if use_text_enhancer else None

    def forward(
        self,
        guidance: torch.Tensor,
        image_features: torch.Tensor | None = None,
        r_v: torch.Tensor | None = None,
        r_v_padding: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None,
        text_padding: torch.Tensor | None = None,
        r_t: torch.Tensor | None = None,
        r_t_padding: torch.Tensor | None = None,
    ) -> tuple[EnhancerOutput | None, EnhancerOutput | None]:
        visual = textual = None
        if self.visual is not None:
            visual = self.visual(image_features, r_v, guidance, cue_padding=r_v_padding)
        if self.textual is not None:
            textual = self.textual(text_features, r_t, guidance, query_padding=text_padding, cue_padding=r_t_padding)
        return visual, textual
