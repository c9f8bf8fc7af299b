"""The UNet side of eq. A2: eps(t, [z_t, latent(I)] + R-_visual + R-_text, context=[e-_visual, e-_text])."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class UNetConditioning(ModelMixin, ConfigMixin):
    """Maps CME outputs to the UNet's additive input terms and cross-attention context.

    R-_visual is aligned with the vision feature grid, so it becomes a spatial map; R-_text is aligned with the
    instruction tokens, so it is pooled into a per-channel offset. Both maps start at zero (zero-initialised
    projections), so an InstructPix2Pix UNet starts from its own behaviour. Without CME (the paper's "plain"
    variant) the QFormer output V^ is projected straight to the context.

    ``use_grounding`` (ours, not in the paper): the FRCE's ``id_map`` (the ID Controller's attention from the
    object token's last token, spread onto the image grid) times a learned per-channel vector is added too,
    telling the UNet where the referred object is. The vector starts at zero, so switching it on does not
    change a trained model's output.
    """

    @register_to_config
    def __init__(
        self,
        *,
        in_channels: int,
        cross_attention_dim: int,
        guidance_dim: int,
        grid_size: int,
        use_visual: bool = True,
        use_text: bool = True,
        use_grounding: bool = False,
    ) -> None:
        super().__init__()
        if use_visual:
            self.visual_to_input = nn.Linear(cross_attention_dim, in_channels)
            nn.init.zeros_(self.visual_to_input.weight)
            nn.init.zeros_(self.visual_to_input.bias)
        if use_text:
            self.text_to_input = nn.Linear(cross_attention_dim, in_channels)
            nn.init.zeros_(self.text_to_input.weight)
            nn.init.zeros_(self.text_to_input.bias)
        if use_grounding:
            self.grounding_to_input = nn.Parameter(torch.zeros(in_channels))
        if not (use_visual or use_text):
            self.guidance_to_context = nn.Linear(guidance_dim, cross_attention_dim)

    def forward(
        self,
        latent_hw: tuple[int, int],
        guidance: torch.Tensor,
        visual_enhanced: torch.Tensor | None = None,
        visual_context: torch.Tensor | None = None,
        text_enhanced: torch.Tensor | None = None,
        text_context: torch.Tensor | None = None,
        text_padding: torch.Tensor | None = None,
        id_map: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (input_offset (B, C_in, h, w), context (B, L, cross_attention_dim))."""
        c = self.config
        b = guidance.shape[0]
        offset = guidance.new_zeros(b, c.in_channels, *latent_hw)
        contexts = []
        if c.use_visual:
            g = c.grid_size
            spatial = self.visual_to_input(visual_enhanced)  # (B, g*g, C_in)
            spatial = spatial.transpose(1, 2).reshape(b, c.in_channels, g, g)
            offset = offset + F.interpolate(spatial, size=latent_hw, mode="bilinear", align_corners=False)
            contexts.append(visual_context)
        if c.use_text:
            keep = (~text_padding).unsqueeze(-1).to(text_enhanced.dtype)  # (B, L, 1)
            pooled = (text_enhanced * keep).sum(1) / keep.sum(1).clamp(min=1.0)  # (B, D)
            offset = offset + self.text_to_input(pooled)[:, :, None, None]
            contexts.append(text_context)
        if c.use_grounding:
            if id_map is None:
                raise ValueError("use_grounding needs the FRCE's id_map (the ID Controller must be on)")
            where = F.interpolate(id_map[:, None].to(offset.dtype), size=latent_hw, mode="bilinear", align_corners=False)
            offset = offset + self.grounding_to_input[None, :, None, None] * where
        if not contexts:
            contexts.append(self.guidance_to_context(guidance))
        return offset, torch.cat(contexts, dim=1)
