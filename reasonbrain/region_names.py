"""Names for region proposals that a person can check against the image.

Region backends number their regions (``"object 3"`` from the colour segmenter, ``"region 3"`` from SAM 2);
a number says nothing to someone looking at the picture. :func:`region_names` names each region by what is
known: a backend's own label when it has one, else the region's colour and where it sits, and the bound
region (the one the ID Controller attended to most) also by the object the instruction referred to.

Pure numpy; nothing is loaded or downloaded.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image

from reasonbrain.regions import BACKGROUND_LABEL, Regions

# Region backends -> what a person calls them (see reasonbrain.regions.build_region_proposer)
PROPOSER_NAMES: Mapping[str, str] = {
    "color_segments": "colour segmenter",
    "transformers_sam2": "SAM 2",
    "sam2": "SAM 2",
}
# finalize_regions' numbered labels: "<prefix> <n>"; the prefix tells the backend family of old stored steps
_NUMBERED = re.compile(r"^(object|region) \d+$")
_PREFIX_BACKEND = {"object": "color_segments", "region": "transformers_sam2"}

# Colours that are not in the synthetic world's palette (photos, backgrounds)
_EXTRA_COLOURS: Mapping[str, tuple[int, int, int]] = {
    "dark blue": (25, 35, 90),
    "light blue": (135, 190, 235),
    "teal": (30, 140, 140),
    "dark green": (30, 80, 40),
    "beige": (215, 195, 155),
    "dark red": (120, 25, 30),
    "light grey": (200, 200, 205),
    "dark grey": (80, 80, 86),
}


@functools.cache
def _palette() -> tuple[list[str], np.ndarray]:
    """(names, Lab values): the synthetic world's named colours first (its objects get their own words), then
    a few more for photos."""
    from reasonbrain.synthworld.world import COLOURS

    colours = {**dict(COLOURS), **{k: v for k, v in _EXTRA_COLOURS.items() if k not in COLOURS}}
    names = list(colours)
    return names, _lab(np.asarray([colours[n] for n in names], dtype=np.float64))


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3) in 0..255 -> CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]])
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def colour_name(rgb: Sequence[float]) -> str:
    """The nearest named colour (CIELAB distance) to an (r, g, b) in 0..255."""
    names, lab = _palette()
    distance = np.linalg.norm(lab - _lab(np.asarray(rgb, dtype=np.float64)), axis=-1)
    return names[int(np.argmin(distance))]


def horizontal_position(box: Sequence[float], width: int) -> str:
    """``"left"``, ``"centre"`` or ``"right"``: the third of the image the box's centre falls in."""
    centre = (float(box[0]) + float(box[2])) / 2 / max(1, width)
    return "left" if centre < 1 / 3 else ("right" if centre > 2 / 3 else "centre")


def proposer_name(backend: str | None, labels: Sequence[str] = ()) -> str | None:
    """What produced the regions, in words: from the backend config field when stored, else from the numbered
    labels' prefix (``"object"``: the colour segmenter, ``"region"``: SAM 2). None when nothing tells."""
    if backend:
        return PROPOSER_NAMES.get(backend, backend)
    for label in labels:
        match = _NUMBERED.match(label)
        if match:
            return PROPOSER_NAMES[_PREFIX_BACKEND[match.group(1)]]
    return None


def is_numbered(label: str) -> bool:
    """True for a backend's meaningless numbered label (``"object 3"``, ``"region 3"``)."""
    return bool(_NUMBERED.match(label))


def region_names(
    image: PIL.Image.Image | np.ndarray,
    regions: Regions,
    *,
    bound: int | None = None,
    bound_object: str | None = None,
) -> list[str]:
    """One short name per region, in the regions' order: a backend's own label when it has one (SAM 2 with a
    labeller, a detector), else the region's colour (median over its pixels) and position (``"red, left"``).
    The background stays ``"background"``. ``bound``: the region the instruction was bound to; with
    ``bound_object`` (the referenced object's name) it is named ``“candle” · red, left``."""
    width, height = regions.size
    pil = image if isinstance(image, PIL.Image.Image) else PIL.Image.fromarray(np.asarray(image, dtype=np.uint8))
    pixels = np.asarray(pil.convert("RGB").resize((width, height), PIL.Image.Resampling.NEAREST))  # (H, W, 3)
    masks = regions.masks.detach().cpu().numpy()  # (M, H, W) bool
    boxes = regions.boxes.detach().cpu().numpy()
    names = []
    for i, label in enumerate(regions.labels):
        if i == len(regions) - 1 and label == BACKGROUND_LABEL:
            names.append(BACKGROUND_LABEL)
            continue
        if not is_numbered(label):
            name = label
        elif masks[i].any():
            colour = colour_name(np.median(pixels[masks[i]], axis=0))
            name = f"{colour}, {horizontal_position(boxes[i], width)}"
        else:
            name = "empty"
        if i == bound and bound_object:
            name = f"“{bound_object}” · {name}"
        names.append(name)
    return names


def bound_object_name(referenced_object: Mapping[str, Any] | None) -> str | None:
    """The instruction's object as the parser / MLLM found it (``"green snowman"``), or None."""
    if not referenced_object or not referenced_object.get("name"):
        return None
    colour = (referenced_object.get("attributes") or {}).get("colour")
    name = str(referenced_object["name"]).replace("_", " ")
    return f"{colour} {name}" if colour and colour not in name else name


__all__ = [
    "PROPOSER_NAMES",
    "bound_object_name",
    "colour_name",
    "horizontal_position",
    "is_numbered",
    "proposer_name",
    "region_names",
]
