"""Region proposals: the SAM 2 region masks that FRCE's region branch pools over (paper sec. 3.2).

Every backend returns a :class:`Regions` object built by the same deterministic post-processing
(:func:`postprocess_regions`): tiny masks dropped, duplicates removed by mask-IoU NMS, regions sorted by
score, capped to ``max_regions - 1``, and a ``"background"`` region (the complement of the kept masks)
always appended last.

Backends (pick one with :func:`build_region_proposer`, dispatching on the config field ``backend``):

- ``"transformers_sam2"`` -- :class:`TransformersSam2RegionProposer`: ``transformers.Sam2Model`` with our own
  automatic mask generation (a grid of point prompts). Runs on CPU and GPU without torchvision. The default.
- ``"sam2"`` -- :class:`Sam2PackageRegionProposer`: Meta's ``sam2`` package and its
  ``SAM2AutomaticMaskGenerator`` (GPU installs only: ``pip install -r requirements-gpu.txt``).
- ``"color_segments"`` -- :class:`ColorSegmentsRegionProposer`: a classical segmenter for the flat-shaded
  synthetic world; the region backend of the offline ``synth`` preset.

Nothing here downloads anything except the ``from_pretrained`` class methods.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # pragma: no cover
    from transformers import Sam2Config, Sam2Model

logger = logging.getLogger(__name__)

BACKGROUND_LABEL = "background"
BACKENDS = ("transformers_sam2", "sam2", "color_segments")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MASK_ENCODING = (
    "rle-row-major"  # alternating run lengths over the row-major flattened mask, starting with False
)
_MAX_IOU_PIXELS = 128 * 128  # mask IoU for NMS is computed on at most this many (strided) pixels per mask


# ----------------------------------------------------------------------------------------------------------------
# Regions
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Regions:
    """Region masks of one image. The last region is always the background.

    masks:  (M, H, W) bool, at the size of the image the proposer was given
    labels: M strings; the last one is ``"background"``
    scores: (M,) float32 in [0, 1]; the background scores 1.0
    boxes:  (M, 4) float32, xyxy in pixel-edge coordinates (``x1``/``y1`` exclusive); an empty mask has box 0
    """

    masks: torch.Tensor
    labels: list[str]
    scores: torch.Tensor
    boxes: torch.Tensor

    def __post_init__(self) -> None:
        if self.masks.ndim != 3 or self.masks.dtype != torch.bool:
            raise ValueError(
                f"Regions.masks must be a (M, H, W) bool tensor, got {tuple(self.masks.shape)} "
                f"{self.masks.dtype}"
            )
        m = self.masks.shape[0]
        if m < 1 or len(self.labels) != m or self.labels[-1] != BACKGROUND_LABEL:
            raise ValueError(
                f"Regions needs at least the background region, one label per mask ({m} masks, "
                f"{len(self.labels)} labels) and {BACKGROUND_LABEL!r} as the last label; build it with "
                "postprocess_regions()"
            )
        if tuple(self.scores.shape) != (m,) or tuple(self.boxes.shape) != (m, 4):
            raise ValueError(
                f"Regions.scores must be ({m},) and boxes ({m}, 4); got {tuple(self.scores.shape)} "
                f"and {tuple(self.boxes.shape)}"
            )

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image the masks belong to (PIL convention)."""
        return int(self.masks.shape[2]), int(self.masks.shape[1])

    @property
    def num_objects(self) -> int:
        """Number of regions excluding the background."""
        return len(self) - 1

    def resized(self, size: tuple[int, int]) -> Regions:
        """Regions at another image size. ``size`` is (width, height) as in ``PIL.Image.resize``.

        Masks are resampled nearest-neighbour (so the background stays the exact complement of the other
        masks), boxes are scaled.
        """
        width, height = int(size[0]), int(size[1])
        if width < 1 or height < 1:
            raise ValueError(f"resized() needs a positive (width, height), got {size}")
        w0, h0 = self.size
        if (width, height) == (w0, h0):
            return Regions(self.masks.clone(), list(self.labels), self.scores.clone(), self.boxes.clone())
        masks = F.interpolate(self.masks[None].float(), size=(height, width), mode="nearest-exact")[0] > 0.5
        scale = torch.tensor([width / w0, height / h0, width / w0, height / h0], dtype=torch.float32)
        boxes = self.boxes.float() * scale.to(self.boxes.device)
        return Regions(masks, list(self.labels), self.scores.clone(), boxes)

    def to(self, device: torch.device | str) -> Regions:
        return Regions(
            self.masks.to(device), list(self.labels), self.scores.to(device), self.boxes.to(device)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (masks as row-major run-length encodings); inverse of :meth:`from_dict`."""
        height, width = int(self.masks.shape[1]), int(self.masks.shape[2])
        masks = self.masks.detach().cpu().numpy()
        return {
            "size": [height, width],
            "mask_encoding": MASK_ENCODING,
            "masks": [encode_mask_rle(m) for m in masks],
            "labels": list(self.labels),
            "scores": [float(s) for s in self.scores.detach().cpu().tolist()],
            "boxes": [[float(v) for v in b] for b in self.boxes.detach().cpu().tolist()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Regions:
        if data.get("mask_encoding") != MASK_ENCODING:
            raise ValueError(
                f"Unknown mask encoding {data.get('mask_encoding')!r}; expected {MASK_ENCODING!r}"
            )
        height, width = (int(v) for v in data["size"])
        masks = (
            np.stack([decode_mask_rle(c, (height, width)) for c in data["masks"]])
            if data["masks"]
            else (np.zeros((0, height, width), dtype=bool))
        )
        return cls(
            masks=torch.from_numpy(masks),
            labels=list(data["labels"]),
            scores=torch.tensor(data["scores"], dtype=torch.float32),
            boxes=torch.tensor(data["boxes"], dtype=torch.float32).reshape(-1, 4),
        )


def encode_mask_rle(mask: np.ndarray) -> list[int]:
    """Run lengths of a (H, W) bool mask flattened row-major, alternating False/True, starting with False."""
    flat = np.asarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return [int(c) for c in counts]


def decode_mask_rle(counts: Sequence[int], hw: tuple[int, int]) -> np.ndarray:
    height, width = hw
    if sum(counts) != height * width:
        raise ValueError(f"RLE counts sum to {sum(counts)} but the mask has {height * width} pixels")
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, np.asarray(counts, dtype=np.int64)).reshape(height, width)


@runtime_checkable
class RegionProposer(Protocol):
    """Anything that turns one RGB image into :class:`Regions` (at most ``max_regions``, background included)."""

    max_regions: int

    def __call__(self, image: PIL.Image.Image) -> Regions: ...


# ----------------------------------------------------------------------------------------------------------------
# Shared post-processing
# ----------------------------------------------------------------------------------------------------------------
def _check_postprocess_args(max_regions: int, min_area: float, iou_threshold: float) -> None:
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
    _check_postprocess_args(max_regions, min_area, iou_threshold)
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


# ----------------------------------------------------------------------------------------------------------------
# Helpers for the model side
# ----------------------------------------------------------------------------------------------------------------
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


def _as_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    if not isinstance(image, PIL.Image.Image):
        raise ValueError(
            f"region proposers take a PIL image, got {type(image).__name__}; use "
            "reasonbrain.image_io.load_image() to read files, bytes or arrays"
        )
    if image.width < 1 or image.height < 1:
        raise ValueError(f"cannot propose regions for an empty image of size {image.size}")
    return image if image.mode == "RGB" else image.convert("RGB")


# ----------------------------------------------------------------------------------------------------------------
# a) transformers.Sam2Model with our own automatic mask generation
# ----------------------------------------------------------------------------------------------------------------
def point_grid(points_per_side: int) -> torch.Tensor:
    """(n*n, 2) xy points in [0, 1], cell centres of a regular grid (as SAM's automatic mask generator)."""
    offset = 1.0 / (2 * points_per_side)
    side = torch.linspace(offset, 1 - offset, points_per_side, dtype=torch.float64)
    ys, xs = torch.meshgrid(side, side, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1).float()


def stability_scores(logits: torch.Tensor, *, mask_threshold: float, offset: float) -> torch.Tensor:
    """IoU between the masks binarised at ``mask_threshold +/- offset``. logits (N, h, w) -> (N,)."""
    flat = logits.flatten(1)
    inter = (flat > mask_threshold + offset).sum(dim=1).float()
    union = (flat > mask_threshold - offset).sum(dim=1).float()
    return torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(inter))


class TransformersSam2RegionProposer:
    """SAM 2 automatic mask generation on ``transformers.Sam2Model`` (CPU or GPU, no torchvision).

    A regular grid of ``points_per_side**2`` positive point prompts is decoded in batches of
    ``points_per_batch`` against one image embedding (computed once per image), three masks per point
    (multimask output). Candidates are filtered by the predicted IoU (> ``pred_iou_thresh``) and the stability
    score (>= ``stability_score_thresh``), then de-duplicated and capped as in :func:`postprocess_regions`; the
    stability score, ``min_area`` and the mask IoU are all measured on the decoder's low-resolution logits
    (S/4 x S/4, the squashed image frame) rather than after upsampling as ``sam2`` does, which keeps memory
    bounded on CPU. Only the kept masks are upsampled (bilinear) to the image size and thresholded.

    Preprocessing follows SAM 2 (``SAM2Transforms``): the image is resized to the model's square input size
    (no letterbox padding: SAM 2 is trained on square-resized images), scaled to [0, 1] and normalised with the
    ImageNet mean/std. Masks are labelled ``"region 1"``, ``"region 2"``, ... (SAM has no classes).
    """

    def __init__(
        self,
        *,
        model: Sam2Model,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        max_regions: int = 16,
        min_area: float = 0.002,
        iou_threshold: float = 0.7,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        _check_postprocess_args(max_regions, min_area, iou_threshold)
        if points_per_side < 1 or points_per_batch < 1:
            raise ValueError(
                f"points_per_side and points_per_batch must be >= 1, got {points_per_side} and "
                f"{points_per_batch}"
            )
        if len(image_mean) != 3 or len(image_std) != 3:
            raise ValueError("image_mean and image_std need 3 values (RGB)")
        self.model = model.eval()
        self.points_per_side = int(points_per_side)
        self.points_per_batch = int(points_per_batch)
        self.pred_iou_thresh = float(pred_iou_thresh)
        self.stability_score_thresh = float(stability_score_thresh)
        self.stability_score_offset = float(stability_score_offset)
        self.mask_threshold = float(mask_threshold)
        self.max_regions = int(max_regions)
        self.min_area = float(min_area)
        self.iou_threshold = float(iou_threshold)
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)
        # The prompt encoder's frame: points are given in pixels of the (square) model input.
        input_size = model.config.prompt_encoder_config.image_size
        self.input_size = int(input_size[0] if isinstance(input_size, (list, tuple)) else input_size)
        backbone_size = model.config.vision_config.backbone_config.image_size
        backbone_size = backbone_size if isinstance(backbone_size, (list, tuple)) else [backbone_size] * 2
        if list(backbone_size) != [self.input_size, self.input_size]:
            raise ValueError(
                f"Sam2Config mismatch: backbone image_size {backbone_size} vs prompt encoder "
                f"image_size {self.input_size}; they must describe the same square input"
            )

    # --- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, config: Sam2Config | dict[str, Any], *, seed: int | None = 0, **kwargs: Any
    ) -> TransformersSam2RegionProposer:
        """Random-weight model from a ``Sam2Config`` (or its kwargs); no download. For tests and benchmarks."""
        from transformers import Sam2Config, Sam2Model

        if isinstance(config, dict):
            config = Sam2Config(**config)
        if seed is None:
            model = Sam2Model(config)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = Sam2Model(config)
        return cls(model=model, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> TransformersSam2RegionProposer:
        """Load transformers-format SAM 2.1 weights, e.g. ``"facebook/sam2.1-hiera-large"`` or a local folder.

        ``kwargs`` are the proposer's own arguments (``points_per_side``, ``max_regions``, ...).
        """
        from transformers import Sam2Model

        model_kwargs: dict[str, Any] = {"revision": revision, "local_files_only": local_files_only}
        if dtype is not None:
            model_kwargs["dtype"] = dtype
        model = Sam2Model.from_pretrained(pretrained_model_name_or_path, **model_kwargs)
        if "image_mean" not in kwargs and "image_std" not in kwargs:
            mean_std = _local_mean_std(pretrained_model_name_or_path)
            if mean_std is not None:
                kwargs["image_mean"], kwargs["image_std"] = mean_std
        proposer = cls(model=model, **kwargs)
        if device is not None:
            proposer.to(device)
        return proposer

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> TransformersSam2RegionProposer:
        self.model.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # --- inference --------------------------------------------------------------------------------------------
    def preprocess(self, image: PIL.Image.Image) -> torch.Tensor:
        """PIL RGB -> (1, 3, S, S) normalised pixel values (S = the model's input size)."""
        image = _as_rgb(image)
        resized = image.resize((self.input_size, self.input_size), PIL.Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, S, S)
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        return ((x - mean) / std)[None]  # (1, 3, S, S)

    @torch.inference_mode()
    def __call__(self, image: PIL.Image.Image) -> Regions:
        image = _as_rgb(image)
        width, height = image.size
        device, dtype = self.device, self.dtype
        pixel_values = self.preprocess(image).to(device=device, dtype=dtype)  # (1, 3, S, S)
        image_embeddings = self.model.get_image_embeddings(pixel_values)  # once per image

        points = point_grid(self.points_per_side) * self.input_size  # (P, 2) in model-input pixels
        cand_logits: list[torch.Tensor] = []
        cand_scores: list[torch.Tensor] = []
        for start in range(0, points.shape[0], self.points_per_batch):
            batch = points[start : start + self.points_per_batch]  # (p, 2)
            input_points = batch.view(1, -1, 1, 2).to(device=device, dtype=dtype)  # (1, p, 1, 2)
            input_labels = torch.ones(1, batch.shape[0], 1, dtype=torch.long, device=device)  # (1, p, 1)
            out = self.model(
                image_embeddings=image_embeddings,
                input_points=input_points,
                input_labels=input_labels,
                multimask_output=True,
            )
            logits = out.pred_masks[0].flatten(0, 1).float()  # (p * 3, h, w) low-res
            iou = out.iou_scores[0].flatten().float()  # (p * 3,)
            keep = torch.ones_like(iou, dtype=torch.bool)
            if self.pred_iou_thresh > 0.0:
                keep &= iou > self.pred_iou_thresh
            stab = stability_scores(
                logits, mask_threshold=self.mask_threshold, offset=self.stability_score_offset
            )
            if self.stability_score_thresh > 0.0:
                keep &= stab >= self.stability_score_thresh
            cand_logits.append(logits[keep])
            cand_scores.append(iou[keep].clamp(0.0, 1.0))

        logits = torch.cat(cand_logits)  # (N, h, w)
        scores = torch.cat(cand_scores)  # (N,)
        keep = select_regions(
            logits > self.mask_threshold,
            scores,
            max_keep=self.max_regions - 1,
            min_area=self.min_area,
            iou_threshold=self.iou_threshold,
        ).to(logits.device)
        kept_logits = logits[keep]  # (K, h, w)
        if kept_logits.shape[0]:
            full = F.interpolate(
                kept_logits[:, None], size=(height, width), mode="bilinear", align_corners=False
            )
            masks = full[:, 0] > self.mask_threshold  # (K, H, W)
        else:
            masks = torch.zeros(0, height, width, dtype=torch.bool)
        return finalize_regions(masks, scores[keep], label_prefix="region")


def _local_mean_std(path: str | os.PathLike) -> tuple[list[float], list[float]] | None:
    """image_mean/image_std from a local folder's preprocessor_config.json, if there is one."""
    file = os.path.join(os.fspath(path), "preprocessor_config.json")
    if not os.path.isfile(file):
        return None
    with open(file, encoding="utf-8") as f:
        data = json.load(f)
    if "image_mean" in data and "image_std" in data:
        return list(data["image_mean"]), list(data["image_std"])
    return None


# ----------------------------------------------------------------------------------------------------------------
# b) Meta's sam2 package (GPU installs)
# ----------------------------------------------------------------------------------------------------------------
_SAM2_MISSING = (
    "The 'sam2' region backend needs Meta's sam2 package (and torchvision), which only the GPU install "
    "carries: pip install -r requirements-gpu.txt. On CPU use backend 'transformers_sam2' instead."
)


def _import_sam2_generator() -> type:
    try:
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    except ImportError as err:
        raise ImportError(f"{_SAM2_MISSING} ({err})") from err
    return SAM2AutomaticMaskGenerator


class Sam2PackageRegionProposer:
    """Regions from ``sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator``.

    ``generator`` is anything with ``generate(np.ndarray (H, W, 3) uint8) -> list[dict]`` whose dicts carry
    ``segmentation`` ((H, W) bool array, i.e. ``output_mode="binary_mask"``) and ``predicted_iou``; the
    records go through :func:`postprocess_regions` (scored by the predicted IoU; boxes are recomputed from the
    masks). Without a generator, ``model_cfg`` (a sam2 hydra config name such as
    ``"configs/sam2.1/sam2.1_hiera_t.yaml"``) builds a random-weight model; real weights come from
    :meth:`from_pretrained`. Labels: ``"region 1"``, ...
    """

    def __init__(
        self,
        *,
        generator: Any | None = None,
        model_cfg: str | None = None,
        device: torch.device | str | None = None,
        max_regions: int = 16,
        min_area: float = 0.002,
        iou_threshold: float = 0.7,
        **generator_kwargs: Any,
    ) -> None:
        _check_postprocess_args(max_regions, min_area, iou_threshold)
        if generator is None:
            if model_cfg is None:
                raise ValueError(
                    "Sam2PackageRegionProposer needs a mask `generator`, a sam2 `model_cfg` (random "
                    "weights) or Sam2PackageRegionProposer.from_pretrained('facebook/sam2.1-hiera-large')"
                )
            generator_cls = _import_sam2_generator()
            from sam2.build_sam import build_sam2

            model = build_sam2(
                model_cfg, ckpt_path=None, device=str(_default_device(device)), apply_postprocessing=False
            )
            generator = generator_cls(model, **generator_kwargs)
        elif generator_kwargs:
            raise ValueError(
                f"generator kwargs {sorted(generator_kwargs)} are only used when the proposer builds "
                "the generator itself; configure the injected generator instead"
            )
        if not callable(getattr(generator, "generate", None)):
            raise ValueError("generator must have a generate(image: np.ndarray) -> list[dict] method")
        self.generator = generator
        self.max_regions = int(max_regions)
        self.min_area = float(min_area)
        self.iou_threshold = float(iou_threshold)
        self._autocast_dtype: torch.dtype | None = None

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        model_cfg: str | None = None,
        device: torch.device | str | None = None,
        max_regions: int = 16,
        min_area: float = 0.002,
        iou_threshold: float = 0.7,
        **generator_kwargs: Any,
    ) -> Sam2PackageRegionProposer:
        """A Hub id known to sam2 (``"facebook/sam2.1-hiera-large"``) or a local ``.pt`` file plus ``model_cfg``."""
        generator_cls = _import_sam2_generator()
        from sam2.build_sam import build_sam2, build_sam2_hf

        dev = str(_default_device(device))
        path = os.fspath(pretrained_model_name_or_path)
        if os.path.isfile(path):
            if model_cfg is None:
                raise ValueError(
                    f"{path} is a checkpoint file; also pass model_cfg (e.g. "
                    "'configs/sam2.1/sam2.1_hiera_l.yaml')"
                )
            model = build_sam2(model_cfg, ckpt_path=path, device=dev, apply_postprocessing=False)
        else:
            try:
                model = build_sam2_hf(path, device=dev, apply_postprocessing=False)
            except KeyError as err:
                raise ValueError(
                    f"{path!r} is neither a local .pt checkpoint nor a Hub id the sam2 package knows (e.g. "
                    "'facebook/sam2.1-hiera-large', 'facebook/sam2.1-hiera-tiny')"
                ) from err
        generator = generator_cls(model, **generator_kwargs)
        return cls(
            generator=generator, max_regions=max_regions, min_area=min_area, iou_threshold=iou_threshold
        )

    def _model(self) -> torch.nn.Module | None:
        predictor = getattr(self.generator, "predictor", None)
        return getattr(predictor, "model", None)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Sam2PackageRegionProposer:
        """Moves the sam2 model; a half ``dtype`` runs ``generate`` under CUDA autocast (as sam2 recommends)."""
        model = self._model()
        if device is not None:
            if model is None:
                raise ValueError("the injected generator exposes no predictor.model to move")
            model.to(device)
        if dtype is not None:
            self._autocast_dtype = None if dtype == torch.float32 else dtype
        return self

    def __call__(self, image: PIL.Image.Image) -> Regions:
        image = _as_rgb(image)
        array = np.asarray(image, dtype=np.uint8)  # (H, W, 3)
        model = self._model()
        device_type = next(model.parameters()).device.type if model is not None else "cpu"
        if self._autocast_dtype is not None and device_type == "cuda":
            with torch.inference_mode(), torch.autocast("cuda", dtype=self._autocast_dtype):
                records = self.generator.generate(array)
        else:
            with torch.inference_mode():
                records = self.generator.generate(array)
        return self.records_to_regions(records, image.size)

    def records_to_regions(self, records: Sequence[dict[str, Any]], size: tuple[int, int]) -> Regions:
        """SAM's list-of-dicts output -> :class:`Regions` (``size`` is the image's (width, height))."""
        width, height = size
        masks, scores = [], []
        for i, rec in enumerate(records):
            seg = rec.get("segmentation")
            if not isinstance(seg, np.ndarray):
                raise ValueError(
                    f"record {i}: 'segmentation' must be an (H, W) array; build the generator with "
                    "output_mode='binary_mask'"
                )
            if seg.shape != (height, width):
                raise ValueError(
                    f"record {i}: mask shape {seg.shape} does not match the image ({height}, {width})"
                )
            masks.append(torch.from_numpy(seg.astype(bool, copy=False)))
            scores.append(float(rec.get("predicted_iou", 1.0)))
        if masks:
            mask_t = torch.stack(masks)  # (N, H, W)
            score_t = torch.tensor(scores, dtype=torch.float32).clamp(0.0, 1.0)
        else:
            mask_t = torch.zeros(0, height, width, dtype=torch.bool)
            score_t = torch.zeros(0)
        return postprocess_regions(
            mask_t,
            score_t,
            max_regions=self.max_regions,
            min_area=self.min_area,
            iou_threshold=self.iou_threshold,
            label_prefix="region",
        )


def _default_device(device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


# ----------------------------------------------------------------------------------------------------------------
# c) classical colour segments (the offline synth preset)
# ----------------------------------------------------------------------------------------------------------------
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
        _check_postprocess_args(max_regions, min_area, iou_threshold)
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
        image = _as_rgb(image)
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


# ----------------------------------------------------------------------------------------------------------------
# d) dispatch
# ----------------------------------------------------------------------------------------------------------------
_CONFIG_KEYS = (
    "backend",
    "pretrained_model_name_or_path",
    "config",
    "points_per_side",
    "max_regions",
    "min_area",
    "iou_threshold",
)


def build_region_proposer(config: dict[str, Any] | Any, *, load_pretrained: bool = True) -> RegionProposer:
    """Build a region proposer from a regions config (a dict or ``RegionsConfig``), dispatching on ``backend``.

    Keys: ``backend`` (one of ``"transformers_sam2"``, ``"sam2"``, ``"color_segments"``),
    ``pretrained_model_name_or_path`` (Hub id or local path), ``config`` (dict), ``points_per_side``,
    ``max_regions``, ``min_area``, ``iou_threshold``. What ``config`` holds depends on the backend:

    - ``transformers_sam2``: ``Sam2Config`` kwargs, used (random weights, no download) when there is no
      pretrained path or ``load_pretrained`` is False; ``pred_iou_thresh`` / ``stability_score_thresh`` /
      ``points_per_batch`` inside it are proposer arguments instead.
    - ``sam2``: ``SAM2AutomaticMaskGenerator`` kwargs, plus ``model_cfg`` (a sam2 hydra config) for random weights.
    - ``color_segments``: :class:`ColorSegmentsRegionProposer` kwargs (``color_threshold``, ...).

    Only a pretrained path with ``load_pretrained=True`` touches the network (through ``from_pretrained``).
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise ValueError(f"build_region_proposer takes a dict or RegionsConfig, got {type(config).__name__}")
    unknown = set(config) - set(_CONFIG_KEYS)
    if unknown:
        raise ValueError(f"Unknown region config keys {sorted(unknown)}; valid keys: {list(_CONFIG_KEYS)}")
    backend = config.get("backend", "transformers_sam2")
    if backend not in BACKENDS:
        raise ValueError(f"Unknown region backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    path = config.get("pretrained_model_name_or_path")
    extra = dict(config.get("config") or {})
    common = {k: config[k] for k in ("max_regions", "min_area", "iou_threshold") if config.get(k) is not None}

    if backend == "color_segments":
        return ColorSegmentsRegionProposer(**common, **extra)

    points_per_side = config.get("points_per_side")
    if backend == "transformers_sam2":
        proposer_keys = (
            "pred_iou_thresh",
            "stability_score_thresh",
            "stability_score_offset",
            "points_per_batch",
            "mask_threshold",
        )
        kw = dict(common, **{k: extra.pop(k) for k in proposer_keys if k in extra})
        if points_per_side is not None:
            kw["points_per_side"] = points_per_side
        if path and load_pretrained:
            return TransformersSam2RegionProposer.from_pretrained(path, **kw)
        if not extra:
            raise ValueError(
                "backend 'transformers_sam2' needs pretrained_model_name_or_path (e.g. "
                "'facebook/sam2.1-hiera-large') or a 'config' dict of Sam2Config kwargs"
            )
        return TransformersSam2RegionProposer.from_config(extra, **kw)

    # backend == "sam2"
    model_cfg = extra.pop("model_cfg", None)
    if points_per_side is not None:
        extra["points_per_side"] = points_per_side
    if path and load_pretrained:
        return Sam2PackageRegionProposer.from_pretrained(path, model_cfg=model_cfg, **common, **extra)
    if model_cfg is None:
        raise ValueError(
            "backend 'sam2' needs pretrained_model_name_or_path (e.g. 'facebook/sam2.1-hiera-large') "
            "or config={'model_cfg': 'configs/sam2.1/sam2.1_hiera_t.yaml'} for random weights"
        )
    return Sam2PackageRegionProposer(model_cfg=model_cfg, **common, **extra)


__all__ = [
    "BACKENDS",
    "BACKGROUND_LABEL",
    "ColorSegmentsRegionProposer",
    "RegionProposer",
    "Regions",
    "Sam2PackageRegionProposer",
    "TransformersSam2RegionProposer",
    "build_region_proposer",
    "decode_mask_rle",
    "encode_mask_rle",
    "finalize_regions",
    "label_components",
    "masks_to_boxes",
    "masks_to_feature_grid",
    "pad_regions",
    "point_grid",
    "postprocess_regions",
    "select_regions",
    "stability_scores",
]
