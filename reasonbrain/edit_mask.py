"""Where a reason-then-edit may change the picture: the object's mask, chosen by one rule, and the edited area.

The rule (:func:`choose_object_mask`), first match wins:

1. ``box_prompt``: the MLLM gave a box and the region proposer can be prompted with one (``BoxSegmenter``: the SAM 2
   backends): SAM 2's mask for that box, when its predicted IoU reaches ``min_score``, it is not empty and at least
   ``BOX_PROMPT_MIN_INSIDE`` (half) of its pixels lie inside the box (a mask mostly outside the box segments something
   else). Otherwise the next steps decide, and the mask's note says why the prompted mask was not used.
2. ``box_region``: the MLLM gave a box and a SAM region overlaps it with mask IoU >= ``min_iou``: that region.
3. ``box``: the MLLM gave a box and no region overlaps it enough: the box itself.
4. ``object_region``: the MLLM named an object (no usable box): the region the MLLM's own visual tokens match best
   (``scores``, one per object region).
5. ``whole_image``: neither (or no object regions): the whole picture, so the edit is not confined.

The edited area (:func:`latent_edit_area`) is the mask on the latent grid, dilated by a few latent cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reasonbrain.regions import Regions

Box = tuple[float, float, float, float]  # normalised xyxy

BOX_PROMPT = "box_prompt"
BOX_REGION = "box_region"
BOX = "box"
OBJECT_REGION = "object_region"
WHOLE_IMAGE = "whole_image"
MASK_SOURCES = (BOX_PROMPT, BOX_REGION, BOX, OBJECT_REGION, WHOLE_IMAGE)
BOX_PROMPT_MIN_INSIDE = 0.5  # the share of a box-prompted mask's pixels that must lie inside the box


@dataclass(frozen=True)
class BoxPrompt:
    """Step 1 of the rule: the proposer's ``segment_box`` on the picture, and the predicted IoU its mask needs."""

    segment: Callable[[Box], tuple[torch.Tensor, float]]  # box -> ((H, W) bool mask at the picture's size, IoU)
    min_score: float


@dataclass(frozen=True)
class ObjectMask:
    mask: torch.Tensor  # (H, W) bool at the regions' size
    source: str  # one of MASK_SOURCES
    region: int | None  # index into the regions, for the region sources
    note: str | None  # what fell back, in words (None when nothing fell back)


def box_mask(box: Box, size: tuple[int, int]) -> torch.Tensor:
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
    box: Box | None,
    object_name: str | None,
    regions: Regions | None,
    scores: Callable[[Regions], torch.Tensor],
    min_iou: float,
    box_prompt: BoxPrompt | None = None,
) -> ObjectMask:
    """The object's mask on a (width, height) picture by the module's rule. ``regions`` are at that size;
    ``scores(regions)`` gives one match score per object region (background excluded), called only when needed;
    ``box_prompt`` (None: the proposer cannot be prompted with a box) is called only when the MLLM gave a box."""
    width, height = size
    objects = regions.masks[:-1].cpu() if regions is not None else torch.zeros(0, height, width, dtype=torch.bool)
    if objects.shape[0] and tuple(objects.shape[1:]) != (height, width):
        raise ValueError(f"regions are {tuple(objects.shape[1:])} but the picture is {(height, width)} (H, W)")
    if box is not None:
        rect = box_mask(box, size)
        rejected = None
        if box_prompt is not None:
            mask, score = box_prompt.segment(box)
            rejected = _box_prompt_rejection(mask, score, rect, box_prompt.min_score)
            if rejected is None:
                return ObjectMask(mask.cpu(), BOX_PROMPT, None, None)
        if objects.shape[0]:
            inter = (objects & rect).flatten(1).sum(1).float()
            union = (objects | rect).flatten(1).sum(1).float().clamp(min=1.0)
            iou = inter / union
            best = int(iou.argmax())
            if float(iou[best]) >= min_iou:
                note = f"{rejected}: the SAM region that matches the box is the mask" if rejected else None
                return ObjectMask(objects[best], BOX_REGION, best, note)
        return ObjectMask(rect, BOX, None, (f"{rejected}; " if rejected else "") + f"no SAM region matches the "
                                           f"MLLM's box (IoU >= {min_iou:g}): the box itself is the mask")
    if object_name is not None and objects.shape[0]:
        best = int(scores(regions).argmax())
        return ObjectMask(objects[best], OBJECT_REGION, best, f"the MLLM gave no usable box: the SAM region that "
                                                                 f"best matches {object_name!r} is the mask")
    why = "no object and no box" if object_name is None else "no SAM region"
    return ObjectMask(torch.ones(height, width, dtype=torch.bool), WHOLE_IMAGE, None,
                      f"{why} to confine the edit: the whole picture may change")


def _box_prompt_rejection(mask: torch.Tensor, score: float, rect: torch.Tensor, min_score: float) -> str | None:
    """Why SAM's mask for the MLLM's box is not the object's mask (rule step 1), or None when it is."""
    if tuple(mask.shape) != tuple(rect.shape) or mask.dtype != torch.bool:
        raise ValueError(f"segment_box gave a {tuple(mask.shape)} {mask.dtype} mask; the picture is "
                         f"{tuple(rect.shape)} (H, W) bool")
    area = int(mask.sum())
    what = "SAM's mask for the MLLM's box"
    if area == 0:
        return f"{what} is empty"
    if score < min_score:
        return f"{what} has a predicted IoU of {score:.2f} (below {min_score:g})"
    inside = int((mask.cpu() & rect).sum()) / area
    if inside < BOX_PROMPT_MIN_INSIDE:
        return f"only {inside:.0%} of {what} lies inside the box (below {BOX_PROMPT_MIN_INSIDE:.0%})"
    return None


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
