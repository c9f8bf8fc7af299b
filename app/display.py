"""How the images a person must judge are shown: filling their boxes, pixel art upscaled crisply.

The synthetic world renders at 64 px. Shown 300-700 px wide, a browser's smooth filter turns it into a blur, so
images this small get the ``rb-pixel-art`` class (CSS in ``app.ui.CSS``: nearest-neighbour upscaling). Photos
keep smooth scaling: nearest-neighbour would alias them when they are shown smaller than they are.
"""

from __future__ import annotations

import logging
from typing import Any

import PIL.Image

logger = logging.getLogger(__name__)

PIXEL_ART_MAX_PX = 128  # an image no larger than this on both sides is upscaled at least 2x on screen
JUDGE_CLASS = "rb-judge"  # the image fills its box (object-fit: contain), whatever its size
PIXEL_ART_CLASS = "rb-pixel-art"


def is_pixel_art(path: Any) -> bool:
    """Whether the image at ``path`` is small enough to be shown upscaled with nearest neighbour."""
    if not isinstance(path, str) or not path:
        return False
    try:
        with PIL.Image.open(path) as im:  # reads the header only
            return max(im.size) <= PIXEL_ART_MAX_PX
    except (OSError, ValueError) as err:
        logger.info("cannot read the size of %s: %s", path, err)
        return False


def image_classes(*paths: Any) -> list[str]:
    """``elem_classes`` for images shown side by side: all crisp if any is pixel art (they must match)."""
    return [JUDGE_CLASS, PIXEL_ART_CLASS] if any(is_pixel_art(p) for p in paths) else [JUDGE_CLASS]
