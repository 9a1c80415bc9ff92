"""segkit.image hardening: the pixel budget, one documented error for every decode failure, faithful modes."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

import segkit.image as image_module
from segkit import Image, ImageFormat


@pytest.fixture(autouse=True)
def default_budget(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts and ends with the default pixel budget."""
    monkeypatch.delenv(image_module.MAX_PIXELS_ENV, raising=False)
    image_module.set_max_pixels(None)
    yield
    image_module.set_max_pixels(None)


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    PILImage.new(mode, (width, height), 128 if mode in ("L", "I;16") else (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def _huge_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_default_budget_is_pillows_limit() -> None:
    assert image_module.max_pixels() == image_module.DEFAULT_MAX_PIXELS == PILImage.MAX_IMAGE_PIXELS


def test_budget_for_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    image_module.set_max_pixels(100)
    Image(ImageFormat.SRGB, np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"image of 11x10 = 110 pixels is above segkit's pixel budget of 100"):
        Image(ImageFormat.SRGB, np.zeros((10, 11, 3), np.uint8))
    with pytest.raises(ValueError, match="set_max_pixels"):
        image_module.from_array(np.zeros((1, 101), np.uint8), copy=False)
    image_module.set_max_pixels(None)
    monkeypatch.setenv(image_module.MAX_PIXELS_ENV, "50")
    assert image_module.max_pixels() == 50
    with pytest.raises(ValueError, match="SEGKIT_MAX_PIXELS"):
        Image(ImageFormat.GRAY8, np.zeros((1, 51), np.uint8))
    monkeypatch.setenv(image_module.MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=r"SEGKIT_MAX_PIXELS='lots' is not a positive integer"):
        image_module.max_pixels()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive int"):
            image_module.set_max_pixels(bad)  # type: ignore[arg-type]


def test_budget_for_files_is_checked_before_decoding(tmp_path: Path) -> None:
    image_module.set_max_pixels(300)
    small, big = tmp_path / "small.png", tmp_path / "big.png"
    small.write_bytes(_png(20, 15))
    big.write_bytes(_png(20, 16))
    assert Image.create_from_file(small).width == 20
    with pytest.raises(RuntimeError, match=r"^Failed to load image from file: .*big\.png \(ValueError: the image "):
        Image.create_from_file(big)


def test_decompression_bomb_header(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_huge_png_header(100_000, 100_000))
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"Failed to load image from file: .*bomb\.png \(") as e:
        Image.create_from_file(bomb)
    assert time.perf_counter() - start < 1.0 and str(bomb) in str(e.value)
    image_module.set_max_pixels(10**12)  # above Pillow's own limit: Pillow's DecompressionBombError, same type
    with pytest.raises(RuntimeError, match=r"\(DecompressionBombError: "):
        Image.create_from_file(bomb)


def _dds_with_unknown_fourcc() -> bytes:
    header = bytearray(124)
    struct.pack_into("<IIII", header, 0, 124, 0x1007, 4, 4)  # size, flags, height, width
    struct.pack_into("<II4s", header, 72, 32, 0x4, b"XXXX")  # DDS_PIXELFORMAT: size, DDPF_FOURCC, fourcc
    return b"DDS " + bytes(header) + bytes(64)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", r"UnidentifiedImageError"),
        (b"garbage, not an image", r"UnidentifiedImageError"),
        (_dds_with_unknown_fourcc(), r"NotImplementedError"),  # a corrupt DDS named .png
        (_png(64, 64)[:80], r"OSError|SyntaxError|ValueError"),  # truncated
    ],
)
def test_every_decode_failure_is_one_runtime_error(tmp_path: Path, data: bytes, why: str) -> None:
    file = tmp_path / "photo.png"
    file.write_bytes(data)
    with pytest.raises(RuntimeError, match=rf"^Failed to load image from file: {file} \(({why}): .+\)$"):
        Image.create_from_file(file)


def test_memory_error_while_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "ok.png"
    file.write_bytes(_png(4, 4))

    def out_of_memory(pil: object) -> Image:
        raise MemoryError()

    monkeypatch.setattr(image_module, "from_pil", out_of_memory)
    with pytest.raises(RuntimeError, match=r"ok\.png \(MemoryError: no reason given\)$"):
        Image.create_from_file(file)


@pytest.mark.parametrize("path", ["/dev/zero", "/", "/no/such/file.png"])
def test_not_a_regular_file(path: str) -> None:
    with pytest.raises(FileNotFoundError, match=f"^Can't find file: {path}$"):
        Image.create_from_file(path)


def _saved(tmp_path: Path, pil: PILImage.Image, name: str, **kw: Any) -> Path:
    file = tmp_path / name
    pil.save(file, **kw)
    return file


def test_float_tiff_keeps_its_values(tmp_path: Path) -> None:
    values = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    image = Image.create_from_file(_saved(tmp_path, PILImage.fromarray(values, mode="F"), "f.tif"))
    assert image.image_format == ImageFormat.VEC32F1
    np.testing.assert_array_equal(image.numpy_view()[:, :, 0], values)


def test_sixteen_bit_gray(tmp_path: Path) -> None:
    """A 16-bit gray TIFF (which MediaPipe's stb_image cannot read) keeps its 16 bits; a PNG gives MediaPipe's GRAY8."""
    values = (np.arange(24 * 32, dtype=np.uint16) * 85).reshape(24, 32)
    image = Image.create_from_file(_saved(tmp_path, PILImage.fromarray(values), "g16.tif"))
    assert image.image_format == ImageFormat.GRAY16
    np.testing.assert_array_equal(image.numpy_view()[:, :, 0], values)
    png = Image.create_from_file(_saved(tmp_path, PILImage.fromarray(values), "g16.png"))
    assert png.image_format == ImageFormat.GRAY8
    np.testing.assert_array_equal(png.numpy_view()[:, :, 0], values >> 8)


def test_thirty_two_bit_integers(tmp_path: Path) -> None:
    fits = (np.arange(12, dtype=np.int32) * 5000).reshape(3, 4)
    image = Image.create_from_file(_saved(tmp_path, PILImage.fromarray(fits, mode="I"), "i.tif"))
    assert image.image_format == ImageFormat.GRAY16
    np.testing.assert_array_equal(image.numpy_view()[:, :, 0], fits)
    wide = fits * 1000
    with pytest.raises(RuntimeError, match=r"unsupported image mode I: 32-bit values 0\.\.55000000 do not fit 16 bits"):
        Image.create_from_file(_saved(tmp_path, PILImage.fromarray(wide, mode="I"), "wide.tif"))


def test_cmyk_jpeg_is_not_black(tmp_path: Path) -> None:
    rgb = PILImage.new("RGB", (16, 16), (200, 40, 40))
    image = Image.create_from_file(_saved(tmp_path, rgb.convert("CMYK"), "cmyk.jpg", quality=95))
    assert image.image_format == ImageFormat.SRGB
    assert np.abs(image.numpy_view().reshape(-1, 3).mean(0) - (200, 40, 40)).max() < 12


def test_palette_with_transparency(tmp_path: Path) -> None:
    p = PILImage.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    image = Image.create_from_file(_saved(tmp_path, p, "p.png", transparency=0))
    assert image.image_format == ImageFormat.SRGBA
    pixels = image.numpy_view()
    assert pixels[0, 0, 3] == 0 and tuple(pixels[1, 1]) == (255, 0, 0, 255)


def test_bilevel_is_gray(tmp_path: Path) -> None:
    bits = PILImage.new("1", (8, 2), 0)
    bits.putpixel((3, 1), 1)
    image = Image.create_from_file(_saved(tmp_path, bits, "b.png"))
    assert image.image_format == ImageFormat.GRAY8
    assert image[1, 3] == 255 and image[0, 0] == 0


def test_lab_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported image mode LAB"):
        image_module.from_pil(PILImage.new("LAB", (2, 2)))


def test_files_load_as_mediapipe_loads_them(tmp_path: Path) -> None:
    """A 16-bit gray PNG is GRAY8 (stb_image keeps the high byte; it was GRAY16) and a GIF is SRGBA (stb_image reads
    GIFs with 4 channels; it was SRGB): the real mediapipe's ``create_from_file`` gives the same format and bytes."""
    from mediapipe.tasks.python.vision.core.image import Image as MpImage

    ramp = (np.arange(37 * 53, dtype=np.uint32).reshape(37, 53) * 33).astype(np.uint16)
    PILImage.fromarray(ramp).save(tmp_path / "gray16.png")
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8)
    PILImage.fromarray(rgb).save(tmp_path / "plain.gif")
    PILImage.fromarray(rgb).convert("P").save(tmp_path / "keyed.gif", transparency=0)
    expected = {"gray16.png": ImageFormat.GRAY8, "plain.gif": ImageFormat.SRGBA, "keyed.gif": ImageFormat.SRGBA}
    for name, image_format in expected.items():
        ours = Image.create_from_file(tmp_path / name)
        theirs = MpImage.create_from_file(str(tmp_path / name))
        assert ours.image_format == image_format and int(theirs.image_format) == int(image_format.value), name
        assert ours.numpy_view().dtype == np.uint8
        assert np.array_equal(ours.numpy_view(), theirs.numpy_view()), name
    assert (Image.create_from_file(tmp_path / "gray16.png").numpy_view()[:, :, 0] == ramp >> 8).all()


def test_step_and_alignment_describe_the_pixels_memory() -> None:
    """``step`` is the row size in bytes; ``is_aligned(n)`` says whether the pixels' address and that row size are
    multiples of n (MediaPipe's meaning), and refuses a boundary that is not a power of two instead of aborting."""
    packed = Image(ImageFormat.SRGB, np.zeros((17, 32, 3), np.uint8))  # 96-byte rows
    odd = Image(ImageFormat.SRGB, np.zeros((17, 33, 3), np.uint8))  # 99-byte rows
    floats = Image(ImageFormat.VEC32F1, np.zeros((4, 4), np.float32))  # 16-byte rows
    assert (packed.step, odd.step, floats.step) == (96, 99, 16)
    address = packed.numpy_view().__array_interface__["data"][0]
    for boundary in (1, 2, 4, 8, 16, 32, 64, 128):
        assert packed.is_aligned(boundary) == (address % boundary == 0 and 96 % boundary == 0)
    assert packed.is_aligned(1) and odd.is_aligned(1) and not odd.is_aligned(2) and not packed.is_aligned(64)
    for bad in (0, -4, 3, 24):
        with pytest.raises(ValueError, match=f"power of two, got {bad}"):
            packed.is_aligned(bad)
    with pytest.raises(TypeError, match="must be an int"):
        packed.is_aligned(True)
