"""Reasoning accuracy on the synthetic world.

Distance (fixed): for two images ``a`` and ``b``

    d(a, b) = mean over all pixels and the three RGB channels of |a - b|,

with both images converted to RGB, scaled to [0, 1] (uint8 / 255; float arrays must already lie in
[0, 1]) and resized with LANCZOS to the world resolution (the target's size, or ``resolution``) when
they differ from it. An edit is *correct* when ``d(edit, target)`` is strictly smaller than
``d(edit, alternative)`` for every alternative outcome (wrong object changed, wrong state, no change):
the edit must be closer to the right outcome than to each plausible wrong one.

``reasoning_accuracy`` also reports the mean L1 (= d) and PSNR (dB, on [0, 1], capped at 100) to target.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

ImageLike = Image.Image | np.ndarray | str | os.PathLike
PSNR_CAP = 100.0


def to_array(image: ImageLike, resolution: int | None = None) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1], resized to ``resolution`` x ``resolution`` when given."""
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            image = im.convert("RGB")
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = arr.transpose(1, 2, 0)  # CHW -> HWC
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
            raise ValueError(f"expected an image array of shape (H, W, C) or (C, H, W), got {image.shape}")
        arr = np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr[..., :3]
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        else:
            arr = arr.astype(np.float32)
            if arr.size and (arr.min() < -1e-3 or arr.max() > 1 + 1e-3):
                raise ValueError("float image arrays must lie in [0, 1]; rescale (x + 1) / 2 outputs first")
            arr = np.clip(arr, 0.0, 1.0)
        if resolution is None or arr.shape[:2] == (resolution, resolution):
            return arr
        image = Image.fromarray((arr * 255.0).round().astype(np.uint8), "RGB")
    if not isinstance(image, Image.Image):
        raise ValueError(f"unsupported image type {type(image).__name__}; pass a PIL image, an array or a path")
    image = image.convert("RGB")
    if resolution is not None and image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


def _resolution(target: ImageLike, resolution: int | None) -> int:
    if resolution is not None:
        return resolution
    arr = to_array(target)
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"synth-world targets are square; got {arr.shape[:2]}, pass resolution=")
    return arr.shape[0]


def image_distance(a: ImageLike, b: ImageLike, resolution: int | None = None) -> float:
    """Mean absolute RGB difference in [0, 1] (see the module docstring)."""
    res = _resolution(b, resolution)
    return float(np.abs(to_array(a, res) - to_array(b, res)).mean())


def psnr(a: ImageLike, b: ImageLike, resolution: int | None = None) -> float:
    res = _resolution(b, resolution)
    mse = float(((to_array(a, res) - to_array(b, res)) ** 2).mean())
    return PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else -10.0 * math.log10(mse)


def is_correct(edit: ImageLike, target: ImageLike, alternatives: Sequence[ImageLike], resolution: int | None = None) -> bool:
    """True when ``edit`` is strictly closer to ``target`` than to every alternative outcome."""
    res = _resolution(target, resolution)
    e = to_array(edit, res)
    d_target = float(np.abs(e - to_array(target, res)).mean())
    return all(d_target < float(np.abs(e - to_array(alt, res)).mean()) for alt in alternatives)


HOLDOUT_GROUPS = ("seen", "template", "combo", "template+combo")


def holdout_group(record) -> str:
    """What a record holds out from training: ``seen`` (nothing), ``template`` (a held-out instruction template),
    ``combo`` (an object kind on a held-out background) or ``template+combo``; one of ``HOLDOUT_GROUPS``."""
    inner = getattr(record, "record", record)  # a SynthSample's record, a SynthRecord, or a Reason50K record
    held = getattr(inner, "holdout", None) or (getattr(inner, "extra", None) or {}).get("holdout") or []
    return "+".join(g for g in ("template", "combo") if g in held) or "seen"


def _images(record) -> tuple[ImageLike, list[ImageLike], str, str]:
    """(target, alternatives, category, id) of a SynthSample (in memory) or a SynthRecord (from disk)."""
    if hasattr(record, "record"):  # SynthSample
        r = record.record
        return record.tgt, [record.alternatives[a.kind] for a in r.alternatives], r.category, r.id
    return (record.path(record.tgt_image), [record.path(a.image) for a in record.alternatives],
            record.category, record.id)


def reasoning_accuracy(records: Sequence, edits: Mapping[str, ImageLike] | Sequence[ImageLike], *,
                       per_record: bool = False) -> dict:
    """Accuracy overall, per category and per ``holdout_group`` (what the records hold out from training), mean
    L1 and PSNR to target; with ``per_record`` also ``hits``, record id -> right or not.

    ``records``: SynthRecord (images read from their ``root``) or SynthSample objects. ``edits``: the
    edited images, aligned with ``records`` or keyed by record id.
    """
    if not isinstance(edits, Mapping) and len(edits) != len(records):
        raise ValueError(f"got {len(edits)} edits for {len(records)} records; align them or pass a dict id -> image")
    hits: dict[str, list[bool]] = {}
    held: dict[str, list[bool]] = {}
    by_id: dict[str, bool] = {}
    l1s, psnrs = [], []
    for i, rec in enumerate(records):
        target, alts, category, rid = _images(rec)
        if isinstance(edits, Mapping):
            if rid not in edits:
                raise ValueError(f"no edit for record {rid!r}")
            edit = edits[rid]
        else:
            edit = edits[i]
        res = _resolution(target, getattr(getattr(rec, "record", rec), "resolution", None))
        t = to_array(target, res)
        e = to_array(edit, res)
        d_target = float(np.abs(e - t).mean())
        ok = all(d_target < float(np.abs(e - to_array(a, res)).mean()) for a in alts)
        hits.setdefault(category, []).append(ok)
        held.setdefault(holdout_group(rec), []).append(ok)
        by_id[rid] = ok
        l1s.append(d_target)
        mse = float(((e - t) ** 2).mean())
        psnrs.append(PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else -10.0 * math.log10(mse))
    n = len(l1s)
    all_hits = [h for v in hits.values() for h in v]
    result = {
        "n": n,
        "accuracy": float(np.mean(all_hits)) if n else float("nan"),
        "per_category": {c: float(np.mean(v)) for c, v in sorted(hits.items())},
        "count_per_category": {c: len(v) for c, v in sorted(hits.items())},
        "per_holdout": {g: float(np.mean(held[g])) for g in HOLDOUT_GROUPS if g in held},
        "count_per_holdout": {g: len(held[g]) for g in HOLDOUT_GROUPS if g in held},
        "l1": float(np.mean(l1s)) if n else float("nan"),
        "psnr": float(np.mean(psnrs)) if n else float("nan"),
    }
    if per_record:
        result["hits"] = by_id
    return result
