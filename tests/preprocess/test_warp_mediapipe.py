"""3-channel models: our tensor equals MediaPipe's, bit for bit, for random sizes, rotations, formats and dtypes."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from segkit.preprocess import InputSpec, Preprocessor, to_pixels
from segkit.preprocess.color import SRGB, SRGBA
from tests.conftest import load_rgb
from tests.preprocess import oracle

# Probe models run through mediapipe for every drawn case: the slow tier.
pytestmark = pytest.mark.slow

ROTATIONS = (0, 90, 180, 270, -90, 450)
NORMALIZATIONS = ((0.0, 1.0), (0.0, 255.0), (127.5, 127.5))
REAL_IMAGES = ("astronaut.png", "cat.jpg", "cats_and_dogs.jpg", "cat_large.jpg")


@functools.cache
def real_image(name: str) -> np.ndarray:
    return load_rgb(name)


def make_image(h: int, w: int, source: str | int, fmt: int, rng: np.random.Generator) -> np.ndarray:
    """Random pixels (``source`` is a seed) or a crop of a real image, tiled when the image is too small."""
    if isinstance(source, int):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        full = real_image(source)
        reps = (-(-h // full.shape[0]), -(-w // full.shape[1]), 1)
        big = np.tile(full, reps)
        y = int(rng.integers(0, big.shape[0] - h + 1))
        x = int(rng.integers(0, big.shape[1] - w + 1))
        rgb = big[y : y + h, x : x + w]
    if fmt == SRGBA:
        alpha = rng.integers(0, 256, (h, w, 1), dtype=np.uint8)
        return np.ascontiguousarray(np.concatenate([rgb, alpha], axis=2))
    return np.ascontiguousarray(rgb)


def check(
    image: np.ndarray, fmt: int, tensor_hw: tuple[int, int], rotation: int, dtype: str, norm: tuple[float, float]
) -> None:
    """Assert our tensor reproduces MediaPipe's masks exactly (float32 bit patterns)."""
    tensor_hwc = (*tensor_hw, 3)
    mean, std = norm
    masks, shape, upscaled = oracle.mediapipe_values(
        image, fmt, tensor_hwc, dtype=dtype, mean=mean, std=std, rotation=rotation
    )
    spec = InputSpec(*tensor_hw, 3, dtype, mean, std)
    tensor = Preprocessor(spec)(to_pixels(image, fmt, 3), rotation)
    assert tensor.shape == (1, *tensor_hwc) and tensor.dtype == np.dtype(dtype)
    want = oracle.expected_masks(tensor, shape, upscaled)
    same = want.view(np.uint32) == masks.view(np.uint32)
    assert same.all(), f"{int((~same).sum())} of {same.size} values differ, first at {np.argwhere(~same)[0]}"


TENSORS = st.one_of(
    st.sampled_from([(256, 256), (144, 256), (257, 257), (512, 512)]),
    st.tuples(st.integers(1, 48), st.integers(1, 48)),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Any, ...]:
    tensor_hw = draw(TENSORS)
    n = tensor_hw[0] * tensor_hw[1] * 3
    limit = int(min(700, max(2, (4 * n) ** 0.5 * 1.4)))
    h = draw(st.integers(1, limit))
    w = draw(st.integers(1, limit))
    if h * w > n:
        h, w = h + h % 2, w + w % 2
        while (h // 2) * (w // 2) > n:
            h, w = max(2, (h // 4) * 2), max(2, (w // 4) * 2)
    source = draw(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from(REAL_IMAGES)))
    fmt = draw(st.sampled_from([SRGB, SRGBA]))
    rotation = draw(st.sampled_from(ROTATIONS))
    dtype = draw(st.sampled_from(["float32", "uint8"]))
    norm = draw(st.sampled_from(NORMALIZATIONS)) if dtype == "float32" and h * w <= n else (0.0, 1.0)
    seed = draw(st.integers(0, 2**32 - 1))
    return h, w, tensor_hw, source, fmt, rotation, dtype, norm, seed


@settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
@example((12, 16, (8, 8), 0, SRGB, 0, "float32", (0.0, 1.0), 0))
@example((1, 1, (256, 256), 1, SRGB, 90, "float32", (127.5, 127.5), 0))
@example((480, 640, (256, 256), "cat.jpg", SRGB, 0, "float32", (0.0, 1.0), 1))
@example((480, 640, (256, 256), "cat.jpg", SRGBA, 270, "uint8", (0.0, 1.0), 1))
@example((257, 257, (257, 257), "astronaut.png", SRGB, 0, "float32", (127.5, 127.5), 2))
def test_matches_mediapipe(case: tuple[Any, ...]) -> None:
    h, w, tensor_hw, source, fmt, rotation, dtype, norm, seed = case
    rng = np.random.default_rng(seed)
    check(make_image(h, w, source, fmt, rng), fmt, tensor_hw, rotation, dtype, norm)


@pytest.mark.parametrize(
    ("h", "w", "tensor_hw", "rotation"),
    [(720, 1280, (512, 512), 0), (1080, 1920, (512, 512), 90), (1080, 1920, (512, 512), 180)],
)
def test_large_images(h: int, w: int, tensor_hw: tuple[int, int], rotation: int) -> None:
    image = make_image(h, w, "cats_and_dogs.jpg", SRGB, np.random.default_rng(h + rotation))
    check(image, SRGB, tensor_hw, rotation, "float32", (0.0, 1.0))


@pytest.mark.parametrize("norm", [(0.0, 255.0), (127.5, 127.5), (0.0, 1.0)])
def test_every_pixel_value_normalizes_exactly(norm: tuple[float, float]) -> None:
    """All 256 uint8 values through the float normalization, compared as bit patterns."""
    image = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    check(image, SRGB, (16, 16), 0, "float32", norm)
