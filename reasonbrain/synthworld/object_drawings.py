"""How every object kind of the synth world is drawn in each of its states, in object units (the :class:`Pen`),
plus the colour helpers the backgrounds share. :class:`~reasonbrain.synthworld.render.Renderer` places, caches and
composites these drawings."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import ImageDraw

from reasonbrain.synthworld.world import COLOURS

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (25, 22, 20)
WATER: RGB = (110, 170, 228)


def shade(c: tuple, f: float) -> RGB:
    return tuple(max(0, min(255, round(v * f))) for v in c[:3])  # type: ignore[return-value]


def mix(a: tuple, b: tuple, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a[:3], b[:3]))  # type: ignore[return-value]



class Pen:
    """Draws in object units: x to the right of the slot centre, y up from the ground, 1 unit = ``u`` px."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, gy: float, u: float) -> None:
        self.d, self.cx, self.gy, self.u = draw, cx, gy, u

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return self.cx + x * self.u, self.gy - y * self.u

    def _w(self, width: float) -> int:
        return max(1, round(width * self.u))

    def _ol(self, fill, outline):
        if outline is True:
            return shade(fill, 0.6), self._w(0.035)
        return outline, self._w(0.035) if outline else 0

    def ellipse(self, x, y, rx, ry, fill, outline=None) -> None:
        ol, w = self._ol(fill, outline)
        (x0, y1), (x1, y0) = self.xy(x - rx, y - ry), self.xy(x + rx, y + ry)
        self.d.ellipse([x0, y0, x1, y1], fill=fill, outline=ol, width=w)

    def rect(self, x0, y0, x1, y1, fill, outline=None) -> None:
        ol, w = self._ol(fill, outline)
        (a, d), (c, b) = self.xy(x0, y0), self.xy(x1, y1)
        self.d.rectangle([a, b, c, d], fill=fill, outline=ol, width=w)

    def poly(self, pts, fill, outline=None) -> None:
        ol, w = self._ol(fill, outline)
        self.d.polygon([self.xy(x, y) for x, y in pts], fill=fill, outline=ol, width=w)

    def line(self, pts, fill, width: float = 0.04) -> None:
        self.d.line([self.xy(x, y) for x, y in pts], fill=fill, width=self._w(width), joint="curve")


# ------------------------------------------------------------------------------------ object kinds
def _ice_cube(p: Pen, c: RGB, state: str) -> None:
    def cube(s: float, x: float = 0.0) -> None:
        p.rect(x - s / 2, 0, x + s / 2, s, c, True)
        p.poly([(x - s / 2, s), (x - s / 4, s * 1.2), (x + s * 0.7, s * 1.2), (x + s / 2, s)], mix(c, WHITE, 0.55), True)
        p.poly([(x + s / 2, 0), (x + s * 0.7, s * 0.2), (x + s * 0.7, s * 1.2), (x + s / 2, s)], shade(c, 0.82), True)
        p.line([(x - s * 0.3, s * 0.2), (x - s * 0.3, s * 0.75)], WHITE, 0.05)

    if state == "solid":
        cube(0.6, -0.06)
    elif state == "half":
        p.ellipse(0, 0.03, 0.44, 0.07, WATER, True)
        cube(0.3, -0.08)
    elif state == "puddle":
        p.ellipse(0, 0.04, 0.48, 0.1, WATER, True)
        p.ellipse(-0.15, 0.07, 0.14, 0.025, mix(WATER, WHITE, 0.6))
    elif state == "damp":
        p.ellipse(0, 0.03, 0.4, 0.06, (70, 62, 55, 80))


def _apple(p: Pen, c: RGB, state: str) -> None:
    if state == "rotten":
        brown = COLOURS["brown"]
        p.ellipse(0, 0.2, 0.3, 0.2, brown, True)
        for x, y in ((-0.12, 0.24), (0.1, 0.15), (0.05, 0.3)):
            p.ellipse(x, y, 0.06, 0.05, shade(brown, 0.55))
        p.line([(0, 0.38), (0.04, 0.48)], (80, 55, 30), 0.05)
        return
    p.ellipse(0, 0.36, 0.38, 0.36, c, True)
    p.line([(0, 0.66), (0.05, 0.84)], (95, 60, 30), 0.06)
    p.ellipse(0.15, 0.8, 0.12, 0.05, (70, 150, 50))
    p.ellipse(-0.16, 0.5, 0.07, 0.1, mix(c, WHITE, 0.6))
    if state == "bitten":
        p.ellipse(0.36, 0.4, 0.24, 0.26, (0, 0, 0, 0))  # erase the bite
        p.ellipse(0.06, 0.4, 0.1, 0.2, (252, 242, 200))  # exposed flesh
        p.ellipse(0.04, 0.42, 0.02, 0.04, (60, 40, 20))


def _banana(p: Pen, c: RGB, state: str) -> None:
    col = {"green": (105, 175, 50), "ripe": (248, 218, 55), "spotted": (200, 160, 60), "black": (60, 45, 32)}[state]
    p.ellipse(0, 0.3, 0.48, 0.3, col, True)
    p.ellipse(0.0, 0.56, 0.42, 0.3, (0, 0, 0, 0))  # carve the crescent
    p.rect(-0.47, 0.3, -0.38, 0.46, (90, 70, 40))
    if state == "spotted":
        for x, y in ((-0.3, 0.16), (-0.12, 0.07), (0.08, 0.06), (0.26, 0.12), (0.38, 0.24), (0.0, 0.14)):
            p.ellipse(x, y, 0.06, 0.045, (95, 60, 25))


def _candle(p: Pen, c: RGB, state: str) -> None:
    if state == "stub":
        p.ellipse(0, 0.03, 0.34, 0.06, mix(c, WHITE, 0.4), True)
        p.rect(-0.14, 0, 0.14, 0.28, c, True)
        p.line([(0, 0.28), (0, 0.34)], BLACK, 0.03)
        return
    p.rect(-0.14, 0, 0.14, 1.0, c, True)
    p.line([(0, 1.0), (0, 1.08)], BLACK, 0.03)
    if state == "lit":
        p.ellipse(0, 1.24, 0.3, 0.3, (255, 210, 80, 110))  # glow
        p.ellipse(0, 1.22, 0.13, 0.22, (250, 130, 25))
        p.ellipse(0, 1.17, 0.065, 0.12, (255, 240, 120))


def _glass(p: Pen, c: RGB, state: str) -> None:
    tint = mix(c, WHITE, 0.45)
    if state == "full":
        p.poly([(-0.24, 0.82), (0.24, 0.82), (0.19, 0), (-0.19, 0)], tint, True)
        p.poly([(-0.22, 0.55), (0.22, 0.55), (0.19, 0.02), (-0.19, 0.02)], mix(c, WATER, 0.5))
        p.line([(-0.14, 0.15), (-0.17, 0.7)], WHITE, 0.04)
    elif state == "spilled":
        p.ellipse(0.08, 0.03, 0.42, 0.07, WATER, True)
        p.poly([(-0.42, 0.0), (-0.42, 0.38), (0.36, 0.34), (0.36, 0.04)], tint, True)
    elif state == "shattered":
        p.ellipse(0, 0.02, 0.36, 0.05, WATER)
        for pts in (((-0.45, 0), (-0.33, 0.16), (-0.27, 0)), ((-0.18, 0), (-0.05, 0.22), (0.02, 0.02)),
                    ((0.08, 0), (0.2, 0.12), (0.26, 0)), ((0.3, 0.0), (0.44, 0.18), (0.46, 0.02))):
            p.poly(pts, tint, True)


def _paper(p: Pen, c: RGB, state: str) -> None:
    if state == "flat":
        p.poly([(-0.3, 0), (0.3, 0), (0.3, 0.86), (-0.3, 0.86)], c, True)
        for y in (0.66, 0.5, 0.34, 0.18):
            p.line([(-0.2, y), (0.2, y)], (150, 150, 170), 0.025)
    elif state == "burnt":
        p.poly([(-0.3, 0), (0.3, 0), (0.24, 0.22), (0.08, 0.16), (-0.06, 0.3), (-0.26, 0.2)], (45, 38, 35), True)
        for x in (-0.15, 0.05, 0.2):
            p.ellipse(x, 0.12, 0.035, 0.03, (240, 110, 30))
    elif state == "crumpled":
        pts = [(0.28 * math.cos(a) * (1 + 0.15 * math.sin(3 * a)), 0.26 + 0.26 * math.sin(a) * (1 + 0.15 * math.cos(4 * a)))
               for a in np.linspace(0, 2 * math.pi, 11)[:-1]]
        p.poly(pts, c, True)
        p.line([(-0.15, 0.2), (0.05, 0.3), (0.15, 0.15)], shade(c, 0.6), 0.025)


def _plant(p: Pen, c: RGB, state: str) -> None:
    if state == "wilted":
        leaf = (165, 130, 55)
        for s in (-1, 1):
            p.poly([(0, 0.42), (s * 0.3, 0.52), (s * 0.44, 0.3), (s * 0.36, 0.4)], leaf, True)
        p.line([(0, 0.4), (0.02, 0.62), (0.14, 0.58)], leaf, 0.05)
    else:
        leaf = (50, 150, 60)
        p.line([(0, 0.4), (0, 1.05)], (40, 110, 45), 0.05)
        for x, y, rx, ry in ((-0.24, 0.7, 0.16, 0.08), (0.24, 0.62, 0.16, 0.08), (-0.18, 0.95, 0.13, 0.07), (0.2, 0.9, 0.13, 0.07)):
            p.ellipse(x, y, rx, ry, leaf, True)
        if state == "blooming":
            for x, y in ((0, 1.12), (-0.26, 1.02), (0.27, 0.98)):
                p.ellipse(x, y, 0.13, 0.13, (240, 90, 150), True)
                p.ellipse(x, y, 0.05, 0.05, (250, 220, 60))
    p.poly([(-0.26, 0.42), (0.26, 0.42), (0.19, 0), (-0.19, 0)], c, True)
    p.rect(-0.3, 0.36, 0.3, 0.46, shade(c, 0.85), True)


def _balloon(p: Pen, c: RGB, state: str) -> None:
    if state == "inflated":
        p.line([(0, 0), (0.04, 0.5), (0, 0.95)], (90, 90, 90), 0.025)
        p.ellipse(0, 1.38, 0.3, 0.4, c, True)
        p.poly([(-0.05, 0.95), (0.05, 0.95), (0, 1.0)], c)
        p.ellipse(-0.1, 1.52, 0.06, 0.1, mix(c, WHITE, 0.6))
    elif state == "deflated":
        p.line([(0.12, 0.03), (0.45, 0.02)], (90, 90, 90), 0.025)
        p.poly([(-0.3, 0), (-0.22, 0.14), (-0.05, 0.1), (0.05, 0.18), (0.16, 0.06), (0.14, 0)], c, True)
    else:  # popped
        p.line([(-0.45, 0.02), (0.1, 0.03)], (90, 90, 90), 0.025)
        for x in (-0.3, 0.05, 0.3):
            p.poly([(x - 0.08, 0), (x, 0.1), (x + 0.08, 0.02)], c, True)


def _ball(p: Pen, c: RGB, state: str) -> None:
    if state == "flat":
        p.ellipse(0, 0.07, 0.42, 0.08, c, True)
        p.line([(-0.3, 0.08), (0.3, 0.08)], WHITE, 0.03)
        return
    y = 1.32 if state == "held" else 0.28
    p.ellipse(0, y, 0.28, 0.28, c, True)
    p.line([(-0.27, y), (0.27, y)], WHITE, 0.05)
    p.ellipse(-0.1, y + 0.12, 0.06, 0.05, mix(c, WHITE, 0.7))


def _egg(p: Pen, c: RGB, state: str) -> None:
    shell = {"white": (246, 242, 230), "brown": (205, 150, 100)}.get(_name(c), c)
    if state == "whole":
        p.ellipse(0, 0.3, 0.22, 0.3, shell, True)
    elif state == "cracked":
        p.ellipse(0, 0.04, 0.42, 0.07, (252, 252, 245), True)
        p.ellipse(0.02, 0.07, 0.12, 0.08, (250, 175, 30), True)
        p.poly([(-0.46, 0), (-0.38, 0.12), (-0.32, 0.05), (-0.26, 0.1), (-0.24, 0)], shell, True)
    else:  # hatched: chick between two shell halves
        p.ellipse(0, 0.22, 0.22, 0.22, (250, 215, 50), True)
        p.ellipse(0.06, 0.54, 0.15, 0.15, (250, 215, 50), True)
        p.poly([(0.19, 0.57), (0.31, 0.53), (0.19, 0.49)], (240, 120, 30))
        p.ellipse(0.1, 0.58, 0.03, 0.03, BLACK)
        for s in (-1, 1):
            p.poly([(s * 0.46, 0), (s * 0.46, 0.16), (s * 0.4, 0.1), (s * 0.34, 0.18), (s * 0.28, 0.1), (s * 0.26, 0)], shell, True)


def _snowman(p: Pen, c: RGB, state: str) -> None:
    snow = (245, 247, 252)
    if state == "melted":
        p.ellipse(0, 0.04, 0.47, 0.08, mix(WATER, WHITE, 0.5), True)
        p.ellipse(-0.2, 0.08, 0.1, 0.06, snow)
        p.poly([(0.0, 0.06), (0.22, 0.04), (0.0, 0.1)], (240, 120, 30))
        p.rect(0.1, 0.06, 0.42, 0.12, c, True)
        return
    lean = 0.0 if state == "intact" else 0.1
    s = 1.0 if state == "intact" else 0.78
    p.ellipse(0, 0.3 * s, 0.34 * s, 0.3 * s, snow, True)
    p.ellipse(lean, 0.78 * s, 0.22 * s, 0.2 * s, snow, True)
    p.rect(lean - 0.2 * s, 0.56 * s, lean + 0.2 * s, 0.63 * s, c, True)
    p.poly([(lean + 0.02, 0.78 * s), (lean + 0.2, 0.75 * s), (lean + 0.02, 0.72 * s)], (240, 120, 30))
    for dx in (-0.07, 0.07):
        p.ellipse(lean + dx, 0.86 * s, 0.025, 0.025, BLACK)


def _tree(p: Pen, c: RGB, state: str) -> None:
    bark = (110, 75, 45)
    p.rect(-0.07, 0, 0.07, 0.75, bark, True)
    if state == "bare":
        for pts in (((0, 0.6), (-0.3, 1.0)), ((0, 0.7), (0.28, 1.1)), ((0, 0.75), (0.02, 1.25)), ((-0.15, 0.8), (-0.38, 0.85))):
            p.line(pts, bark, 0.05)
        for x, y in ((-0.3, 1.02), (0.28, 1.12), (0.02, 1.27)):
            p.ellipse(x, y, 0.08, 0.035, WHITE)
        p.ellipse(0, 0.02, 0.4, 0.05, WHITE)
        return
    leaf = c if state == "summer" else (235, 125, 35)
    for x, y, r in ((0, 1.05, 0.36), (-0.2, 0.92, 0.24), (0.2, 0.92, 0.24)):
        p.ellipse(x, y, r, r, leaf, True)
    if state == "autumn":
        for x in (-0.35, -0.1, 0.25, 0.4):
            p.ellipse(x, 0.02, 0.05, 0.03, (200, 90, 30))


def _seesaw(p: Pen, c: RGB, state: str) -> None:
    p.poly([(-0.12, 0), (0.12, 0), (0, 0.3)], (120, 120, 125), True)
    heavy_left = state in ("level_l", "tilt_l")
    a = 0.0 if state.startswith("level") else math.asin(0.26 / 0.46) * (1 if heavy_left else -1)
    ux, uy = math.cos(a), math.sin(a)  # unit vector from the pivot to the right end (up when heavy on the left)
    left, right = (-0.46 * ux, 0.3 - 0.46 * uy), (0.46 * ux, 0.3 + 0.46 * uy)
    p.line([left, right], c, 0.07)
    nx, ny = -uy, ux  # normal (up from the plank)
    hx, hy = (left if heavy_left else right)
    lx, ly = (right if heavy_left else left)
    hx += (0.1 if heavy_left else -0.1) * ux
    hy += (0.1 if heavy_left else -0.1) * uy
    rock = [(hx + dx * ux + dy * nx, hy + dx * uy + dy * ny) for dx, dy in
            ((-0.13, 0.03), (0.13, 0.03), (0.15, 0.2), (0.04, 0.32), (-0.11, 0.26))]
    p.poly(rock, (100, 96, 92), True)
    lx -= (0.08 if heavy_left else -0.08) * ux
    ly -= (0.08 if heavy_left else -0.08) * uy
    p.ellipse(lx + 0.1 * nx, ly + 0.1 * ny, 0.065, 0.065, (245, 245, 245), True)


def _ice_cream(p: Pen, c: RGB, state: str) -> None:
    cone = (215, 165, 95)
    if state == "scoop":
        p.poly([(-0.18, 0.55), (0.18, 0.55), (0, 0)], cone, True)
        p.ellipse(0, 0.68, 0.22, 0.19, c, True)
    elif state == "melted":
        p.ellipse(0, 0.04, 0.47, 0.08, c, True)
        p.poly([(-0.1, 0.06), (0.35, 0.16), (0.35, -0.02)], cone, True)
    else:  # dropped: the scoop on the ground, the empty cone next to it
        p.poly([(-0.42, 0.34), (-0.14, 0.34), (-0.28, 0)], cone, True)
        p.ellipse(0.22, 0.13, 0.2, 0.13, c, True)


def _bread(p: Pen, c: RGB, state: str) -> None:
    crumb = {"white": (242, 226, 185), "brown": (185, 140, 90)}.get(_name(c), c)
    if state == "toasted":
        crumb = (190, 120, 45)
    crust = shade(crumb, 0.6)
    p.ellipse(-0.15, 0.55, 0.17, 0.17, crumb)
    p.ellipse(0.15, 0.55, 0.17, 0.17, crumb)
    p.rect(-0.3, 0, 0.3, 0.5, crumb)
    p.line([(-0.3, 0), (-0.3, 0.55), (-0.15, 0.72), (0.15, 0.72), (0.3, 0.55), (0.3, 0), (-0.3, 0)], crust, 0.05)
    if state == "mouldy":
        for x, y, r in ((-0.12, 0.45, 0.12), (0.13, 0.24, 0.13), (-0.14, 0.13, 0.1), (0.14, 0.56, 0.1), (0.0, 0.33, 0.08)):
            p.ellipse(x, y, r, r * 0.9, (70, 130, 80))


def _sandcastle(p: Pen, c: RGB, state: str) -> None:
    sand = mix(c, (230, 200, 140), 0.5)
    if state == "washed":
        p.ellipse(0, 0.04, 0.46, 0.12, shade(sand, 0.85), True)
        return
    p.rect(-0.4, 0, 0.4, 0.3, sand, True)
    for x in (-0.34, 0.12) if state == "built" else (-0.34,):
        p.rect(x, 0.3, x + 0.22, 0.62, sand, True)
        for k in range(3):
            p.rect(x + k * 0.08, 0.62, x + k * 0.08 + 0.05, 0.7, sand)
    if state == "broken":  # right half collapsed into a heap
        p.rect(0.0, 0, 0.42, 0.32, (0, 0, 0, 0))
        p.poly([(-0.02, 0), (0.48, 0), (0.3, 0.16), (0.1, 0.2)], shade(sand, 0.85), True)
    else:
        p.rect(-0.06, 0, 0.06, 0.16, shade(sand, 0.6))


def _bucket(p: Pen, c: RGB, state: str) -> None:
    metal = (170, 174, 182) if state != "rusty" else (175, 85, 40)
    body = [(-0.32, 0.7), (0.32, 0.7), (0.24, 0), (-0.24, 0)]
    if state == "dented":  # crushed flat and lopsided
        body = [(-0.42, 0.34), (-0.05, 0.22), (0.34, 0.4), (0.2, 0.16), (0.4, 0), (-0.34, 0), (-0.2, 0.16)]
        p.poly(body, shade(metal, 0.85), True)
        return
    p.poly(body, metal, True)
    p.line([(-0.3, 0.7), (-0.2, 0.95), (0.2, 0.95), (0.3, 0.7)], (80, 80, 85), 0.03)
    if state == "rusty":
        for x, y in ((-0.1, 0.2), (0.12, 0.45), (0.05, 0.12)):
            p.ellipse(x, y, 0.07, 0.06, (110, 50, 25))
    else:
        p.line([(-0.15, 0.1), (-0.2, 0.6)], WHITE, 0.04)


def _log(p: Pen, c: RGB, state: str) -> None:
    wood = (135, 85, 45)
    if state == "ash":
        p.ellipse(0, 0.08, 0.4, 0.12, (125, 122, 120), True)
        for x, y in ((-0.2, 0.08), (0.05, 0.14), (0.22, 0.06)):
            p.ellipse(x, y, 0.05, 0.035, (250, 110, 30))
        p.rect(-0.1, 0.02, 0.12, 0.07, (40, 35, 30))
        return
    if state == "split":  # two half-logs lying apart, their pale split faces up
        for x0, x1 in ((-0.48, -0.06), (0.06, 0.48)):
            p.rect(x0, 0, x1, 0.16, wood, True)
            p.rect(x0, 0.16, x1, 0.24, (225, 185, 125), True)
        return
    p.rect(-0.42, 0, 0.42, 0.34, wood, True)
    p.ellipse(0.42, 0.17, 0.08, 0.17, (215, 175, 120), True)
    p.ellipse(0.42, 0.17, 0.035, 0.075, (160, 110, 65))


OBJECT_DRAWINGS: dict[str, Callable[[Pen, RGB, str], None]] = {
    "ice_cube": _ice_cube, "apple": _apple, "banana": _banana, "candle": _candle, "glass": _glass,
    "paper": _paper, "plant": _plant, "balloon": _balloon, "ball": _ball, "egg": _egg, "snowman": _snowman,
    "tree": _tree, "seesaw": _seesaw, "ice_cream": _ice_cream, "bread": _bread, "sandcastle": _sandcastle,
    "bucket": _bucket, "log": _log,
}


def _name(c: RGB) -> str:
    return next((k for k, v in COLOURS.items() if v == tuple(c)), "")

