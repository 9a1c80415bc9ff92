"""Unit checks of segkit.postprocess: dequantization, the sigmoid cut, edge sizes, non-finite logits, API rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segkit.postprocess import Postprocessor, dequantize, sigmoid
from segkit.postprocess.activation import SIGMOID_HALF_CUT
from segkit.postprocess.category import CategoryPlan, category_plan, horizontal, vertical

F32 = np.float32


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.bool_])
def test_dequantize_is_scale_times_offset_value(dtype: type) -> None:
    info = np.iinfo(dtype) if dtype is not np.bool_ else None
    raw = np.arange(info.min, info.max + 1).astype(dtype) if info else np.array([False, True])
    scale, zp = 0.0390625 * 1.1, 3
    got = dequantize(raw, scale, zp)
    want = np.array([F32(scale) * F32(int(q) - zp) for q in raw], F32)
    assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_sigmoid_half_cut_is_the_last_float_at_or_below_half() -> None:
    above = np.nextafter(SIGMOID_HALF_CUT, F32(1))
    assert sigmoid(np.array([SIGMOID_HALF_CUT], F32))[0] <= F32(0.5) < sigmoid(np.array([above], F32))[0]


def _reference_category(k: np.ndarray, width: int, height: int, activation: int) -> np.ndarray:
    """A per-pixel reading of MediaPipe's category rule (1-pixel axes sample index 0), slow but literal."""
    h, w, c = k.shape

    def axis(n_in: int, n_out: int, i: int) -> tuple[int, int, np.float32]:
        if n_out == 1:
            return 0, 0, F32(0)
        p = F32(i) * (F32(n_in - 1) / F32(n_out - 1))
        i0, i1 = int(max(np.floor(p), F32(0))), int(min(np.ceil(p), F32(n_in - 1)))
        return i0, i1, F32(min(max(p - F32(i0), F32(0)), F32(1)))

    def lerp(a: np.ndarray, b: np.ndarray, t: np.float32) -> np.ndarray:
        value: np.ndarray = (a + (b - a) * t).astype(F32)
        return value

    out = np.empty((height, width), np.uint8)
    with np.errstate(invalid="ignore", over="ignore"):
        for y in range(height):
            y0, y1, ty = axis(h, height, y)
            for x in range(width):
                x0, x1, tx = axis(w, width, x)
                v = lerp(lerp(k[y0, x0], k[y1, x0], ty), lerp(k[y0, x1], k[y1, x1], ty), tx)
                if activation == 1:
                    v = (F32(1) / (F32(1) + np.exp(-v.astype(np.float64)).astype(F32))).astype(F32)
                if c == 1:
                    out[y, x] = 0 if v[0] > F32(0.5) else 255
                else:
                    best = 0
                    for i in range(1, c):
                        if v[best] < v[i]:
                            best = i
                    out[y, x] = best
    return out


@settings(deadline=None, max_examples=60)
@given(
    h=st.integers(1, 7), w=st.integers(1, 7), c=st.sampled_from([1, 2, 3, 6]),
    width=st.integers(1, 13), height=st.integers(1, 13), activation=st.integers(0, 2),
    seed=st.integers(0, 2**31), special=st.sampled_from(["none", "nan", "inf", "huge", "ties"]),
)  # fmt: skip
def test_category_matches_literal_reference_including_edge_sizes_and_non_finite(
    h: int, w: int, c: int, width: int, height: int, activation: int, seed: int, special: str
) -> None:
    """Outside MediaPipe's reach (1-pixel outputs, NaN, inf, overflowing differences), the same rule applies."""
    rng = np.random.default_rng(seed)
    k = rng.normal(0, 3, (h, w, c)).astype(F32)
    if special == "ties":
        k = rng.integers(-2, 3, (h, w, c)).astype(F32)
    elif special != "none":
        value = {"nan": np.nan, "inf": np.inf, "huge": 3e38}[special]
        mask = rng.random((h, w, c)) < 0.2
        k[mask] = F32(value) * rng.choice([-1, 1], mask.sum()).astype(F32)
    got = Postprocessor(activation, (h, w, c), num_threads=1).category_mask(k, width, height)
    assert np.array_equal(got, _reference_category(k, width, height, activation))


def sample(k: np.ndarray, plan: CategoryPlan, rows: slice, cols: slice) -> np.ndarray:
    """Align-corners bilinear values of one channel ``k`` ``(in_h, in_w)`` at output ``rows`` x ``cols``."""
    out = np.empty((rows.stop - rows.start, cols.stop - cols.start), F32)
    return horizontal(vertical(k, plan, rows), plan, cols, out)


def test_one_pixel_category_samples_the_first_row_and_column() -> None:
    k = np.arange(24, dtype=F32).reshape(2, 4, 3)[..., ::-1].copy()
    pp = Postprocessor(0, (2, 4, 3), num_threads=1)
    assert pp.category_mask(k, 1, 1).tolist() == [[0]]
    plan = category_plan(2, 4, 3, 1)
    column = sample(k[..., 0], plan, slice(0, 3), slice(0, 1))[:, 0]
    assert np.array_equal(column, [k[0, 0, 0], (k[0, 0, 0] + k[1, 0, 0]) / 2, k[1, 0, 0]])


def test_masks_are_fresh_and_thread_count_does_not_matter() -> None:
    rng = np.random.default_rng(5)
    k = rng.normal(0, 4, (33, 47, 5)).astype(F32)
    results: list[tuple[list[np.ndarray], np.ndarray]] = []
    for threads in (1, 2, 3):
        pp = Postprocessor(2, k.shape, num_threads=threads)
        first = pp.masks(k, 301, 197)
        second = pp.masks(k, 301, 197)
        assert first[0] is not None and second[0] is not None and first[1] is not None and second[1] is not None
        assert not np.shares_memory(first[0][0], second[0][0]) and not np.shares_memory(first[1], second[1])
        assert not np.shares_memory(first[0][0], k)
        results.append((first[0], first[1]))
        pp.close()
    for conf, cat in results[1:]:
        assert all(
            np.array_equal(a.view(np.uint32), b.view(np.uint32)) for a, b in zip(conf, results[0][0], strict=True)
        )
        assert np.array_equal(cat, results[0][1])


def test_same_size_confidence_is_the_activation_and_accepts_other_layouts() -> None:
    k = np.random.default_rng(1).normal(0, 2, (6, 5, 1)).astype(F32)
    pp = Postprocessor(1, (6, 5, 1), num_threads=1)
    (mask,) = pp.confidence_masks(k[None], 5, 6)
    assert np.array_equal(mask, sigmoid(k[..., 0]))
    assert np.array_equal(pp.category_mask(k[..., 0], 5, 6), np.where(mask > 0.5, 0, 255))


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="activation"):
        Postprocessor(3, (4, 4, 2))
    with pytest.raises(ValueError, match="shape"):
        Postprocessor(0, (0, 4, 2))
    pp = Postprocessor(0, (4, 4, 2), num_threads=1)
    with pytest.raises(ValueError, match="do not match"):
        pp.category_mask(np.zeros((4, 4, 3), F32), 8, 8)
    with pytest.raises(ValueError, match="output size"):
        pp.confidence_masks(np.zeros((4, 4, 2), F32), 0, 8)
