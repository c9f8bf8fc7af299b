"""Fine-grained Reasoning Cues Extraction (paper section 3.2): VRCB (patch + region branches) and TRCB."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from reasonbrain.models.id_controller import IDController
from reasonbrain.models.layers import TransformerEncoder


@dataclass
class FRCEOutput:
    r_v: torch.Tensor | None  # (B, Lp + R, D) visual reasoning cues [R_local; R_global]
    r_v_padding: torch.Tensor | None  # (B, Lp + R) True where padding
    r_t: torch.Tensor | None  # (B, K, D) textual reasoning cues from the ID Controller
    r_t_padding: torch.Tensor | None  # (B, K) True where the object token sequence is padding
    id_attention: torch.Tensor | None  # (B, Lp + R) ID Controller attention over R_V, averaged over O's tokens
    num_patch_tokens: int  # Lp (0 when the patch branch is off)
    id_focus: torch.Tensor | None  # (B, Lp + R) attention of O's last token (the causal text encoder's summary of O)
    id_map: torch.Tensor | None  # (B, grid, grid) id_focus spread back onto the vision grid, max 1 per image
    r_v_llm: torch.Tensor | None  # (B, Lp + R, d_llm) R_V mapped into the MLLM's space
    r_t_llm: torch.Tensor | None  # (B, K, d_llm)


class FineGrainedReasoningCues(ModelMixin, ConfigMixin):
    """VRCB: R_local = E_P(P(E_I(I))), R_global = E_R(SAM masks pooled over E_I(I)); TRCB: ID Controller."""

    @register_to_config
    def __init__(
        self,
        *,
        vision_dim: int,
        text_dim: int,
        llm_hidden_size: int,
        grid_size: int,
        hidden_size: int = 1024,
        num_heads: int = 8,
        patch_size: int = 2,
        patch_layers: int = 2,
        region_layers: int = 2,
        max_regions: int = 16,
        ff_mult: int = 4,
        use_patch_branch: bool = True,
        use_region_branch: bool = True,
        use_id_controller: bool = True,
    ) -> None:
        super().__init__()
        if not (use_patch_branch or use_region_branch):
            raise ValueError("FRCE needs at least one VRCB branch; leave it out of the model instead")
        if grid_size % patch_size:
            raise ValueError(f"frce.patch_size ({patch_size}) must divide the vision feature grid ({grid_size})")
        num_patches = (grid_size // patch_size) ** 2
        if use_patch_branch:
            # P: MAE-style patch adapter (p x p grid cells -> one token) and E_P, the patch-level extractor.
            self.patch_adapter = nn.Linear(vision_dim * patch_size * patch_size, hidden_size)
            self.patch_pos = nn.Parameter(torch.randn(1, num_patches, hidden_size) * 0.02)
            self.patch_extractor = TransformerEncoder(
                dim=hidden_size, num_heads=num_heads, num_layers=patch_layers, ff_mult=ff_mult
            )
        if use_region_branch:
            # E_R: region-level extractor over mask-pooled features plus each region's geometry.
            self.region_proj = nn.Linear(vision_dim, hidden_size)
            self.region_geometry = nn.Linear(5, hidden_size)
            self.region_extractor = TransformerEncoder(
                dim=hidden_size, num_heads=num_heads, num_layers=region_layers, ff_mult=ff_mult
            )
        if use_id_controller:
            self.object_proj = nn.Linear(text_dim, hidden_size)
            self.id_controller = IDController(dim=hidden_size, num_heads=num_heads, ff_mult=ff_mult)
            self.r_t_to_llm = nn.Linear(hidden_size, llm_hidden_size)
        self.r_v_to_llm = nn.Linear(hidden_size, llm_hidden_size)

    @property
    def num_patch_tokens(self) -> int:
        c = self.config
        return (c.grid_size // c.patch_size) ** 2 if c.use_patch_branch else 0

    def forward(
        self,
        image_features: torch.Tensor,
        region_masks: torch.Tensor | None = None,
        region_valid: torch.Tensor | None = None,
        object_embeds: torch.Tensor | None = None,
        object_padding: torch.Tensor | None = None,
    ) -> FRCEOutput:
        # image_features (B, N, Dv) multi-scale E_I(I) on a (grid x grid) layout; region_masks (B, R, grid, grid)
        c = self.config
        b, n, dv = image_features.shape
        g = c.grid_size
        if n != g * g:
            raise ValueError(f"expected {g * g} vision tokens on a {g}x{g} grid, got {n}")
        parts, pads = [], []
        if c.use_patch_branch:
            p = c.patch_size
            x = image_features.reshape(b, g // p, p, g // p, p, dv).permute(0, 1, 3, 2, 4, 5)
            x = x.reshape(b, (g // p) ** 2, p * p * dv)  # (B, Lp, p*p*Dv)
            r_local = self.patch_extractor(self.patch_adapter(x) + self.patch_pos)  # (B, Lp, D)
            parts.append(r_local)
            pads.append(torch.zeros(b, r_local.shape[1], dtype=torch.bool, device=x.device))
        if c.use_region_branch:
            if region_masks is None or region_valid is None:
                raise ValueError("the region branch needs region_masks and region_valid (SAM regions)")
            r_global = self.region_features(image_features, region_masks, region_valid)  # (B, R, D)
            parts.append(r_global)
            pads.append(~region_valid)
        r_v = torch.cat(parts, dim=1)  # (B, Lp + R, D)
        r_v_padding = torch.cat(pads, dim=1)  # (B, Lp + R)
        r_t = id_attention = r_t_llm = id_focus = id_map = None
        if c.use_id_controller:
            if object_embeds is None:
                raise ValueError("the ID Controller needs object_embeds (the embedded object token O)")
            if object_padding is None:
                object_padding = torch.zeros(object_embeds.shape[:2], dtype=torch.bool, device=object_embeds.device)
            r_t, weights = self.id_controller(self.object_proj(object_embeds), r_v, r_v_padding)  # (B, K, D)
            keep = (~object_padding).unsqueeze(-1).to(weights.dtype)  # (B, K, 1)
            id_attention = (weights * keep).sum(1) / keep.sum(1).clamp(min=1.0)  # (B, Lp + R)
            r_t_llm = self.r_t_to_llm(r_t)  # (B, K, d_llm)
            # O's last token has seen the whole phrase ("red apple | left"): its attention is the AND of the words,
            # where the average over tokens is closer to an OR
            last = (~object_padding).sum(1).clamp(min=1) - 1  # (B,)
            id_focus = weights[torch.arange(b, device=weights.device), last]  # (B, Lp + R)
            id_map = self.attention_map(id_focus, region_masks if c.use_region_branch else None)
        return FRCEOutput(
            r_v=r_v,
            r_v_padding=r_v_padding,
            r_t=r_t,
            r_t_padding=object_padding if c.use_id_controller else None,
            id_attention=id_attention,
            num_patch_tokens=self.num_patch_tokens,
            id_focus=id_focus,
            id_map=id_map,
            r_v_llm=self.r_v_to_llm(r_v),
            r_t_llm=r_t_llm,
        )

    def region_features(self, image_features: torch.Tensor, region_masks: torch.Tensor,
                        region_valid: torch.Tensor) -> torch.Tensor:
        """R_global = E_R(masked average of E_I(I) over each region, plus its geometry): (B, R, D)."""
        c = self.config
        g = c.grid_size
        if region_masks.shape[-2:] != (g, g) or region_masks.shape[1] > c.max_regions:
            raise ValueError(f"region_masks must be (B, <= {c.max_regions}, {g}, {g}), got {tuple(region_masks.shape)}")
        if not bool(region_valid.any(dim=1).all()):
            raise ValueError("every image needs at least one region (the background region is always present)")
        masks = region_masks.flatten(2).to(image_features.dtype)  # (B, R, N)
        area = masks.sum(-1, keepdim=True)  # (B, R, 1)
        pooled = masks @ image_features / area.clamp(min=1e-6)  # (B, R, Dv) masked average pooling
        r_global = self.region_proj(pooled) + self.region_geometry(_mask_geometry(masks, g))
        return self.region_extractor(r_global, padding_mask=~region_valid)  # (B, R, D)

    def attention_map(self, attention: torch.Tensor, region_masks: torch.Tensor | None) -> torch.Tensor:
        """(B, Lp + R) weights over R_V -> (B, grid, grid): each patch token's weight on its p x p cells plus
        each region's weight on its mask, divided by the per-image maximum (a "where" map in [0, 1])."""
        c = self.config
        g, p, lp = c.grid_size, c.patch_size, self.num_patch_tokens
        out = attention.new_zeros(attention.shape[0], g, g)
        if lp:
            cells = attention[:, :lp].reshape(-1, g // p, g // p)
            out = out + cells.repeat_interleave(p, dim=1).repeat_interleave(p, dim=2)
        if region_masks is not None:
            r = region_masks.shape[1]
            out = out + torch.einsum("br,brhw->bhw", attention[:, lp : lp + r], region_masks.to(attention.dtype))
        return out / out.flatten(1).amax(-1).clamp(min=1e-12)[:, None, None]


def _mask_geometry(masks: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, R, N) soft masks -> (B, R, 5): centroid x, y, spread x, y, area fraction (all in [0, 1])."""
    coords = (torch.arange(grid, device=masks.device, dtype=masks.dtype) + 0.5) / grid
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    xs, ys = xs.reshape(-1), ys.reshape(-1)  # (N,)
    area = masks.sum(-1).clamp(min=1e-6)  # (B, R)
    cx, cy = (masks @ xs) / area, (masks @ ys) / area
    sx = ((masks @ xs.square()) / area - cx.square()).clamp(min=0).sqrt()
    sy = ((masks @ ys.square()) / area - cy.square()).clamp(min=0).sqrt()
    return torch.stack([cx, cy, sx, sy, area / masks.shape[-1]], dim=-1)
