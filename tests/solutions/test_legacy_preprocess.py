"""``segkit.preprocess.legacy``: the zero-border warp's two plan forms give the same bits, and its border rule.

Its bit-exactness against MediaPipe 0.10.21's ImageToTensorCalculator is checked in ``legacy_parity.py``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segkit.preprocess.legacy import (
    GridZeroBorderPlan,
    SeparableZeroBorderPlan,
    make_zero_border_plan,
    zero_border_tensor,
)


def warp(rgb: np.ndarray, height: int, *, allow_separable: bool = True) -> np.ndarray:
    h, w = rgb.shape[:2]
    out = np.empty((height, 256, 3), np.float32)
    return zero_border_tensor(rgb, make_zero_border_plan(h, w, height, 256, allow_separable=allow_separable), out)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 900), st.integers(1, 900), st.sampled_from([256, 144]), st.integers(0, 2**32 - 1))
def test_separable_and_per_pixel_plans_agree(h: int, w: int, height: int, seed: int) -> None:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)
    np.testing.assert_array_equal(warp(rgb, height), warp(rgb, height, allow_separable=False))


def test_both_plan_forms_occur() -> None:
    assert isinstance(make_zero_border_plan(256, 256, 256, 256), SeparableZeroBorderPlan)
    assert isinstance(make_zero_border_plan(49, 49, 256, 256), GridZeroBorderPlan)


def test_tensor_sized_image_is_copied_and_scaled() -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (144, 256, 3), np.uint8)
    np.testing.assert_array_equal(warp(rgb, 144), rgb.astype(np.float32) * (np.float32(1) / np.float32(255)))


def test_upscaling_reads_zero_past_the_last_pixel() -> None:
    """A white 2x2 image stretched to 256x256: the last tensor columns and rows sample between the last pixel and
    the zero border, so they darken (a replicate border would keep them white)."""
    tensor = warp(np.full((2, 2, 3), 255, np.uint8), 256)
    assert tensor[0, 0, 0] == 1.0 and tensor[127, 127, 0] == 1.0
    row, column = tensor[0, :, 0], tensor[:, 0, 0]
    for line in (row, column):
        assert (np.diff(line) <= 0).all() and line[:129].min() == 1.0 and line[-1] < 0.05


@pytest.mark.parametrize("bad", [np.zeros((5, 5, 3), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3))])
def test_plan_refuses_other_images(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="plan is for uint8"):
        zero_border_tensor(bad, make_zero_border_plan(4, 4, 256, 256), np.empty((256, 256, 3), np.float32))


def test_empty_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot warp"):
        make_zero_border_plan(0, 4, 256, 256)
