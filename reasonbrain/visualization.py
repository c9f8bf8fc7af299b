"""The ID Controller's attention over an edit's regions, read and drawn: the region the instruction was bound to
(:func:`bound_region`) and the attention heatmap (:func:`render_attention_heatmap`). Pure numpy/PIL functions of a
pipeline output's fields, shared by the CLI's JSON, the app and anyone using the library."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import PIL.Image

if TYPE_CHECKING:  # pragma: no cover
    from reasonbrain.regions import Regions

HEATMAP_ALPHA = 0.6
HEATMAP_COLORMAP = "magma"
OUTLINE_COLOUR = (0, 255, 255)


def bound_region(regions: Regions | None, attention: list[float] | None) -> int | None:
    """Index of the object region the ID Controller attends to most (the background excluded)."""
    if regions is None or attention is None or regions.num_objects == 0 or len(attention) != len(regions):
        return None
    return int(np.argmax(np.asarray(attention[: regions.num_objects])))


def label_map(regions: Regions, size: tuple[int, int]) -> np.ndarray:
    """(H, W) region index per pixel at ``size`` (width, height); earlier (higher-scoring) regions win overlaps,
    pixels in no object region get the background's index (the last)."""
    masks = regions.masks.detach().cpu().numpy()  # (M, h, w) bool
    labels = np.full(masks.shape[1:], len(regions) - 1, dtype=np.uint8 if len(regions) < 256 else np.int32)
    for i in reversed(range(regions.num_objects)):
        labels[masks[i]] = i
    if (labels.shape[1], labels.shape[0]) != tuple(size):
        labels = np.asarray(PIL.Image.fromarray(labels).resize(tuple(size), PIL.Image.Resampling.NEAREST))
    return labels


def render_attention_heatmap(
    image: PIL.Image.Image,
    regions: Regions | None,
    attention: list[float] | None,
    *,
    patch_attention: list[list[float]] | None = None,
    bound: int | None = None,
    alpha: float = HEATMAP_ALPHA,
) -> PIL.Image.Image:
    """Attention over regions (each region painted with its weight, normalised to the maximum) in the
    ``magma`` colormap, blended over ``image``; ``bound`` region outlined. Falls back to the patch-grid
    attention when there are no regions, and to the plain image when there is no attention at all."""
    base = image.convert("RGB")
    width, height = base.size
    if regions is not None and attention is not None and len(attention) == len(regions):
        weights = np.asarray(attention, dtype=np.float32)
        weights = weights / max(float(weights.max()), 1e-12)
        labels = label_map(regions, base.size)
        values = weights[labels]
    elif patch_attention is not None:
        grid = np.asarray(patch_attention, dtype=np.float32)
        grid = grid / max(float(grid.max()), 1e-12)
        values = np.asarray(PIL.Image.fromarray(grid).resize((width, height), PIL.Image.Resampling.BILINEAR))
        labels = None
    else:
        return base.copy()
    import matplotlib

    lut = (matplotlib.colormaps[HEATMAP_COLORMAP](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    heat = lut[(values.clip(0, 1) * 255).round().astype(np.uint8)]
    blended = np.asarray(base, dtype=np.float32) * (1 - alpha) + heat * alpha
    if labels is not None and bound is not None:
        thickness = max(1, round(min(width, height) / 128))
        outline = _edges(labels == bound, thickness=thickness) & (labels == bound)
        blended[outline] = OUTLINE_COLOUR
    return PIL.Image.fromarray(blended.round().clip(0, 255).astype(np.uint8))


def _edges(labels: np.ndarray, *, thickness: int = 1) -> np.ndarray:
    """Pixels within ``thickness`` of a change of value (4-neighbourhood), bool (H, W)."""
    edge = np.zeros(labels.shape, dtype=bool)
    diff_v = labels[1:] != labels[:-1]
    diff_h = labels[:, 1:] != labels[:, :-1]
    edge[1:] |= diff_v
    edge[:-1] |= diff_v
    edge[:, 1:] |= diff_h
    edge[:, :-1] |= diff_h
    for _ in range(thickness - 1):  # grow inwards and outwards
        grown = edge.copy()
        grown[1:] |= edge[:-1]
        grown[:-1] |= edge[1:]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        edge = grown
    return edge


__all__ = ["HEATMAP_ALPHA", "HEATMAP_COLORMAP", "OUTLINE_COLOUR", "bound_region", "label_map",
           "render_attention_heatmap"]
