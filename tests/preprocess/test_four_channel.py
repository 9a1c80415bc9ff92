"""4-channel models: ``cv::resize`` emulation against cv2 and the whole legacy path against MediaPipe."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from segkit.preprocess import InputSpec, Preprocessor, to_pixels
from segkit.preprocess.color import SRGB, SRGBA
from segkit.preprocess.resize import choose_interpolation
from tests.preprocess import oracle, reference
from tests.preprocess.test_warp_mediapipe import make_image

SIZES = st.integers(1, 300)


def ours(image: np.ndarray, h: int, w: int, kind: str) -> np.ndarray:
    """segkit's plans applied by the whole-image reference (the banded resizers are checked against it)."""
    return reference.resize(image, h, w, kind)


@pytest.mark.slow
@settings(deadline=None, max_examples=200)
@given(SIZES, SIZES, SIZES, SIZES, st.sampled_from([4, 3, 1]), st.integers(0, 2**32 - 1))
@example(480, 640, 512, 512, 4, 0)
@example(720, 1280, 512, 512, 4, 0)
@example(1024, 1024, 512, 512, 4, 0)
@example(600, 900, 200, 300, 4, 0)
def test_linear_matches_cv2(H: int, W: int, h: int, w: int, cn: int, seed: int) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (H, W, cn), dtype=np.uint8)
    want = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, cn)
    assert np.array_equal(ours(image, h, w, "linear"), want)


@pytest.mark.slow
@settings(deadline=None, max_examples=200)
@given(
    st.integers(2, 400),
    st.integers(2, 400),
    st.floats(0.05, 0.99),
    st.floats(0.05, 0.99),
    st.sampled_from([4, 3, 1]),
    st.integers(0, 2**32 - 1),
)
@example(720, 1280, 512 / 720, 512 / 1280, 4, 0)
@example(1024, 1024, 0.5, 0.5, 4, 0)
@example(900, 900, 1 / 3, 1 / 3, 4, 0)
@example(600, 400, 0.5, 0.25, 4, 0)
def test_area_matches_cv2(H: int, W: int, ry: float, rx: float, cn: int, seed: int) -> None:
    h, w = max(1, min(H - 1, round(H * ry))), max(1, min(W - 1, round(W * rx)))
    image = np.random.default_rng(seed).integers(0, 256, (H, W, cn), dtype=np.uint8)
    want = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).reshape(h, w, cn)
    assert np.array_equal(ours(image, h, w, "area"), want)


def test_interpolation_rule() -> None:
    assert choose_interpolation(481, 641, 480, 640) == "area"
    assert choose_interpolation(480, 641, 480, 640) == "linear"
    assert choose_interpolation(100, 100, 512, 512) == "linear"


@st.composite
def cases(draw: st.DrawFn) -> tuple[Any, ...]:
    th, tw = draw(st.tuples(st.integers(1, 40), st.integers(1, 40)))
    n = th * tw * 4
    h = draw(st.integers(1, 2 * th + 3))
    w = draw(st.integers(1, 2 * tw + 3))
    if h * w > n:
        h, w = h + h % 2, w + w % 2
        while (h // 2) * (w // 2) > n:
            h, w = max(2, (h // 4) * 2), max(2, (w // 4) * 2)
    hair = draw(st.booleans())
    fmt = draw(st.sampled_from([SRGB, SRGBA])) if hair else SRGBA
    norm = draw(st.sampled_from([(0.0, 1.0), (127.5, 127.5)])) if h * w <= n else (0.0, 1.0)
    rotation = draw(st.sampled_from([0, 90, 180, 270]))
    source = draw(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from(["astronaut.png", "cat.jpg"])))
    return h, w, (th, tw), hair, fmt, norm, rotation, source


@pytest.mark.slow
@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
@example((24, 40, (16, 16), True, SRGB, (0.0, 1.0), 0, 0))
@example((24, 40, (16, 16), False, SRGBA, (0.0, 1.0), 90, 0))
@example((480, 640, (512, 512), True, SRGB, (0.0, 1.0), 0, "cat.jpg"))
@example((720, 1280, (512, 512), True, SRGBA, (0.0, 1.0), 270, "cats_and_dogs.jpg"))
@example((720, 1280, (512, 512), True, SRGB, (0.0, 1.0), 0, "cats_and_dogs.jpg"))
@example((4, 6, (7, 3), True, SRGBA, (127.5, 127.5), 0, 3))
def test_legacy_path_matches_mediapipe(case: tuple[Any, ...]) -> None:
    h, w, tensor_hw, hair, fmt, norm, rotation, source = case
    image = make_image(h, w, source, fmt, np.random.default_rng(h * 1000 + w))
    labels = ("background", "hair") if hair else ("background", "person")
    masks, shape, upscaled = oracle.mediapipe_values(
        image, fmt, (*tensor_hw, 4), mean=norm[0], std=norm[1], rotation=rotation, labels=labels
    )
    th, tw = tensor_hw
    spec = InputSpec(th, tw, 4, "float32", norm[0], norm[1], zero_alpha=hair)
    tensor = Preprocessor(spec)(to_pixels(image, fmt, 4), rotation)
    if hair:
        lo = np.float32(-norm[0]) / np.float32(norm[1])
        assert (tensor[..., 3] == lo).all()
    want = oracle.expected_masks(tensor, shape, upscaled)
    same = want.view(np.uint32) == masks.view(np.uint32)
    assert same.all(), f"{int((~same).sum())} of {same.size} values differ, first at {np.argwhere(~same)[0]}"
