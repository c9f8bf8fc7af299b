"""The post-processing every region backend shares: size filter, mask-IoU NMS, score order, the cap, and the
background region appended last."""

from __future__ import annotations

import math

import numpy as np
import torch

from reasonbrain.regions.container import BACKGROUND_LABEL, Regions

_MAX_IOU_PIXELS = 128 * 128  # mask IoU for NMS is computed on at most this many (strided) pixels per mask


def check_postprocess_args(max_regions: int, min_area: float, iou_threshold: float) -> None:
    """Validate the post-processing arguments a proposer is built with."""
    if int(max_regions) < 1:
        raise ValueError(f"max_regions must be >= 1 (the background region always counts), got {max_regions}")
    if not 0.0 <= float(min_area) < 1.0:
        raise ValueError(f"min_area is a fraction of the image area in [0, 1), got {min_area}")
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(M, H, W) bool -> (M, 4) float32 xyxy boxes in pixel-edge coordinates; empty masks give zeros."""
    return torch.from_numpy(_boxes_np(masks.detach().to("cpu", torch.bool).numpy())).to(masks.device)


def _boxes_np(masks: np.ndarray) -> np.ndarray:
    m, h, w = masks.shape
    boxes = np.zeros((m, 4), dtype=np.float32)
    rows = masks.any(axis=2)  # (M, H)
    cols = masks.any(axis=1)  # (M, W)
    nonempty = rows.any(axis=1)
    if nonempty.any():
        r, c = rows[nonempty], cols[nonempty]
        boxes[nonempty, 0] = c.argmax(axis=1)
        boxes[nonempty, 1] = r.argmax(axis=1)
        boxes[nonempty, 2] = w - c[:, ::-1].argmax(axis=1)
        boxes[nonempty, 3] = h - r[:, ::-1].argmax(axis=1)
    return boxes


def select_regions(
    masks: torch.Tensor,
    scores: torch.Tensor,
    *,
    max_keep: int,
    min_area: float,
    iou_threshold: float,
) -> torch.Tensor:
    """Indices of the masks to keep, in output order (score desc, ties by area desc, then input order).

    masks (N, H, W) bool, scores (N,). Drops masks smaller than ``min_area`` (fraction of H*W; empty masks
    always), then greedy NMS: a mask is suppressed when its IoU with an already kept one is > ``iou_threshold``.
    Stops at ``max_keep`` kept masks. Deterministic. IoU is computed on a strided subsample when H*W is large.
    (numpy on the CPU: these masks are small and torch's thread pool only adds overhead here.)
    """
    n, h, w = masks.shape
    if n == 0 or max_keep <= 0:
        return torch.zeros(0, dtype=torch.long)
    masks_np = masks.detach().to("cpu", torch.bool).numpy()
    scores_np = scores.detach().to("cpu", torch.float64).numpy()
    areas = np.count_nonzero(masks_np.reshape(n, -1), axis=1)  # (N,)
    min_pixels = max(1, math.ceil(float(min_area) * h * w))
    # np.lexsort sorts by the last key first: score desc, then area desc, then index asc.
    order = np.lexsort((np.arange(n), -areas, -scores_np))
    stride = max(1, math.ceil(math.sqrt(h * w / _MAX_IOU_PIXELS)))
    small = np.ascontiguousarray(masks_np[:, ::stride, ::stride]).reshape(n, -1)  # (N, P)
    small_areas = np.count_nonzero(small, axis=1)  # (N,)
    kept: list[int] = []
    for i in order.tolist():
        if areas[i] < min_pixels:
            continue
        if kept:
            inter = np.count_nonzero(small[kept] & small[i], axis=1)  # (K,)
            union = small_areas[kept] + small_areas[i] - inter
            iou = inter / np.maximum(union, 1)
            if bool((iou > iou_threshold).any()):
                continue
        kept.append(i)
        if len(kept) >= max_keep:
            break
    return torch.tensor(kept, dtype=torch.long)


def finalize_regions(masks: torch.Tensor, scores: torch.Tensor, *, label_prefix: str) -> Regions:
    """Kept masks (K, H, W) bool + scores (K,) -> :class:`Regions` with the background appended last.

    The background is the complement of the union of the kept masks (the whole image when K == 0). It can be
    empty when the kept masks cover the whole image.
    """
    masks_np = masks.detach().to("cpu", torch.bool).numpy()
    k = masks_np.shape[0]
    background = ~masks_np.any(axis=0)  # (H, W); all True when K == 0
    all_masks = np.concatenate([masks_np, background[None]], axis=0)  # (K + 1, H, W)
    all_scores = torch.cat(
        [scores.detach().to("cpu", torch.float32).clamp(0.0, 1.0).reshape(k), torch.ones(1)]
    )
    labels = [f"{label_prefix} {i + 1}" for i in range(k)] + [BACKGROUND_LABEL]
    return Regions(
        masks=torch.from_numpy(all_masks),
        labels=labels,
        scores=all_scores,
        boxes=torch.from_numpy(_boxes_np(all_masks)),
    )


def postprocess_regions(
    masks: torch.Tensor,
    scores: torch.Tensor,
    *,
    max_regions: int,
    min_area: float,
    iou_threshold: float,
    label_prefix: str = "region",
) -> Regions:
    """The post-processing every backend shares.

    masks (N, H, W) bool candidates, scores (N,) in [0, 1]. Drops masks below ``min_area`` (fraction of the
    image), removes duplicates by greedy mask-IoU NMS (``iou_threshold``), sorts by score (ties: larger first),
    keeps at most ``max_regions - 1`` and appends the background (complement of the kept masks, score 1.0).
    """
    check_postprocess_args(max_regions, min_area, iou_threshold)
    if masks.ndim != 3 or scores.shape != masks.shape[:1]:
        raise ValueError(
            f"postprocess_regions needs masks (N, H, W) and scores (N,), got {tuple(masks.shape)} "
            f"and {tuple(scores.shape)}"
        )
    masks = masks.detach().to("cpu", torch.bool)
    keep = select_regions(
        masks, scores, max_keep=max_regions - 1, min_area=min_area, iou_threshold=iou_threshold
    )
    return finalize_regions(masks[keep], scores.detach().cpu()[keep], label_prefix=label_prefix)
