"""Is an image a scene of the synthetic world? A few explainable image statistics, no learned model.

A model trained only on the synthetic world (``synth_only(config)``) turns a photograph into a coloured blur;
the app warns as soon as such an image is uploaded. The world's scenes are 64 px pixel art: large flat areas
(walls, ground, table, object bodies; the sky is a smooth gradient), a small palette, hard edges and saturated
colours. Photographs, even scaled down to 64 px, have texture (many small colour steps), many colours, and
are often grey.

The image is first brought to the world's 64 px grid (area average; a crisp 8x upscale of a scene comes back
exactly, a bilinear upscale or a JPEG of it nearly so). Four statistics are measured there. The bounds lie
outside the range of 8,300 rendered scenes (all splits, examples included; the range is in the third column)
with a margin; ``benchmarks/synth_domain.py`` measures scenes (rescaled and JPEG variants too) and photographs:

===========  ================================================================  =============  ===============
statistic    what it is                                                         8,300 scenes   bound
===========  ================================================================  =============  ===============
``flat``     share of pixels whose right and lower neighbours differ by at      0.515 - 0.853  >= ``FLAT_MIN``
             most 4 levels (of 255) in every channel
``texture``  share of neighbour steps of 5-24 levels (shading, grain, fur)      0.062 - 0.203  <= ``TEXTURE_MAX``
``palette``  share of pixels in the 16 most common colours (32 levels per       0.609 - 0.936  >= ``PALETTE_MIN``
             channel)
``colour``   mean saturation (max - min) / max of the pixels                    0.067 - 0.644  >= ``COLOUR_MIN``
===========  ================================================================  =============  ===============

An image is in the domain when all four are inside their bounds. ``score`` is the largest of the four
normalised distances (0: a typical scene, 1: at a bound, above 1: outside), and ``reason`` names the
statistics outside their bounds in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # pragma: no cover
    from reasonbrain.configuration import ReasonBrainConfig

GRID = 64  # the world's native resolution: statistics are measured on this grid
FLAT_STEP = 4  # neighbour difference (0-255, any channel) still counted as flat
TEXTURE_STEPS = (5, 24)  # neighbour differences counted as texture (larger ones are edges)
PALETTE_LEVELS = 32  # levels per channel when counting colours
PALETTE_SIZE = 16
FLAT_MIN = 0.40
TEXTURE_MAX = 0.26
PALETTE_MIN = 0.56
COLOUR_MIN = 0.035
# a typical scene (medians over the test split): where the score is 0
TYPICAL = {"flat": 0.65, "texture": 0.13, "palette": 0.78, "colour": 0.48}
SYNTHWORLD_VOCABULARY = "synthworld"


@dataclass(frozen=True)
class DomainCheck:
    """The verdict on one image: ``in_domain``, a ``score`` (<= 1 inside), the statistics and a ``reason``."""

    in_domain: bool
    score: float
    reason: str
    stats: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"in_domain": self.in_domain, "score": round(self.score, 3), "reason": self.reason,
                "stats": {k: round(v, 4) for k, v in self.stats.items()}}


def synth_only(config: ReasonBrainConfig) -> bool:
    """True when the model knows only the synthetic world: its referring vocabulary is the world's object
    names (the bundled ``synth`` checkpoint); the single place this is decided."""
    return config.defaults.referring_vocabulary == SYNTHWORLD_VOCABULARY


def on_grid(image: Image.Image) -> np.ndarray:
    """(h, w, 3) int16 RGB on the world's 64 px grid: transparency flattened onto white, larger images area-
    averaged to 64 x 64 (smaller ones are measured as they are: upscaling would invent flat areas)."""
    if image.mode != "RGB":
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        image = white.convert("RGB")
    if min(image.size) > GRID:
        image = image.resize((GRID, GRID), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.int16)


def image_stats(image: Image.Image) -> dict[str, float]:
    """The four statistics (see the module docstring) of ``image``."""
    rgb = on_grid(image)
    dx = np.abs(rgb[:, 1:] - rgb[:, :-1]).max(-1)  # (h, w-1) largest channel step to the right
    dy = np.abs(rgb[1:] - rgb[:-1]).max(-1)  # (h-1, w) ... downwards
    if dx.size == 0 or dy.size == 0:
        raise ValueError(f"image is {image.width}x{image.height} px: too small to judge")
    flat = float(((dx[:-1] <= FLAT_STEP) & (dy[:, :-1] <= FLAT_STEP)).mean())
    lo, hi = TEXTURE_STEPS
    texture = float((((dx >= lo) & (dx <= hi)).mean() + ((dy >= lo) & (dy <= hi)).mean()) / 2)
    q = rgb // (256 // PALETTE_LEVELS)
    codes = (q[..., 0] * PALETTE_LEVELS + q[..., 1]) * PALETTE_LEVELS + q[..., 2]
    counts = np.sort(np.unique(codes, return_counts=True)[1])[::-1]
    palette = float(counts[:PALETTE_SIZE].sum() / codes.size)
    high, low = rgb.max(-1), rgb.min(-1)
    colour = float(((high - low) / np.maximum(high, 1)).mean())
    return {"flat": flat, "texture": texture, "palette": palette, "colour": colour}


def check_image(image: Image.Image) -> DomainCheck:
    """Judge whether ``image`` (any PIL image) looks like a scene of the synthetic world."""
    stats = image_stats(image)
    distances = {
        "flat": (TYPICAL["flat"] - stats["flat"]) / (TYPICAL["flat"] - FLAT_MIN),
        "texture": (stats["texture"] - TYPICAL["texture"]) / (TEXTURE_MAX - TYPICAL["texture"]),
        "palette": (TYPICAL["palette"] - stats["palette"]) / (TYPICAL["palette"] - PALETTE_MIN),
        "colour": (TYPICAL["colour"] - stats["colour"]) / (TYPICAL["colour"] - COLOUR_MIN),
    }
    score = max(0.0, *distances.values())
    outside = [name for name, d in distances.items() if d > 1.0]
    if not outside:
        reason = "flat colour areas, few colours and hard edges, like the synthetic world's scenes"
        return DomainCheck(True, score, reason, stats)
    words = {
        "flat": f"only {stats['flat']:.0%} of it is flat colour (the world's scenes: at least {FLAT_MIN:.0%})",
        "texture": f"{stats['texture']:.0%} of its neighbouring pixels differ by fine texture steps "
                   f"(scenes: at most {TEXTURE_MAX:.0%})",
        "palette": f"its 16 main colours cover only {stats['palette']:.0%} of it (scenes: at least {PALETTE_MIN:.0%})",
        "colour": "it is grey or nearly so (the world's scenes are colourful)",
    }
    reason = "it looks like a photograph, not a scene of the synthetic world: " + "; ".join(words[n] for n in outside)
    return DomainCheck(False, score, reason, stats)


def world_summary(*, short: bool = False) -> str:
    """What a synth-only model knows, in one phrase: object kinds, settings (not when ``short``: four objects
    named, the rest counted) and the four reasoning categories."""
    from reasonbrain.synthworld.world import BACKGROUNDS, CATEGORIES, KINDS, object_kinds

    names = [KINDS[k].name for k in object_kinds()]
    reasoning = f"{', '.join(CATEGORIES[:-1])} or {CATEGORIES[-1]} reasoning"
    if short:
        return (f"64-pixel cartoon scenes with {len(names)} kinds of object ({', '.join(names[:4])}, …) and "
                f"hypothetical instructions that need {reasoning}")
    return (f"64-pixel cartoon scenes ({', '.join(BACKGROUNDS)}) with a few of {len(names)} kinds of object "
            f"({', '.join(names)}), changed by hypothetical instructions that need {reasoning}")


__all__ = ["DomainCheck", "check_image", "image_stats", "on_grid", "synth_only", "world_summary"]
