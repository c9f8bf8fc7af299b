"""The :class:`Regions` container (masks, labels, scores, boxes; background last), its run-length mask
encoding, the :class:`RegionProposer` interface every backend implements and the :class:`BoxSegmenter` one the
SAM 2 backends add."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

BACKGROUND_LABEL = "background"
MASK_ENCODING = (
    "rle-row-major"  # alternating run lengths over the row-major flattened mask, starting with False
)


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


@runtime_checkable
class BoxSegmenter(Protocol):
    """A proposer that can also be prompted with a box: ``segment_box(image, normalised xyxy box)`` -> the object's
    (H, W) bool mask at the image size and its predicted IoU in [0, 1] (the SAM 2 backends)."""

    def segment_box(
        self, image: PIL.Image.Image, box: tuple[float, float, float, float]
    ) -> tuple[torch.Tensor, float]: ...


def check_normalised_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    """A box prompt checked: xyxy in [0, 1] with a positive width and height."""
    values = tuple(float(v) for v in box)
    if len(values) != 4 or not (0.0 <= values[0] < values[2] <= 1.0 and 0.0 <= values[1] < values[3] <= 1.0):
        raise ValueError(f"a box prompt is normalised xyxy with 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1, got {box}")
    return values  # type: ignore[return-value]


def as_rgb_image(image: PIL.Image.Image) -> PIL.Image.Image:
    """A proposer's input checked (a non-empty PIL image) and converted to RGB."""
    if not isinstance(image, PIL.Image.Image):
        raise ValueError(
            f"region proposers take a PIL image, got {type(image).__name__}; use "
            "reasonbrain.image_io.load_image() to read files, bytes or arrays"
        )
    if image.width < 1 or image.height < 1:
        raise ValueError(f"cannot propose regions for an empty image of size {image.size}")
    return image if image.mode == "RGB" else image.convert("RGB")
