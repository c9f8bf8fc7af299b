"""Input image normalisation: anything a user can upload -> one RGB ``PIL.Image`` -> model tensors and back.

``load_image`` accepts paths, bytes, binary streams, PIL images and numpy arrays; applies the EXIF orientation;
flattens transparency onto white; scales 16-bit and float images to 8 bits (instead of clipping them); and
rejects unreadable, truncated, empty, oversized (decompression bombs, checked on the header before decoding)
and absurdly elongated images with a ``ValueError`` that says what to do. PIL's global settings
(``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``) are never modified.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 40_000_000
MAX_ASPECT_RATIO = 20.0
READABLE_FORMATS = "PNG, JPEG, WebP, GIF, BMP, TIFF"
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_UINT16_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
# What PIL raises for broken files (besides UnidentifiedImageError): truncated data, bad chunks, bad headers.
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error, IndexError, KeyError, TypeError)


class ImageInputError(ValueError):
    """An input image was rejected; the message says why and what to do."""


ImageSource = str | os.PathLike | bytes | bytearray | memoryview | io.IOBase | Image.Image | np.ndarray


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float = MAX_ASPECT_RATIO,
) -> Image.Image:
    """Read ``source`` into a new 8-bit RGB ``PIL.Image`` (the input object is never modified).

    ``source``: a path, ``bytes``, a binary stream (``io.BytesIO``, an open file), a ``PIL.Image`` or a numpy
    array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) of uint8, uint16, bool or float in [0, 1].
    Raises ``ValueError`` (:class:`ImageInputError`) for anything that is not a readable image, and
    ``FileNotFoundError`` for a missing path.
    """
    if int(max_pixels) < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    if isinstance(source, Image.Image):
        _check_size(source.size, name="the image", max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
        try:
            source.load()
        except _DECODE_ERRORS as err:
            raise ImageInputError(
                f"the image is not a readable image ({READABLE_FORMATS}, ...): {err}"
            ) from err
        return _to_rgb(_exif_transpose(source), name="the image")
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageInputError(
                "the uploaded data is empty (0 bytes), not an image; upload a PNG, JPEG or WebP"
            )
        return _decode(
            io.BytesIO(data),
            name="the uploaded data",
            max_pixels=max_pixels,
            max_aspect_ratio=max_aspect_ratio,
        )
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such image file: {path}")
        if os.path.isdir(path):
            raise ImageInputError(f"{path} is a directory, not an image file")
        if os.path.getsize(path) == 0:
            raise ImageInputError(f"{path} is empty (0 bytes), not an image; re-export or re-upload the file")
        return _decode(path, name=path, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
    if hasattr(source, "read"):
        return _decode(source, name="the stream", max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
    raise ImageInputError(
        f"cannot read an image from a {type(source).__name__}; pass a path, bytes, a binary stream, a PIL image "
        "or a numpy array"
    )


def _check_size(size: tuple[int, int], *, name: str, max_pixels: int, max_aspect_ratio: float) -> None:
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise ImageInputError(f"{name} has zero size ({width}x{height}); upload a non-empty image")
    if width * height > max_pixels:
        raise ImageInputError(
            f"{name} is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,} "
            "(a possible decompression bomb); downscale it before uploading, or raise max_pixels if you trust it"
        )
    ratio = max(width, height) / min(width, height)
    if ratio > max_aspect_ratio:
        raise ImageInputError(
            f"{name} is {width}x{height}, an aspect ratio of {ratio:.1f}:1 (more than {max_aspect_ratio:g}:1); "
            "crop it to a less elongated region first"
        )


def _decode(fp: Any, *, name: str, max_pixels: int, max_aspect_ratio: float) -> Image.Image:
    not_readable = f"{name} is not a readable image ({READABLE_FORMATS}, ...)"
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(fp) as im:  # reads the header only
                _check_size(im.size, name=name, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
                im.load()  # decodes (the first frame of animations)
                image = _exif_transpose(im)
        except ImageInputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageInputError(
                f"{name} declares too many pixels to decode safely (a possible decompression bomb): {err}; "
                "downscale it before uploading"
            ) from err
        except UnidentifiedImageError as err:
            raise ImageInputError(f"{not_readable}: the file format was not recognised") from err
        except _DECODE_ERRORS as err:
            raise ImageInputError(f"{not_readable}: {err} (the file may be truncated or corrupt)") from err
    return _to_rgb(image, name=name)


def _exif_transpose(image: Image.Image) -> Image.Image:
    """A new image with the EXIF orientation applied (a copy when there is none)."""
    try:
        out = ImageOps.exif_transpose(image)
    except (ValueError, SyntaxError, OSError, struct.error, KeyError, TypeError) as err:
        logger.warning("ignoring unreadable EXIF orientation: %s", err)
        return image.copy()
    return out if out is not None else image.copy()


def _gray16_to_rgb(values: np.ndarray) -> Image.Image:
    """(H, W) values in [0, 65535] -> 8-bit RGB, scaled (x / 257), not clipped."""
    gray = np.round(values.astype(np.float64) / 257.0).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_rgb(image: Image.Image, *, name: str) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (transparency composited on white, high bit depths scaled)."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in _UINT16_MODES:
        return _gray16_to_rgb(np.asarray(image))
    if mode == "I":  # 32-bit integer; in practice 16-bit data (PNG / TIFF)
        values = np.asarray(image, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            logger.warning("%s: 32-bit integer pixels outside [0, 65535] were clipped to that range", name)
        return _gray16_to_rgb(np.clip(values, 0, 65535))
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageInputError(
                f"{name} is a float image with NaN or infinite pixels; save it as 8-bit PNG"
            )
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if lo < 0:
            raise ImageInputError(
                f"{name} is a float image with negative pixels (min {lo:g}); rescale it to "
                "[0, 1] or save it as 8-bit PNG"
            )
        if hi <= 1.0:
            scale = 255.0
        elif hi <= 255.0:
            scale = 1.0
        elif hi <= 65535.0:
            scale = 1.0 / 257.0
        else:
            raise ImageInputError(f"{name} is a float image with pixels up to {hi:g}; rescale it to [0, 1]")
        gray = np.round(values * scale).clip(0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return _flatten_alpha(image)
    try:
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, RGBX, ...
    except ValueError as err:
        raise ImageInputError(
            f"{name} uses the unsupported colour mode {mode!r} ({err}); save it as RGB PNG or JPEG"
        ) from err


def _from_array(array: np.ndarray, *, max_pixels: int, max_aspect_ratio: float) -> Image.Image:
    name = "the array"
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        raise ImageInputError(
            f"{name} looks channel-first {array.shape}; pass (H, W, C), e.g. array.transpose(1, 2, 0)"
        )
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageInputError(f"{name} has shape {array.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    height, width = array.shape[:2]
    _check_size((width, height), name=name, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        array = np.round(array.astype(np.float64) / 257.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ImageInputError(
                f"{name} is floating point with values outside [0, 1] (or NaN); scale it to "
                "[0, 1] or convert to uint8"
            )
        array = np.round(array.astype(np.float64) * 255.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageInputError(f"{name} has dtype {array.dtype}; use uint8, uint16, bool or float in [0, 1]")
    array = np.ascontiguousarray(array)
    if array.ndim == 2:
        return Image.fromarray(array).convert("RGB")
    if array.shape[-1] == 4:
        return _flatten_alpha(Image.fromarray(array))
    return Image.fromarray(array)


def prepare_image(image: Image.Image, resolution: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """RGB image -> ((3, R, R) float32 in [-1, 1], original (width, height)).

    The image is resized directly to ``resolution x resolution`` (bicubic; the model is square, and
    :func:`restore_size` undoes the squash on the way out).
    """
    if not isinstance(image, Image.Image):
        raise ValueError(
            f"prepare_image takes a PIL image, got {type(image).__name__}; use load_image() first"
        )
    if int(resolution) < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution}")
    resolution = int(resolution)
    original_size = (image.width, image.height)
    if image.width < 1 or image.height < 1:
        raise ImageInputError(f"cannot prepare an empty image of size {original_size}")
    rgb = _to_rgb(image, name="the image")
    resized = rgb.resize((resolution, resolution), Image.Resampling.BICUBIC)
    array = np.asarray(resized, dtype=np.float32) / 127.5 - 1.0  # (R, R, 3)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous(), original_size  # (3, R, R)


def restore_size(image: Image.Image, original_size: tuple[int, int]) -> Image.Image:
    """Resize a model output back to the input's (width, height) with LANCZOS (a copy if already that size)."""
    width, height = int(original_size[0]), int(original_size[1])
    if width < 1 or height < 1:
        raise ValueError(f"original_size must be a positive (width, height), got {original_size}")
    if image.size == (width, height):
        return image.copy()
    return image.resize((width, height), Image.Resampling.LANCZOS)


def tensor_to_pil(x: torch.Tensor) -> Image.Image | list[Image.Image]:
    """(3, H, W) -> one RGB image, (B, 3, H, W) -> a list; values in [-1, 1] (clamped)."""
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"tensor_to_pil takes (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    x = x.detach().to("cpu", torch.float32)
    if not torch.isfinite(x).all():
        raise ValueError(
            "tensor_to_pil got NaN or infinite values (did the model diverge or overflow in fp16?)"
        )
    array = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    if x.ndim == 3:
        return Image.fromarray(array.permute(1, 2, 0).numpy())
    return [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in array]


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageInputError",
    "MAX_ASPECT_RATIO",
    "load_image",
    "prepare_image",
    "restore_size",
    "tensor_to_pil",
]
