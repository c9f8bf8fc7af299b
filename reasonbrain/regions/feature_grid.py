"""Model-side helpers: region masks pooled onto a feature grid and padded into a batch (FRCE's region branch)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from reasonbrain.regions.container import Regions


def masks_to_feature_grid(regions: Regions, grid_hw: tuple[int, int]) -> torch.Tensor:
    """(M, h, w) float soft masks: the fraction of each feature-grid cell covered by each region."""
    h, w = int(grid_hw[0]), int(grid_hw[1])
    if h < 1 or w < 1:
        raise ValueError(f"grid_hw must be positive (height, width), got {grid_hw}")
    masks = regions.masks.float()  # (M, H, W)
    return F.adaptive_avg_pool2d(masks[None], (h, w))[0]  # (M, h, w)


def pad_regions(grid_masks: Sequence[torch.Tensor], max_regions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch per-image grid masks [(M_i, h, w)] -> (masks (B, R, h, w), valid (B, R) bool) with R = max_regions.

    Padding slots are zero and ``valid`` False. An image with more than ``max_regions`` regions raises
    (cap the proposer's ``max_regions`` instead: truncating would drop the background, which is last).
    """
    if len(grid_masks) == 0:
        raise ValueError("pad_regions needs at least one image's masks")
    if max_regions < 1:
        raise ValueError(f"max_regions must be >= 1, got {max_regions}")
    first = grid_masks[0]
    if first.ndim != 3:
        raise ValueError(f"grid masks must be (M, h, w), got {tuple(first.shape)}")
    h, w = first.shape[1:]
    out = first.new_zeros(len(grid_masks), max_regions, h, w)  # (B, R, h, w)
    valid = torch.zeros(len(grid_masks), max_regions, dtype=torch.bool, device=first.device)  # (B, R)
    for b, g in enumerate(grid_masks):
        if g.ndim != 3 or tuple(g.shape[1:]) != (h, w):
            raise ValueError(f"all grid masks must be (M, {h}, {w}); image {b} has {tuple(g.shape)}")
        m = g.shape[0]
        if m > max_regions:
            raise ValueError(
                f"image {b} has {m} regions but max_regions is {max_regions}; build the region "
                f"proposer with max_regions <= {max_regions}"
            )
        out[b, :m] = g.to(out.dtype)
        valid[b, :m] = True
    return out, valid
