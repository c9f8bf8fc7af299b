"""The paper's automatic editing metrics, one function each (batched: lists in, one value per item out).

Notation: ``E_I`` / ``E_T`` are CLIP's image / text embeddings (an :class:`ImageTextEmbedder`), ``D`` the DINO
CLS feature (an :class:`ImageEmbedder`), ``cos(u, v) = u.v / (|u| |v|)``, and for an edit: ``src`` the source
image, ``edit`` the edited image, ``tgt`` the ground-truth target, ``T_in`` / ``T_out`` the input / output
captions (descriptions of the source and of the expected result).

Reasoning scenarios (paper Table 2, appendix D):

- **CLIP score** ``= cos(E_I(edit), E_T(T_out))`` -- semantic similarity of the edit and the expected output text.
- **MLLM score**: see :mod:`reasonbrain.evaluation.judge`.

Understanding scenarios (paper Table 3; MagicBrush / Emu Edit conventions):

- **CLIP-dir** ``= cos(e(edit) - e(src), t(T_out) - t(T_in))`` with ``e = E_I/|E_I|`` and ``t = E_T/|E_T|``:
  does the image change in the direction the captions change (InstructPix2Pix's directional similarity).
- **CLIP-I** (``CLIP_im``) ``= cos(E_I(edit), E_I(tgt))``.
- **CLIP-out** ``= cos(E_I(edit), E_T(T_out))``: the same formula as the CLIP score; the name follows the
  benchmark that supplies ``T_out`` (output captions on Emu Edit / MagicBrush).
- **L1** ``= mean over pixels and RGB channels of |edit - tgt|`` on [0, 1] (lower is better).
- **DINO** ``= cos(D(edit), D(tgt))``.

Further (this project's fixed definitions):

- **Identity preservation** -- see :func:`identity_preservation`: ``1 - L1`` between edit and source over the
  pixels the ground-truth edit leaves unchanged (in [0, 1], higher is better). The paper's Table A8 reports a
  0-10 score after Yang et al. (2025) whose exact protocol it does not give; ours is not on that scale.
- **Reasoning accuracy** (synthetic world) -- :func:`reasoning_correct`, i.e.
  :func:`reasonbrain.synthworld.accuracy.is_correct`: the edit is closer (L1) to the target than to every
  plausible wrong outcome.

Image handling: every image is converted to RGB; for pixel metrics (L1, identity) the edit is resized with
LANCZOS to the reference image's size when they differ; embedders apply their own processors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from reasonbrain.evaluation.embedders import ImageEmbedder, ImageTextEmbedder
from reasonbrain.synthworld.accuracy import ImageLike, is_correct, to_array

# identity preservation: a pixel counts as changed by the ground-truth edit when its mean RGB difference
# (on [0, 1]) between source and target exceeds this, and the changed region is dilated by a margin of
# this fraction of the longer image side (edits bleed a little beyond the exact changed pixels).
IDENTITY_THRESHOLD = 0.04
IDENTITY_MARGIN = 0.02
# CLIP-dir: an embedding change (of unit vectors) shorter than this counts as no change (its direction is noise)
DIRECTION_EPS = 1e-4


# ------------------------------------------------------------------------------------------ helpers
def cosine_similarity(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise ``cos(a_i, b_i) = a_i . b_i / (|a_i| |b_i|)``; (N, D), (N, D) -> (N,); 1-D inputs give a 0-d array.

    A zero vector has no direction: its cosine is 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cosine_similarity needs equal shapes, got {a.shape} and {b.shape}")
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.where(den > eps, num / np.maximum(den, eps), 0.0)


def normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, eps)


def load_rgb(image: ImageLike) -> Image.Image:
    """Any ImageLike (PIL, (H, W, C) array in [0, 1] or uint8, path) as an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray((to_array(image) * 255.0).round().astype(np.uint8), "RGB")


def pixels(image: ImageLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) float in [0, 1]; resized (LANCZOS) to ``size = (width, height)`` when given and different."""
    arr = to_array(image)
    if size is None or (arr.shape[1], arr.shape[0]) == tuple(size):
        return arr
    im = Image.fromarray((arr * 255.0).round().astype(np.uint8), "RGB").resize(tuple(size), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.float32) / 255.0


def _size(arr: np.ndarray) -> tuple[int, int]:
    return arr.shape[1], arr.shape[0]


def _check_lengths(**lists: Sequence) -> int:
    lengths = {k: len(v) for k, v in lists.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs must be aligned (one per edit); got lengths {lengths}")
    return next(iter(lengths.values()))


# ------------------------------------------------------------------------------------------- CLIP
def clip_score(clip: ImageTextEmbedder, edited: Sequence[ImageLike], output_texts: Sequence[str]) -> np.ndarray:
    """CLIP score ``cos(E_I(edit), E_T(T_out))`` per edit: the edit vs the expected output text. (N,) in [-1, 1]."""
    if _check_lengths(edited=edited, output_texts=output_texts) == 0:
        return np.zeros(0)
    return cosine_similarity(clip.embed_images([load_rgb(e) for e in edited]), clip.embed_texts(list(output_texts)))


def clip_output_similarity(clip: ImageTextEmbedder, edited: Sequence[ImageLike],
                           output_captions: Sequence[str]) -> np.ndarray:
    """CLIP-out ``cos(E_I(edit), E_T(output caption))`` -- the CLIP score's formula under the Emu Edit /
    MagicBrush name. (N,) in [-1, 1]."""
    return clip_score(clip, edited, output_captions)


def clip_image_similarity(clip: ImageEmbedder, edited: Sequence[ImageLike], targets: Sequence[ImageLike]) -> np.ndarray:
    """CLIP-I ``cos(E_I(edit), E_I(tgt))`` per edit. (N,) in [-1, 1]; identical images give 1."""
    n = _check_lengths(edited=edited, targets=targets)
    if n == 0:
        return np.zeros(0)
    emb = clip.embed_images([load_rgb(x) for x in [*edited, *targets]])  # (2N, D)
    return cosine_similarity(emb[:n], emb[n:])


def clip_direction_similarity(clip: ImageTextEmbedder, sources: Sequence[ImageLike], edited: Sequence[ImageLike],
                              input_texts: Sequence[str], output_texts: Sequence[str]) -> np.ndarray:
    """CLIP-dir ``cos(e(edit) - e(src), t(T_out) - t(T_in))`` with unit-normalised embeddings
    ``e = E_I/|E_I|``, ``t = E_T/|E_T|``. (N,) in [-1, 1]; 0 when the image or the captions did not change
    (a difference shorter than ``DIRECTION_EPS`` counts as no change)."""
    n = _check_lengths(sources=sources, edited=edited, input_texts=input_texts, output_texts=output_texts)
    if n == 0:
        return np.zeros(0)
    img = normalize(clip.embed_images([load_rgb(x) for x in [*sources, *edited]]))  # (2N, D)
    txt = normalize(clip.embed_texts([*input_texts, *output_texts]))  # (2N, D)
    d_img, d_txt = img[n:] - img[:n], txt[n:] - txt[:n]  # (N, D) each
    # differences of unit vectors this small are float noise (e.g. the same image embedded in another batch)
    d_img[np.linalg.norm(d_img, axis=-1) < DIRECTION_EPS] = 0.0
    d_txt[np.linalg.norm(d_txt, axis=-1) < DIRECTION_EPS] = 0.0
    return cosine_similarity(d_img, d_txt)


# ------------------------------------------------------------------------------------------- DINO
def dino_similarity(dino: ImageEmbedder, edited: Sequence[ImageLike], targets: Sequence[ImageLike]) -> np.ndarray:
    """DINO ``cos(D(edit), D(tgt))`` of the ViT CLS features per edit. (N,) in [-1, 1]; identical images give 1."""
    n = _check_lengths(edited=edited, targets=targets)
    if n == 0:
        return np.zeros(0)
    emb = dino.embed_images([load_rgb(x) for x in [*edited, *targets]])  # (2N, D)
    return cosine_similarity(emb[:n], emb[n:])


# ------------------------------------------------------------------------------------------ pixels
def l1_distance(edited: ImageLike, target: ImageLike) -> float:
    """L1 ``= (1 / 3HW) sum_{p, c} |edit(p, c) - tgt(p, c)|`` on [0, 1] at the target's size (H, W).

    0 for identical images, 1 for black vs white. The edit is resized (LANCZOS) to the target's size if needed.
    """
    t = pixels(target)
    e = pixels(edited, _size(t))
    return float(np.abs(e - t).mean())


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of a (H, W) mask with a (2r + 1) x (2r + 1) square (separable max filter)."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    out = mask
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)])
        length = out.shape[axis]
        acc = np.zeros_like(out)
        for shift in range(2 * radius + 1):
            acc |= np.take(padded, np.arange(shift, shift + length), axis=axis)
        out = acc
    return out


def changed_region(source: ImageLike, target: ImageLike, *, threshold: float = IDENTITY_THRESHOLD,
                   margin: float = IDENTITY_MARGIN) -> np.ndarray:
    """(H, W) bool mask, at the source's size, of the pixels the ground-truth edit changes:
    ``M = dilate({p : mean_c |tgt(p, c) - src(p, c)| > threshold}, r)`` with ``r = round(margin * max(H, W))``."""
    s = pixels(source)
    t = pixels(target, _size(s))
    changed = np.abs(t - s).mean(-1) > threshold
    return dilate(changed, int(round(margin * max(s.shape[:2]))))


def identity_preservation(source: ImageLike, edited: ImageLike, target: ImageLike | None = None, *,
                          changed_mask: np.ndarray | None = None, threshold: float = IDENTITY_THRESHOLD,
                          margin: float = IDENTITY_MARGIN) -> float:
    """Identity preservation ``IP = 1 - (1 / 3|U|) sum_{p in U, c} |edit(p, c) - src(p, c)|``.

    ``U`` is the set of pixels outside the region the edit is meant to change: ``U = not M`` with ``M`` =
    ``changed_mask`` when given, else :func:`changed_region` of ``(source, target)`` (pixels whose mean RGB
    difference exceeds ``threshold``, dilated by ``margin`` of the longer side). Images on [0, 1] at the
    source's size. 1 = everything that should stay untouched is untouched. NaN when ``U`` is empty (the
    edit changes the whole image, e.g. a time-of-day change), so such edits do not enter the mean.
    """
    s = pixels(source)
    e = pixels(edited, _size(s))
    if changed_mask is None:
        if target is None:
            raise ValueError("identity_preservation needs the target image or an explicit changed_mask")
        changed_mask = changed_region(s, target, threshold=threshold, margin=margin)
    changed_mask = np.asarray(changed_mask, dtype=bool)
    if changed_mask.shape != s.shape[:2]:
        raise ValueError(f"changed_mask has shape {changed_mask.shape}; the source is {s.shape[:2]}")
    keep = ~changed_mask
    if not keep.any():
        return math.nan
    return float(1.0 - np.abs(e - s)[keep].mean())


# --------------------------------------------------------------------------------------- reasoning
def reasoning_correct(edited: ImageLike, target: ImageLike, alternatives: Sequence[ImageLike]) -> bool:
    """Synthetic-world reasoning accuracy of one edit: ``L1(edit, tgt) < L1(edit, alt)`` for every plausible
    wrong outcome ``alt`` (wrong object changed, wrong state, no change), as in
    :func:`reasonbrain.synthworld.accuracy.is_correct` (which this calls)."""
    if not alternatives:
        raise ValueError("reasoning accuracy needs the record's alternative outcomes (synth-world data)")
    return is_correct(edited, target, alternatives)
