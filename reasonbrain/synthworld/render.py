"""Procedural, deterministic PIL renderer of synth-world scenes.

Scenes are drawn at ``supersample`` x the output resolution and downsampled with LANCZOS (anti-aliasing).
Geometry is resolution-independent (fractions of the image), so 64, 128 and 256 px show the same scene.

Objects stand on a ground line in evenly spaced slots. Every state of an object is drawn inside its own
layer (82% of the slot width with 3 slots, 76% with 4): neighbouring layers are >= 16 supersampled px
(4 output px) apart, wider than the LANCZOS support (3 output px), so changing one object leaves the
pixels of every other object's box identical. Backgrounds and object layers are pure functions of their parameters (texture
randomness is seeded by the background variant) and are cached per ``Renderer``. What each object kind looks
like in each state is drawn in ``object_drawings.py``; this module draws the backgrounds and composes scenes.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np
from PIL import Image, ImageDraw

from reasonbrain.synthworld.object_drawings import OBJECT_DRAWINGS, RGB, WHITE, Pen, mix, shade
from reasonbrain.synthworld.world import COLOURS, INDOOR_BACKGROUNDS, Background, Scene, SceneObject

GROUND_Y = 0.86  # where objects stand, fraction of the image height
LAYER_WIDTH = {3: 0.82, 4: 0.76}  # object layer width per slot count, fraction of the slot width
UNIT_MARGIN = 0.02  # object unit (full width of the widest state) = layer width - this
MIN_RESOLUTION, MAX_RESOLUTION = 64, 1024  # below 64 px the slot gaps get narrower than the LANCZOS support


class _LRU:
    def __init__(self, maxsize: int) -> None:
        self.maxsize, self.data = maxsize, OrderedDict()

    def get(self, key: Hashable, make: Callable):
        if key in self.data:
            self.data.move_to_end(key)
            return self.data[key]
        value = self.data[key] = make()
        if len(self.data) > self.maxsize:
            self.data.popitem(last=False)
        return value


# ------------------------------------------------------------------------------------- backgrounds
_SKY = {"day": ((70, 140, 222), (178, 212, 242)), "sunset": ((92, 62, 140), (250, 150, 72)),
         "night": ((8, 12, 42), (32, 42, 88)), "snowy": ((150, 155, 166), (208, 210, 218))}
_TINT = {"day": (1.0, 1.0, 1.0), "sunset": (1.0, 0.8, 0.7), "night": (0.36, 0.4, 0.6), "snowy": (0.9, 0.92, 0.98)}
_PALETTES = {  # (first palette, second palette) per background kind
    "kitchen": ([(238, 228, 200), (205, 222, 235), (210, 236, 215), (245, 214, 190)], [(156, 104, 62), (182, 132, 84), (120, 80, 50)]),
    "room": ([(225, 215, 235), (240, 235, 220), (200, 215, 200), (235, 205, 205)], [(170, 120, 75), (120, 95, 80), (190, 160, 120)]),
    "garden": ([(245, 245, 240), (150, 105, 65), (120, 150, 190), (200, 90, 70)], [(95, 170, 70), (75, 150, 60), (115, 180, 85)]),
    "outdoor": ([(80, 140, 80), (110, 150, 90), (95, 125, 110), (130, 120, 150)], [(120, 185, 80), (185, 175, 90), (150, 190, 100)]),
    "beach": ([(40, 120, 190), (30, 150, 170), (60, 100, 170), (50, 135, 200)], [(236, 212, 155), (226, 196, 140), (240, 222, 175)]),
}
SNOW: RGB = (238, 242, 250)


def sky_box_fraction(bg: Background) -> tuple[float, float, float, float]:
    """Where the sky shows: the window indoors, the band above the horizon outdoors (fractions)."""
    if bg.kind == "kitchen":
        return (0.34, 0.07, 0.66, 0.38)
    if bg.kind == "room":
        return (0.08, 0.1, 0.36, 0.42) if bg.variant % 2 == 0 else (0.64, 0.1, 0.92, 0.42)
    return (0.0, 0.0, 1.0, {"garden": 0.42, "outdoor": 0.6, "beach": 0.48}[bg.kind])


def _render_background(bg: Background, size: int) -> Image.Image:
    S, time = size, bg.time
    top, bottom = (np.array(c, np.float32) for c in _SKY[time])
    t = np.linspace(0.0, 1.0, S, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(top + (bottom - top) * t, (S, S, 3))
    img = Image.fromarray(np.ascontiguousarray(sky).round().astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    indoor = bg.kind in INDOOR_BACKGROUNDS
    sx0, sy0, sx1, sy1 = (v * S for v in sky_box_fraction(bg))
    sw, sh = sx1 - sx0, sy1 - sy0
    rs = random.Random(f"sky:{bg.kind}:{bg.variant}")
    if time == "day":
        x, y, r = sx0 + 0.8 * sw, sy0 + 0.25 * sh, 0.05 * S
        d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 230, 90))
        for _ in range(2):
            cx, cy, r = sx0 + rs.uniform(0.1, 0.6) * sw, sy0 + rs.uniform(0.2, 0.5) * sh, rs.uniform(0.03, 0.05) * S
            for dx in (-1, 0, 1):
                d.ellipse([cx + dx * r - r, cy - r * (0.7 if dx else 1), cx + dx * r + r, cy + r * 0.6], fill=(250, 250, 252))
    elif time == "sunset":
        r = 0.1 * S
        d.ellipse([sx0 + 0.6 * sw - r, sy1 - r * 0.8, sx0 + 0.6 * sw + r, sy1 + r * 1.2], fill=(250, 95, 45))
    elif time == "night":
        for _ in range(30):
            x, y, r = sx0 + rs.random() * sw, sy0 + rs.random() * sh, rs.uniform(0.002, 0.005) * S
            d.ellipse([x - r, y - r, x + r, y + r], fill=(250, 250, 220))
        mx, my, r = sx0 + 0.7 * sw, sy0 + 0.3 * sh, 0.05 * S
        d.ellipse([mx - r, my - r, mx + r, my + r], fill=(245, 242, 215))
        d.ellipse([mx - 0.4 * r, my - 1.1 * r, mx + 1.6 * r, my + 0.9 * r], fill=_SKY["night"][0])
    tint = _TINT[time]
    indoor_tint = tuple(0.6 + 0.4 * v for v in tint)

    def T(c: tuple, inside: bool = False) -> RGB:  # colour under this time of day
        return tuple(max(0, min(255, round(v * f))) for v, f in zip(c, indoor_tint if inside else tint))  # type: ignore

    snow_ground = time == "snowy" and not indoor
    first, second = _PALETTES[bg.kind]
    a, b = first[bg.variant % 4 % len(first)], second[bg.variant // 4 % len(second)]
    rt = random.Random(f"tex:{bg.kind}:{bg.variant}")  # texture layout, independent of the time of day
    if indoor:
        wall, x0, y0, x1, y1 = T(a, True), sx0, sy0, sx1, sy1
        floor_y = 0.7 * S if bg.kind == "kitchen" else 0.68 * S
        for box in ([0, 0, S, y0], [0, y1, S, floor_y], [0, y0, x0, y1], [x1, y0, S, y1]):
            d.rectangle(box, fill=wall)
        fw = 0.012 * S
        d.rectangle([x0 - fw, y0 - fw, x1 + fw, y1 + fw], outline=T((250, 250, 250), True), width=round(fw * 1.5))
        d.line([((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1)], fill=T((250, 250, 250), True), width=round(fw))
        d.line([(x0, (y0 + y1) / 2), (x1, (y0 + y1) / 2)], fill=T((250, 250, 250), True), width=round(fw))
        if time == "snowy":
            d.rectangle([x0, y1 - 0.03 * S, x1, y1], fill=SNOW)
        if bg.kind == "kitchen":
            for k in range(8):  # backsplash tiles
                d.line([(k * S / 8, 0.55 * S), (k * S / 8, floor_y)], fill=T(shade(a, 0.9), True), width=max(1, S // 256))
            d.line([(0, 0.55 * S), (S, 0.55 * S)], fill=T(shade(a, 0.9), True), width=max(1, S // 256))
            d.rectangle([0, floor_y, S, S], fill=T(b, True))
            d.rectangle([0, floor_y, S, floor_y + 0.025 * S], fill=T(mix(b, WHITE, 0.25), True))
            for _ in range(7):
                y = rt.uniform(0.76, 0.98) * S
                d.line([(rt.uniform(0, 0.5) * S, y), (rt.uniform(0.5, 1) * S, y)], fill=T(shade(b, 0.82), True), width=max(1, S // 200))
        else:
            frame = shade(first[(bg.variant + 1) % 4], 0.7)
            px0 = 0.62 * S if bg.variant % 2 == 0 else 0.1 * S
            d.rectangle([px0, 0.16 * S, px0 + 0.22 * S, 0.36 * S], fill=T((240, 235, 220), True), outline=T(frame, True), width=round(0.012 * S))
            d.polygon([(px0 + 0.03 * S, 0.33 * S), (px0 + 0.1 * S, 0.22 * S), (px0 + 0.18 * S, 0.33 * S)], fill=T((90, 140, 90), True))
            d.rectangle([0, floor_y, S, S], fill=T(b, True))
            d.rectangle([0, floor_y, S, floor_y + 0.02 * S], fill=T(shade(b, 0.7), True))
            for k in range(1, 6):
                d.line([(k * S / 6 + rt.uniform(-0.03, 0.03) * S, floor_y), (k * S / 6 - 0.1 * S, S)], fill=T(shade(b, 0.85), True), width=max(1, S // 200))
    else:
        hy = sy1
        if bg.kind == "garden":  # fence on the horizon, lawn below
            fence, grass = T(a), (SNOW if snow_ground else T(b))
            d.rectangle([0, 0.58 * S, S, S], fill=grass)
            for k in range(12):
                x = (k + 0.5) * S / 12
                d.rectangle([x - 0.025 * S, hy, x + 0.025 * S, 0.6 * S], fill=fence)
                d.polygon([(x - 0.025 * S, hy), (x, hy - 0.03 * S), (x + 0.025 * S, hy)], fill=fence)
            d.rectangle([0, 0.47 * S, S, 0.5 * S], fill=fence)
            blade = (215, 222, 235) if snow_ground else shade(T(b), 0.78)
            for _ in range(60):
                x, y = rt.random() * S, rt.uniform(0.62, 1.0) * S
                d.line([(x, y), (x + rt.uniform(-0.01, 0.01) * S, y - 0.02 * S)], fill=blade, width=max(1, S // 200))
        elif bg.kind == "outdoor":  # rolling hills, open field
            hill, field = (SNOW if snow_ground else T(a)), (SNOW if snow_ground else T(b))
            if snow_ground:
                hill = (222, 228, 240)
            d.ellipse([-0.3 * S, hy - 0.12 * S, 0.6 * S, hy + 0.3 * S], fill=hill)
            d.ellipse([0.35 * S, hy - 0.08 * S, 1.3 * S, hy + 0.3 * S], fill=shade(hill, 0.93))
            d.rectangle([0, hy + 0.04 * S, S, S], fill=field)
            for _ in range(40):
                x, y = rt.random() * S, rt.uniform(hy + 0.06 * S, S)
                d.ellipse([x, y, x + 0.012 * S, y + 0.006 * S], fill=(215, 222, 235) if snow_ground else shade(field, 0.85))
        else:  # beach: sea band, sand
            sea, sand = T(a), ((228, 232, 240) if snow_ground else T(b))
            d.rectangle([0, hy, S, 0.62 * S], fill=sea)
            for k in range(5):
                y = hy + (k + 0.5) * (0.62 * S - hy) / 5
                off = rt.uniform(0, 0.2) * S
                for x in np.arange(-off, S, 0.2 * S):
                    d.arc([x, y - 0.01 * S, x + 0.1 * S, y + 0.01 * S], 180, 360, fill=mix(sea, WHITE, 0.4), width=max(1, S // 256))
            d.rectangle([0, 0.62 * S, S, S], fill=sand)
            d.ellipse([-0.1 * S, 0.6 * S, 1.1 * S, 0.66 * S], fill=mix(sand, sea, 0.25))
            d.rectangle([0, 0.63 * S, S, 0.64 * S], fill=sand)
            for _ in range(30):
                x, y = rt.random() * S, rt.uniform(0.66, 1.0) * S
                d.point([(x, y)], fill=shade(sand, 0.8))
        if time == "snowy":  # falling snow over the whole outdoor scene
            for _ in range(70):
                x, y, r = rs.random() * S, rs.random() * S, rs.uniform(0.003, 0.007) * S
                d.ellipse([x - r, y - r, x + r, y + r], fill=(250, 250, 255))
    if time == "snowy" and indoor:
        for _ in range(25):
            x, y, r = sx0 + rs.random() * sw, sy0 + rs.random() * sh * 0.9, rs.uniform(0.003, 0.006) * S
            d.ellipse([x - r, y - r, x + r, y + r], fill=(250, 250, 255))
    return img.convert("RGBA")


# ---------------------------------------------------------------------------------------- renderer
class Renderer:
    """Renders scenes at ``resolution`` (square), drawing at ``supersample`` x and downsampling with LANCZOS."""

    def __init__(self, resolution: int = 64, *, supersample: int = 4, cache_mb: int = 256) -> None:
        if not isinstance(resolution, int) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
            raise ValueError(f"resolution must be an int in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], got {resolution!r}")
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        self.resolution, self.supersample, self.size = resolution, supersample, resolution * supersample
        self._backgrounds = _LRU(max(4, cache_mb * 2**20 // (self.size * self.size * 4)))
        self._layers = _LRU(4096)

    def background(self, bg: Background) -> Image.Image:
        return self._backgrounds.get((bg.kind, bg.variant, bg.time), lambda: _render_background(bg, self.size))

    def _layer(self, obj: SceneObject, n_slots: int) -> tuple[Image.Image, tuple[int, int]]:
        """(cropped RGBA layer, its top-left in the canvas) for an object; the drawing is cached."""
        key = (obj.kind, obj.colour, obj.state, n_slots, obj.size)
        layer, (bx, by) = self._layers.get(key, lambda: self._draw_layer(obj, n_slots))
        cell = self.size / n_slots
        return layer, (round((obj.slot + 0.5) * cell - int(LAYER_WIDTH[n_slots] * cell) / 2) + bx, by)

    def _draw_layer(self, obj: SceneObject, n_slots: int) -> tuple[Image.Image, tuple[int, int]]:
        S = self.size
        cell = S / n_slots
        lw = int(LAYER_WIDTH[n_slots] * cell)
        layer = Image.new("RGBA", (lw, S), (0, 0, 0, 0))
        pen = Pen(ImageDraw.Draw(layer), lw / 2, GROUND_Y * S, (LAYER_WIDTH[n_slots] - UNIT_MARGIN) * cell * obj.size)
        OBJECT_DRAWINGS[obj.kind](pen, COLOURS[obj.colour], obj.state)
        bbox = layer.getchannel("A").getbbox() or (0, 0, 1, 1)
        return layer.crop(bbox), (bbox[0], bbox[1])

    def object_box(self, obj: SceneObject, n_slots: int) -> list[int]:
        """[x0, y0, x1, y1] of the object's visible pixels at the output resolution."""
        layer, (x, y) = self._layer(obj, n_slots)
        return self._to_px((x, y, x + layer.width, y + layer.height))

    def sky_box(self, bg: Background) -> list[int]:
        r = self.resolution
        return [round(v * r) for v in sky_box_fraction(bg)]

    def _to_px(self, box: tuple[int, int, int, int]) -> list[int]:
        s, r = self.supersample, self.resolution
        x0, y0, x1, y1 = box
        return [max(0, x0 // s), max(0, y0 // s), min(r, -(-x1 // s)), min(r, -(-y1 // s))]

    def _canvas(self, scene: Scene) -> Image.Image:
        canvas = self.background(scene.background).copy()
        for obj in scene.objects:
            layer, dest = self._layer(obj, scene.n_slots)
            canvas.alpha_composite(layer, dest)
        return canvas

    def render(self, scene: Scene, base: tuple[Scene, Image.Image] | None = None) -> Image.Image:
        """The scene as an RGB image at the output resolution.

        ``base``: another scene and its rendering. When the two differ only in some objects, only the
        output pixels those objects can reach are resampled and pasted onto the base image; the result
        is byte-identical to a full render (LANCZOS is local and its taps are identical), just faster.
        """
        s, r = self.supersample, self.resolution
        canvas = self._canvas(scene)
        changed = self._changed_region(base[0], scene) if base is not None and s > 1 else None
        if changed is None:
            out = canvas.convert("RGB")
            return out.resize((r, r), Image.Resampling.LANCZOS) if s > 1 else out
        if changed == (0, 0, 0, 0):
            return base[1].copy()
        # output pixels within the LANCZOS support (3 px) of a changed pixel, and the input they read
        x0, y0, x1, y1 = changed
        px0, py0, px1, py1 = max(0, x0 // s - 4), max(0, y0 // s - 4), min(r, -(-x1 // s) + 4), min(r, -(-y1 // s) + 4)
        cx0, cy0, cx1, cy1 = max(0, px0 - 4), max(0, py0 - 4), min(r, px1 + 4), min(r, py1 + 4)
        patch = canvas.crop((cx0 * s, cy0 * s, cx1 * s, cy1 * s)).convert("RGB")
        patch = patch.resize((cx1 - cx0, cy1 - cy0), Image.Resampling.LANCZOS)
        out = base[1].copy()
        out.paste(patch.crop((px0 - cx0, py0 - cy0, px1 - cx0, py1 - cy0)), (px0, py0))
        return out

    def _changed_region(self, a: Scene, b: Scene) -> tuple[int, int, int, int] | None:
        """Supersampled box covering every object that differs; None when the backgrounds/layouts differ."""
        if (a.background, a.n_slots, len(a.objects)) != (b.background, b.n_slots, len(b.objects)):
            return None
        boxes = []
        for oa, ob in zip(a.objects, b.objects):
            if (oa.kind, oa.colour, oa.state, oa.slot, oa.size) != (ob.kind, ob.colour, ob.state, ob.slot, ob.size):
                for o in (oa, ob):
                    layer, (x, y) = self._layer(o, a.n_slots)
                    boxes.append((x, y, x + layer.width, y + layer.height))
        if not boxes:
            return (0, 0, 0, 0)
        return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)

    def annotate(self, scene: Scene) -> None:
        """Fill ``box`` of every object in ``scene`` (in place)."""
        for obj in scene.objects:
            obj.box = self.object_box(obj, scene.n_slots)
