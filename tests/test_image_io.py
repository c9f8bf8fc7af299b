"""Input normalisation: every PIL mode, EXIF orientation, hostile files, and the tensor round trip."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from reasonbrain.image_io import ImageInputError, load_image, prepare_image, restore_size, tensor_to_pil


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def rgb_at(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    assert image.mode == "RGB"
    return image.getpixel(xy)


def close(a, b, tol: int = 2) -> bool:
    return all(abs(int(x) - int(y)) <= tol for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------------------------------------------
# modes
# ------------------------------------------------------------------------------------------------------------
def test_rgba_and_la_are_composited_on_white():
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    out = load_image(rgba)
    assert out.mode == "RGB" and out.size == (3, 1)
    assert rgb_at(out, (0, 0)) == (255, 255, 255)
    assert rgb_at(out, (1, 0)) == (0, 0, 255)
    assert close(rgb_at(out, (2, 0)), (127, 127, 127))
    assert rgba.mode == "RGBA"  # the input is not modified

    la = Image.new("LA", (2, 1))
    la.putdata([(0, 0), (50, 255)])
    out = load_image(png_bytes(la))
    assert rgb_at(out, (0, 0)) == (255, 255, 255) and rgb_at(out, (1, 0)) == (50, 50, 50)


def test_palette_with_and_without_transparency():
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    p.putdata([0, 1])
    out = load_image(png_bytes(p))
    assert rgb_at(out, (0, 0)) == (255, 0, 0) and rgb_at(out, (1, 0)) == (0, 255, 0)

    p.info["transparency"] = 0  # index 0 is transparent
    out = load_image(png_bytes(p))
    assert rgb_at(out, (0, 0)) == (255, 255, 255) and rgb_at(out, (1, 0)) == (0, 255, 0)
    out_mem = load_image(p)
    assert rgb_at(out_mem, (0, 0)) == (255, 255, 255)


def test_16_bit_images_are_scaled_not_clipped():
    values = np.array([[0, 32896, 65535, 1000]], dtype=np.uint16)
    expected = [0, 128, 255, 4]
    i16 = Image.fromarray(values)
    assert i16.mode == "I;16"
    from_png = load_image(png_bytes(i16))  # a real 16-bit PNG
    in_memory = load_image(i16)
    as_i32 = load_image(Image.fromarray(values.astype(np.int32)))  # mode "I"
    assert Image.fromarray(values.astype(np.int32)).mode == "I"
    for img in (from_png, in_memory, as_i32):
        assert img.mode == "RGB"
        assert [img.getpixel((x, 0))[0] for x in range(4)] == expected
    assert load_image(values).getpixel((2, 0)) == (255, 255, 255)  # uint16 arrays too


def test_float_grayscale_bilevel_and_cmyk():
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert f.mode == "F"
    assert [load_image(f).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    f255 = Image.fromarray(np.array([[0.0, 200.0]], dtype=np.float32))
    assert load_image(f255).getpixel((1, 0)) == (200, 200, 200)
    with pytest.raises(ValueError, match="negative"):
        load_image(Image.fromarray(np.array([[-1.0, 0.5]], dtype=np.float32)))

    gray = Image.new("L", (2, 2), 77)
    assert rgb_at(load_image(gray), (0, 0)) == (77, 77, 77)
    bilevel = Image.new("1", (2, 1))
    bilevel.putdata([0, 1])
    out = load_image(png_bytes(bilevel))
    assert rgb_at(out, (0, 0)) == (0, 0, 0) and rgb_at(out, (1, 0)) == (255, 255, 255)

    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putdata([(0, 0, 0, 0), (0, 255, 255, 0)])
    out = load_image(cmyk)
    assert rgb_at(out, (0, 0)) == (255, 255, 255) and rgb_at(out, (1, 0)) == (255, 0, 0)
    buf = io.BytesIO()
    cmyk.resize((16, 8)).save(buf, format="JPEG", quality=95)
    out = load_image(buf.getvalue())
    assert out.mode == "RGB" and out.size == (16, 8) and close(rgb_at(out, (1, 4)), (255, 255, 255), tol=12)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    out = load_image(io.BytesIO(buf.getvalue()))
    assert out.size == (20, 40)
    assert close(rgb_at(out, (10, 5)), (255, 0, 0), tol=20)  # the left (red) half is now on top
    assert close(rgb_at(out, (10, 35)), (0, 0, 255), tol=20)


def test_numpy_and_path_sources(tmp_path):
    arr = np.zeros((4, 6, 3), dtype=np.uint8)
    arr[..., 1] = 200
    assert rgb_at(load_image(arr), (0, 0)) == (0, 200, 0)
    assert rgb_at(load_image(np.full((4, 6), 0.5)), (0, 0)) == (128, 128, 128)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    assert rgb_at(load_image(rgba), (0, 0)) == (255, 255, 255)
    assert rgb_at(load_image(np.ones((3, 3), dtype=bool)), (1, 1)) == (255, 255, 255)
    with pytest.raises(ValueError, match="channel-first"):
        load_image(np.zeros((3, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        load_image(np.zeros((8, 8), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(np.full((8, 8), 2.0))

    path = tmp_path / "a.png"
    Image.new("RGB", (5, 7), (1, 2, 3)).save(path)
    for source in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes())):
        out = load_image(source)
        assert out.size == (5, 7) and rgb_at(out, (0, 0)) == (1, 2, 3)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(ValueError):
        load_image(12345)


# ------------------------------------------------------------------------------------------------------------
# hostile / broken input
# ------------------------------------------------------------------------------------------------------------
def png_with_declared_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR claims width x height (CRC fixed, so only the pixel data is inconsistent)."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1), (9, 9, 9))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def test_decompression_bombs_are_rejected_before_decoding():
    max_before = Image.MAX_IMAGE_PIXELS
    small = png_bytes(Image.new("RGB", (100, 100)))
    assert load_image(small).size == (100, 100)
    with pytest.raises(ValueError, match="decompression bomb"):
        load_image(small, max_pixels=5_000)
    # header claims 8000x8000 = 64M pixels: over our 40M default, under PIL's own limit -> our header check
    with pytest.raises(ValueError, match="64,000,000 pixels"):
        load_image(png_with_declared_size(8000, 8000))
    # header claims 100000x100000: PIL's own DecompressionBombError, converted
    with pytest.raises(ValueError, match="decompression bomb"):
        load_image(png_with_declared_size(100_000, 100_000))
    with pytest.raises(ValueError, match="decompression bomb"):
        load_image(png_with_declared_size(100_000, 100_000), max_pixels=10**12)
    # 100M pixels: PIL only warns (between its limit and twice it); the warning becomes a ValueError too
    with pytest.raises(ValueError, match="decompression bomb"):
        load_image(png_with_declared_size(10_000, 10_000), max_pixels=10**9)
    with pytest.raises(ValueError, match="decompression bomb"):
        load_image(Image.new("L", (300, 300)), max_pixels=1000)
    assert Image.MAX_IMAGE_PIXELS == max_before


def test_unreadable_truncated_and_empty_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    with pytest.raises(ValueError, match="is not a readable image"):
        load_image(text)

    rng = np.random.default_rng(0)
    full = png_bytes(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ValueError, match="is not a readable image"):
        load_image(full[: len(full) // 2])
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    with pytest.raises(ValueError, match="is not a readable image"):
        load_image(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ValueError, match="is not a readable image"):
        load_image(full[:40])  # header only

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_image(empty)
    with pytest.raises(ValueError, match="empty"):
        load_image(b"")
    assert issubclass(ImageInputError, ValueError)


def test_zero_size_and_aspect_ratio():
    with pytest.raises(ValueError, match="zero size"):
        load_image(Image.new("RGB", (0, 10)))
    with pytest.raises(ValueError, match="zero size"):
        load_image(np.zeros((0, 5, 3), dtype=np.uint8))
    assert load_image(Image.new("RGB", (200, 10))).size == (200, 10)  # 20:1 is fine
    with pytest.raises(ValueError, match="aspect ratio"):
        load_image(png_bytes(Image.new("RGB", (210, 10))))
    with pytest.raises(ValueError, match="aspect ratio"):
        load_image(png_with_declared_size(10, 5000))


# ------------------------------------------------------------------------------------------------------------
# tensors
# ------------------------------------------------------------------------------------------------------------
def test_prepare_restore_and_tensor_to_pil_round_trip():
    image = Image.new("RGB", (120, 80), (255, 0, 0))
    image.paste((0, 0, 0), (60, 0, 120, 80))
    x, original = prepare_image(image, 64)
    assert original == (120, 80)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert torch.allclose(x[:, 32, 5], torch.tensor([1.0, -1.0, -1.0]))

    pil = tensor_to_pil(x)
    assert isinstance(pil, Image.Image) and pil.size == (64, 64) and pil.mode == "RGB"
    assert rgb_at(pil, (5, 32)) == (255, 0, 0)
    restored = restore_size(pil, original)
    assert restored.size == (120, 80)
    assert close(rgb_at(restored, (10, 40)), (255, 0, 0), tol=3) and close(
        rgb_at(restored, (110, 40)), (0, 0, 0), 3
    )
    assert restore_size(image, (120, 80)).size == (120, 80)

    batch = tensor_to_pil(torch.stack([x, -torch.ones_like(x)]))
    assert isinstance(batch, list) and len(batch) == 2 and rgb_at(batch[1], (0, 0)) == (0, 0, 0)
    assert rgb_at(tensor_to_pil(torch.full((3, 2, 2), 5.0)), (0, 0)) == (255, 255, 255)  # clamped

    gray_x, gray_size = prepare_image(Image.new("L", (10, 30), 255), 16)
    assert (
        gray_x.shape == (3, 16, 16)
        and gray_size == (10, 30)
        and torch.allclose(gray_x, torch.ones_like(gray_x))
    )
    with pytest.raises(ValueError):
        tensor_to_pil(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        tensor_to_pil(torch.full((3, 2, 2), float("nan")))
    with pytest.raises(ValueError):
        prepare_image(image, 0)
    with pytest.raises(ValueError):
        restore_size(image, (0, 5))
