"""Where a reason-then-edit may change the picture: the object's mask, chosen by one rule, and the edited area.

The rule (:func:`choose_object_mask`), first match wins:

1. ``box_region``: the MLLM gave a box and a SAM region overlaps it with mask IoU >= ``min_iou``: that region.
2. ``box``: the MLLM gave a box and no region overlaps it enough: the box itself.
3. ``object_region``: the MLLM named an object (no usable box): the region the MLLM's own visual tokens match best
   (``scores``, one per object region).
4. ``whole_image``: neither (or no object regions): the whole picture, so the edit is not confined.

The edited area (:func:`latent_edit_area`) is the mask on the latent grid, dilated by a few latent cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reasonbrain.regions import Regions

BOX_REGION = "box_region"
BOX = "box"
OBJECT_REGION = "object_region"
WHOLE_IMAGE = "whole_image"
MASK_SOURCES = (BOX_REGION, BOX, OBJECT_REGION, WHOLE_IMAGE)


@dataclass(frozen=True)
class ObjectMask:
    mask: torch.Tensor  # (H, W) bool at the regions' size
    source: str  # one of MASK_SOURCES
    region: int | None  # index into the regions, for the region sources
    note: str | None  # what fell back, in words (None when the box or the object gave the mask)


def box_mask(box: tuple[float, float, float, float], size: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool: the normalised xyxy ``box`` on a (width, height) picture (at least one pixel)."""
    width, height = size
    x1, x2 = int(box[0] * width), max(int(box[0] * width) + 1, round(box[2] * width))
    y1, y2 = int(box[1] * height), max(int(box[1] * height) + 1, round(box[3] * height))
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[y1:y2, x1:x2] = True
    return mask


def choose_object_mask(
    size: tuple[int, int],
    *,
    box: tuple[float, float, float, float] | None,
    object_name: str | None,
    regions: Regions | None,
    scores: Callable[[Regions], torch.Tensor],
    min_iou: float,
) -> ObjectMask:
    """The object's mask on a (width, height) picture by the module's rule. ``regions`` are at that size;
    ``scores(regions)`` gives one match score per object region (background excluded), called only when needed."""
    width, height = size
    objects = regions.masks[:-1].cpu() if regions is not None else torch.zeros(0, height, width, dtype=torch.bool)
    if objects.shape[0] and tuple(objects.shape[1:]) != (height, width):
        raise ValueError(f"regions are {tuple(objects.shape[1:])} but the picture is {(height, width)} (H, W)")
    if box is not None:
        rect = box_mask(box, size)
        if objects.shape[0]:
            inter = (objects & rect).flatten(1).sum(1).float()
            union = (objects | rect).flatten(1).sum(1).float().clamp(min=1.0)
            iou = inter / union
            best = int(iou.argmax())
            if float(iou[best]) >= min_iou:
                return ObjectMask(objects[best], BOX_REGION, best, None)
        return ObjectMask(rect, BOX, None, f"no SAM region matches the MLLM's box (IoU >= {min_iou:g}): the box "
                                           "itself is the mask")
    if object_name is not None and objects.shape[0]:
        best = int(scores(regions).argmax())
        return ObjectMask(objects[best], OBJECT_REGION, best, f"the MLLM gave no usable box: the SAM region that "
                                                                 f"best matches {object_name!r} is the mask")
    why = "no object and no box" if object_name is None else "no SAM region"
    return ObjectMask(torch.ones(height, width, dtype=torch.bool), WHOLE_IMAGE, None,
                      f"{why} to confine the edit: the whole picture may change")


def latent_edit_area(mask: torch.Tensor, latent_hw: tuple[int, int], dilation: int) -> torch.Tensor:
    """(1, 1, h, w) float 0/1: latent cells touching the (H, W) ``mask``, grown by ``dilation`` cells."""
    area = F.adaptive_max_pool2d(mask[None, None].float(), latent_hw)  # (1, 1, h, w)
    if dilation > 0:
        area = F.max_pool2d(area, 2 * dilation + 1, stride=1, padding=dilation)
    return area


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool mask at another (width, height), nearest-neighbour."""
    width, height = int(size[0]), int(size[1])
    if tuple(mask.shape) == (height, width):
        return mask.clone()
    return F.interpolate(mask[None, None].float(), size=(height, width), mode="nearest-exact")[0, 0] > 0.5
