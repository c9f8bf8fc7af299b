"""The synth world's own region proposer: a classical colour segmenter for its flat-shaded scenes (the
``"color_segments"`` region backend of the offline ``synth`` preset)."""

from __future__ import annotations

import math

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from reasonbrain.regions.container import Regions, as_rgb_image
from reasonbrain.regions.postprocess import check_postprocess_args, postprocess_regions


def label_components(mask: np.ndarray, *, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Connected components of a (H, W) bool mask: (labels (H, W) int32 with 0 = off, 1..n; n).

    Run-length union-find: runs of each row are merged with the overlapping runs of the row above. Labels are
    numbered in raster order of each component's first pixel. Deterministic, numpy only.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    labels = np.zeros((h, w), dtype=np.int32)
    if h == 0 or w == 0 or not mask.any():
        return labels, 0
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)  # (H, W + 1)
    run_row, run_start = np.nonzero(d == 1)
    _, run_end = np.nonzero(d == -1)  # exclusive; same raster order as the starts
    n_runs = run_row.size
    parent = list(range(n_runs))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    row_ptr = np.searchsorted(run_row, np.arange(h + 1)).tolist()
    starts, ends = run_start.tolist(), run_end.tolist()
    grow = 1 if connectivity == 8 else 0
    for r in range(1, h):
        i, i_end = row_ptr[r - 1], row_ptr[r]
        j, j_end = row_ptr[r], row_ptr[r + 1]
        while i < i_end and j < j_end:
            if starts[i] < ends[j] + grow and starts[j] < ends[i] + grow:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
            if ends[i] < ends[j] + grow:
                i += 1
            else:
                j += 1
    roots = np.array([find(k) for k in range(n_runs)], dtype=np.int64)
    _, comp = np.unique(roots, return_inverse=True)  # roots are first runs -> raster order of first pixels
    comp = comp.astype(np.int32) + 1
    lengths = run_end - run_start
    flat_start = run_row * w + run_start
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    labels.reshape(-1)[np.repeat(flat_start, lengths) + offsets] = np.repeat(comp, lengths)
    return labels, int(comp.max())


def _cluster_colors(
    pixels: np.ndarray, *, threshold: float, min_share: float, max_colors: int, max_seeds: int = 64
) -> np.ndarray:
    """Greedy colour clustering of (N, 3) pixels: (K, 3) float centres of clusters holding >= min_share.

    Seeds are tried in order of frequency (ties: lowest colour); a seed whose ``threshold`` neighbourhood holds
    less than ``min_share`` of the pixels (an anti-aliasing blend) is skipped, not accepted.
    """
    if pixels.shape[0] == 0:
        return np.zeros((0, 3), dtype=np.float32)
    colors, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    colors = colors.astype(np.float32)
    total = counts.sum()
    remaining = np.ones(colors.shape[0], dtype=bool)
    order = np.lexsort((np.arange(colors.shape[0]), -counts))  # most frequent first
    centres = []
    for seed in order[:max_seeds].tolist():
        if len(centres) >= max_colors or counts[remaining].sum() < min_share * total:
            break
        if not remaining[seed]:
            continue
        near = remaining & (np.linalg.norm(colors - colors[seed], axis=1) < threshold)
        if counts[near].sum() < min_share * total:
            continue
        centres.append((colors[near] * counts[near, None]).sum(0) / counts[near].sum())
        remaining &= ~near
    return np.array(centres, dtype=np.float32).reshape(-1, 3)


def _segment_distance(px: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of (..., 3) colours to the segment a-b (blends of two colours, e.g. anti-aliased edges)."""
    ab = b - a
    t = np.clip(((px - a) @ ab) / max(float(ab @ ab), 1e-6), 0.0, 1.0)
    return np.linalg.norm(px - (a + t[..., None] * ab), axis=-1)


def _erode(mask: np.ndarray) -> np.ndarray:
    """1-pixel erosion of a (H, W) bool mask with a 3x3 cross (outside the image counts as off)."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[0] = out[-1] = False
    out[:, 0] = out[:, -1] = False
    return out


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True in a 1-D bool array."""
    d = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _band_rows(on_side: np.ndarray, k: int, *, margin: int) -> np.ndarray:
    """Rows where background colour k is valid, from on_side (K, H): k seen on the left/right border per row.

    Runs of k are joined across gaps where no other background colour shows on the border (objects covering
    both borders); runs shorter than half the longest are dropped (an object touching the border that happens
    to have the colour of another band); the kept runs are widened by ``margin`` rows. A colour never seen on
    the side borders (only top/bottom) is valid everywhere.
    """
    h = on_side.shape[1]
    mine = on_side[k]
    if not mine.any():
        return np.ones(h, dtype=bool)
    others = np.delete(on_side, k, axis=0).any(axis=0) if on_side.shape[0] > 1 else np.zeros(h, dtype=bool)
    joined = mine.copy()
    runs = _runs(mine)
    for (_, end), (start, _) in zip(runs[:-1], runs[1:], strict=True):
        if not others[end:start].any():
            joined[end:start] = True
    runs = _runs(joined)
    longest = max(e - s for s, e in runs)
    valid = np.zeros(h, dtype=bool)
    for s, e in runs:
        if e - s >= 0.5 * longest:
            valid[max(0, s - margin) : min(h, e + margin)] = True
    return valid


class ColorSegmentsRegionProposer:
    """Classical, deterministic, dependency-free segmenter for flat-shaded synthetic scenes.

    This is the region backend of the offline ``synth`` preset: the synthetic reasoning world renders objects
    as anti-aliased flat-coloured shapes on simple (possibly two-tone: wall + floor, sky + grass) backgrounds,
    and no SAM weights are reachable offline. Steps:

    1. Background colours: greedy colour clusters of the border pixels that hold at least
       ``min_background_share`` of them; each one is valid in the horizontal band of rows where it touches the
       left/right border (all rows if it only shows on the top/bottom border). Blends of two background
       colours where their bands meet (an anti-aliased horizon) also count as background.
    2. Foreground: pixels farther than ``color_threshold`` (RGB Euclidean) from every background colour valid
       in their row.
    3. Objects: 8-connected components of the foreground; with ``split_colors``, components made of several
       substantial flat colours also yield their single-colour parts as extra (lower-scored) candidates.
    4. Score = 0.5 * fill ratio (area / box area) + 0.5 * min(1, area / 5 % of the image); then
       :func:`postprocess_regions`. Labels: ``"object 1"``, ...

    Images larger than ``max_side`` are segmented at a reduced size and the masks upsampled (nearest).
    """

    def __init__(
        self,
        *,
        max_regions: int = 16,
        min_area: float = 0.002,
        iou_threshold: float = 0.7,
        color_threshold: float = 40.0,
        border_width: int = 2,
        min_background_share: float = 0.1,
        max_background_colors: int = 4,
        split_colors: bool = True,
        min_part_share: float = 0.1,
        max_side: int = 256,
    ) -> None:
        check_postprocess_args(max_regions, min_area, iou_threshold)
        if color_threshold <= 0 or border_width < 1 or max_side < 8:
            raise ValueError("color_threshold must be > 0, border_width >= 1 and max_side >= 8")
        if not 0.0 < min_background_share <= 1.0 or not 0.0 < min_part_share <= 1.0:
            raise ValueError("min_background_share and min_part_share must be in (0, 1]")
        self.max_regions = int(max_regions)
        self.min_area = float(min_area)
        self.iou_threshold = float(iou_threshold)
        self.color_threshold = float(color_threshold)
        self.border_width = int(border_width)
        self.min_background_share = float(min_background_share)
        self.max_background_colors = int(max_background_colors)
        self.split_colors = bool(split_colors)
        self.min_part_share = float(min_part_share)
        self.max_side = int(max_side)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> ColorSegmentsRegionProposer:
        """No model to move (kept for interface parity with the SAM backends)."""
        return self

    def foreground(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) bool foreground mask."""
        px = rgb.astype(np.float32)
        h, w, _ = px.shape
        b = min(self.border_width, max(1, min(h, w) // 4))
        side = np.concatenate([px[:, :b], px[:, w - b :]], axis=1)  # (H, 2b, 3)
        border = np.concatenate([side.reshape(-1, 3), px[:b].reshape(-1, 3), px[h - b :].reshape(-1, 3)])
        palette = _cluster_colors(
            border.astype(np.uint8),
            threshold=self.color_threshold,
            min_share=self.min_background_share,
            max_colors=self.max_background_colors,
        )
        if palette.shape[0] == 0:
            return np.ones((h, w), dtype=bool)
        on_side = (np.linalg.norm(side[None] - palette[:, None, None], axis=-1) < self.color_threshold).any(
            axis=2
        )
        valid = np.stack(
            [_band_rows(on_side, k, margin=max(2, b)) for k in range(palette.shape[0])]
        )  # (K, H)
        dist = np.linalg.norm(px[None] - palette[:, None, None, :], axis=-1)  # (K, H, W)
        dist = np.where(valid[:, :, None], dist, np.inf)
        background = dist.min(axis=0) < self.color_threshold  # (H, W)
        for k in range(palette.shape[0]):
            for m in range(k + 1, palette.shape[0]):
                both = np.flatnonzero(valid[k] & valid[m])
                if both.size:
                    seg = _segment_distance(px[both], palette[k], palette[m])  # (R, W)
                    background[both] |= seg < self.color_threshold / 2
        return ~background

    def _candidates(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w, _ = rgb.shape
        fg = self.foreground(rgb)
        labels, n = label_components(fg)
        if n == 0:
            return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
        masks, scores = [], []
        min_pixels = max(4, math.ceil(self.min_area * h * w))
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        for c in range(1, n + 1):
            if areas[c] < min_pixels:
                continue  # specks: anti-aliasing leftovers, noise
            mask = labels == c
            masks.append(mask)
            scores.append(self._score(mask, h * w))
            if self.split_colors:
                for part in self._parts(rgb, mask, min_pixels):
                    masks.append(part)
                    scores.append(0.9 * self._score(part, h * w))
        if not masks:
            return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
        return np.stack(masks), np.asarray(scores, dtype=np.float32)

    @staticmethod
    def _score(mask: np.ndarray, image_area: int) -> float:
        ys = np.flatnonzero(mask.any(axis=1))
        xs = np.flatnonzero(mask.any(axis=0))
        area = float(mask.sum())
        box_area = float((ys[-1] - ys[0] + 1) * (xs[-1] - xs[0] + 1))
        return 0.5 * area / box_area + 0.5 * min(1.0, area / (0.05 * image_area))

    def _parts(self, rgb: np.ndarray, mask: np.ndarray, min_pixels: int) -> list[np.ndarray]:
        """Single-colour parts of a multi-colour component (each >= min_part_share of it)."""
        pixels = rgb[mask]  # (A, 3)
        centres = _cluster_colors(
            pixels, threshold=self.color_threshold, min_share=self.min_part_share, max_colors=8
        )
        if centres.shape[0] < 2:
            return []
        dist = np.linalg.norm(pixels[None].astype(np.float32) - centres[:, None], axis=-1)  # (K, A)
        nearest = dist.argmin(axis=0)
        close = dist.min(axis=0) < self.color_threshold / 2
        assign = np.full(mask.shape, -1, dtype=np.int64)
        assign[mask] = np.where(close, nearest, -1)
        limit = max(min_pixels, math.ceil(self.min_part_share * pixels.shape[0]))
        parts = []
        for k in range(centres.shape[0]):
            sub, n = label_components(assign == k)
            sizes = np.bincount(sub.ravel(), minlength=n + 1)
            for c in range(1, n + 1):
                part = sub == c
                # thin parts (anti-aliased edge bands of one blend colour) mostly vanish under a 1-px erosion
                if sizes[c] >= limit and _erode(part).sum() * 3 >= sizes[c]:
                    parts.append(part)
        return parts

    def __call__(self, image: PIL.Image.Image) -> Regions:
        image = as_rgb_image(image)
        width, height = image.size
        work = image
        if max(width, height) > self.max_side:
            scale = self.max_side / max(width, height)
            work = image.resize(
                (max(1, round(width * scale)), max(1, round(height * scale))), PIL.Image.Resampling.BOX
            )
        masks_np, scores_np = self._candidates(np.asarray(work, dtype=np.uint8))
        masks = torch.from_numpy(masks_np)  # (N, h, w)
        if work is not image and masks.shape[0]:
            masks = F.interpolate(masks[None].float(), size=(height, width), mode="nearest-exact")[0] > 0.5
        elif work is not image:
            masks = torch.zeros(0, height, width, dtype=torch.bool)
        return postprocess_regions(
            masks,
            torch.from_numpy(scores_np),
            max_regions=self.max_regions,
            min_area=self.min_area,
            iou_threshold=self.iou_threshold,
            label_prefix="object",
        )
