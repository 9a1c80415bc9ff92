"""Color conversion policy, input validation, and the Preprocessor's caching/buffer contract."""

from __future__ import annotations

import numpy as np
import pytest

from segkit._common import PlanCache
from segkit.preprocess import InputSpec, Preprocessor, to_pixels
from segkit.preprocess.color import (
    GRAY8,
    GRAY16,
    SBGRA,
    SRGB,
    SRGB48,
    SRGBA,
    SRGBA64,
    UNKNOWN,
    VEC32F1,
    VEC32F2,
    VEC32F4,
)
from tests.preprocess.reference import normalization_lut, with_alpha

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
RGBA = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)


def test_srgb_and_srgba() -> None:
    assert np.array_equal(to_pixels(RGB, SRGB, 3), RGB)
    assert np.array_equal(to_pixels(RGBA, SRGBA, 3)[..., :3], RGBA[..., :3])
    assert np.array_equal(to_pixels(RGBA, SRGBA, 4), RGBA)
    # a 4-channel model given pixels without alpha: no RGBA copy; the Preprocessor reads them as opaque
    assert np.array_equal(to_pixels(RGB, SRGB, 4), RGB)


@pytest.mark.parametrize("zero_alpha", [False, True])
@pytest.mark.parametrize("size", [(5, 7), (40, 30), (300, 200)])
def test_three_channel_pixels_on_four_channel_path_are_opaque(zero_alpha: bool, size: tuple[int, int]) -> None:
    rgb = RNG.integers(0, 256, (*size, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((*size, 1), 255, np.uint8)], axis=2)
    for spec in (InputSpec(16, 24, 4, "float32", 127.5, 127.5, zero_alpha), InputSpec(9, 5, 4, "uint8")):
        p = Preprocessor(spec)
        for keep in (False, True):
            want = p(rgba, keep_alpha=keep).copy()
            assert np.array_equal(p(rgb, keep_alpha=keep), want)
            assert np.array_equal(p(to_pixels(rgb, SRGB, 4), keep_alpha=keep), want)


def test_sbgra_is_reordered() -> None:
    bgra = RGBA[..., [2, 1, 0, 3]]
    assert np.array_equal(to_pixels(bgra, SBGRA, 4), RGBA)
    assert np.array_equal(to_pixels(bgra, SBGRA, 3), RGBA[..., :3])


def test_gray_formats_replicate() -> None:
    gray = RGB[..., 0]
    for data in (gray, gray[..., None]):
        assert np.array_equal(to_pixels(data, GRAY8, 3), np.repeat(gray[..., None], 3, axis=2))
    gray16 = gray.astype(np.uint16) * 257
    assert np.array_equal(to_pixels(gray16, GRAY16, 3)[..., 1], gray)
    assert np.array_equal(to_pixels(gray16, GRAY16, 4), to_pixels(gray16, GRAY16, 3))


def test_sixteen_bit_rounds_to_nearest() -> None:
    v = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    assert np.array_equal(to_pixels(v, GRAY16, 3)[..., 0], np.round(v / 257).astype(np.uint8))
    rgb48 = RGB.astype(np.uint16) * 257
    assert np.array_equal(to_pixels(rgb48, SRGB48, 3), RGB)
    rgba64 = RGBA.astype(np.uint16) * 257
    assert np.array_equal(to_pixels(rgba64, SRGBA64, 4), RGBA)


def test_float_formats() -> None:
    f = np.array([[0.0, 0.5, 1.0, -3.0, 7.0, 0.502]], dtype=np.float32)
    assert to_pixels(f, VEC32F1, 3)[0, :, 0].tolist() == [0, 128, 255, 0, 255, 128]
    f4 = RGBA.astype(np.float32) / 255
    assert np.array_equal(to_pixels(f4, VEC32F4, 4), RGBA)
    with pytest.raises(ValueError, match="NaN"):
        to_pixels(np.full((2, 2), np.nan, np.float32), VEC32F1, 3)


@pytest.mark.parametrize(
    ("data", "fmt", "match"),
    [
        (np.zeros((2, 2, 2), np.float32), VEC32F2, "VEC32F2"),
        (RGB, UNKNOWN, "Unsupported image format"),
        (RGB, SRGBA, r"shape \(H, W, 4\)"),
        (RGB.astype(np.uint16), SRGB, "uint8"),
        (np.zeros((0, 3, 3), np.uint8), SRGB, "empty"),
    ],
)
def test_bad_inputs_raise(data: np.ndarray, fmt: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        to_pixels(data, fmt, 3)


def test_non_contiguous_and_read_only_inputs() -> None:
    big = RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    view = big[::2, 1::3]
    frozen = np.ascontiguousarray(view)
    frozen.setflags(write=False)
    fortran = np.asfortranarray(view)
    p = Preprocessor(InputSpec(16, 16, 3, "uint8"))
    want = p(np.ascontiguousarray(view), 90).copy()
    for data in (view, frozen, fortran):
        assert np.array_equal(p(to_pixels(data, SRGB, 3), 90), want)


def test_buffer_is_reused_and_plans_cached() -> None:
    p = Preprocessor(InputSpec(8, 8, 3, "float32", 127.5, 127.5))
    a = p(RGB)
    assert p(RGB, 180) is a
    assert len(p._warps) == 2
    for n in range(3, 3 + 2 * p._warps.maxsize):
        p(np.zeros((n, n, 3), np.uint8))
    assert len(p._warps) == p._warps.maxsize


def test_plan_cache_is_a_bounded_lru() -> None:
    cache: PlanCache[int, list[int]] = PlanCache(2)
    built: list[int] = []

    def build(k: int) -> list[int]:
        built.append(k)
        return [k]

    one = cache.get(1, lambda: build(1))
    assert cache.get(1, lambda: build(1)) is one and built == [1]
    cache.get(2, lambda: build(2))
    cache.get(1, lambda: build(1))  # 1 is now the most recently used: 2 goes first
    cache.get(3, lambda: build(3))
    assert 1 in cache and 2 not in cache and 3 in cache and built == [1, 2, 3]
    with pytest.raises(ValueError, match="maxsize"):
        PlanCache(0)


def test_rotation_checks_and_four_channel_ignores_rotation() -> None:
    p3 = Preprocessor(InputSpec(8, 8, 3, "uint8"))
    with pytest.raises(ValueError, match="multiple of 90"):
        p3(RGB, 45)
    p4 = Preprocessor(InputSpec(8, 8, 4, "float32", 0.0, 1.0))
    assert np.array_equal(p4(RGBA, 0).copy(), p4(RGBA, 90))


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        InputSpec(8, 8, 1, "uint8")
    with pytest.raises(RuntimeError, match="can't be 0"):  # MediaPipe's exception
        InputSpec(8, 8, 3, "float32", 0.0, 0.0)
    with pytest.raises(ValueError, match="normalization"):
        Preprocessor(InputSpec(8, 8, 3, "float32"))


def test_lut_typical_values() -> None:
    lut = normalization_lut(127.5, 127.5)
    assert lut[0] == -1.0 and lut[255] == 1.0
    assert lut[1] == np.float32(np.float32(1) * np.float32(2 / 255)) + np.float32(-1)
    assert np.array_equal(normalization_lut(0.0, 255.0), np.arange(256, dtype=np.float32) * np.float32(1 / 255))


def test_keep_alpha() -> None:
    mask = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    rgba = with_alpha(RGB, mask)
    assert np.array_equal(rgba[..., :3], RGB) and np.array_equal(rgba[..., 3], mask)
    with pytest.raises(ValueError):
        with_alpha(RGB, mask[:4])
    hair = Preprocessor(InputSpec(5, 7, 4, "float32", 0.0, 1.0, zero_alpha=True))
    assert (hair(rgba)[..., 3] == 0).all()
    assert np.array_equal(hair(rgba, keep_alpha=True)[0, ..., 3], mask.astype(np.float32))
