"""The zero-copy paths equal the old generic code bit for bit: logits read in place as a strided ``(C, h, w)``
view of ``(h, w, C)`` (all channels' horizontal pass at once), staged bands, and category sampling of a strided
channel; and the Postprocessor keeps no reference to the logits it was given."""

from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest

import segkit.postprocess.resize as resize
from segkit import _common
from segkit.postprocess import Postprocessor, argmax_mask, category_plan, mask_linear_plan, resize_masks, threshold_mask
from segkit.postprocess.resize import MaskLinearPlan
from tests.postprocess.cases import random_logits, size_cases

F32 = np.float32


def _old_resize(src: np.ndarray, plan: MaskLinearPlan, out: np.ndarray) -> np.ndarray:
    """segkit's previous generic resize (per channel, ``np.repeat`` vertical pass) on a channel-first copy."""
    # per band: how many of its output rows use each of its source rows as the upper / lower tap
    ny0 = [np.bincount(plan.y0[r0:r1] - s0, minlength=s1 - s0) for r0, r1, s0, s1 in plan.bands]
    ny1 = [np.bincount(plan.y1[r0:r1] - s0, minlength=s1 - s0) for r0, r1, s0, s1 in plan.bands]
    src = np.ascontiguousarray(src, F32)
    with np.errstate(all="ignore"):
        if plan.area2x:
            for c in range(src.shape[0]):
                resize._area2x(src[c], out[c])
            return out
        for i, (r0, r1, s0, s1) in enumerate(plan.bands):
            for c in range(src.shape[0]):
                band = src[c, s0:s1]
                h = np.take(band, plan.x0, axis=1) * plan.ax0
                h1 = np.take(band, plan.x1, axis=1) * plan.ax1
                np.add(h, h1, out=h)
                v = np.repeat(h, ny0[i], axis=0) * plan.by0[r0:r1]
                v1 = np.repeat(h, ny1[i], axis=0) * plan.by1[r0:r1]
                np.add(v, v1, out=out[c, r0:r1])
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize(("h", "w", "c", "oh", "ow", "special"), size_cases(60, seed=2024))
def test_resize_from_interleaved_logits_equals_the_old_code(
    h: int, w: int, c: int, oh: int, ow: int, special: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_common, "BAND_ELEMENTS", 256)  # many bands: their edges and overlaps
    rng = np.random.default_rng(h * 1000 + w * 10 + c)
    k = random_logits(rng, h, w, c, special)
    plan = mask_linear_plan(h, w, oh, ow)
    want = _old_resize(k.transpose(2, 0, 1), plan, np.empty((c, oh, ow), F32))
    view = k.transpose(2, 0, 1)
    for rows in (1, 2, 6):
        monkeypatch.setattr(resize, "INTERLEAVED_ROWS", rows)
        got = resize_masks(view, plan, np.full((c, oh, ow), np.nan, F32))
        assert _same(got, want)
    # the channel-first (contiguous) and staged (other strides) paths give the same bits
    assert _same(resize_masks(np.ascontiguousarray(view), plan, np.empty((c, oh, ow), F32)), want)
    wide = np.zeros((c, h, 2 * w), F32)
    wide[:, :, ::2] = view
    assert _same(resize_masks(wide[:, :, ::2], plan, np.empty((c, oh, ow), F32)), want)


@pytest.mark.parametrize(("h", "w", "c", "oh", "ow", "special"), size_cases(40, seed=2024))
@pytest.mark.parametrize("activation", [0, 1, 2])
def test_category_from_a_strided_view_equals_the_contiguous_copy(
    h: int, w: int, c: int, oh: int, ow: int, special: bool, activation: int
) -> None:
    rng = np.random.default_rng(h * 977 + w * 13 + c + activation)
    k = random_logits(rng, h, w, c, special)
    plan = category_plan(h, w, oh, ow)
    fill = threshold_mask if c == 1 else argmax_mask
    view = k.transpose(2, 0, 1)
    if c == 1:  # a 1-channel view is contiguous anyway; use a really strided one
        wide = np.zeros((h, w, 3), F32)
        wide[:, :, 1:2] = k
        view = wide[:, :, 1:2].transpose(2, 0, 1)
    want = fill(np.ascontiguousarray(view), plan, activation, np.empty((oh, ow), np.uint8))
    got = fill(view, plan, activation, np.empty((oh, ow), np.uint8))
    assert np.array_equal(got, want)


@pytest.mark.parametrize("special", [False, True])
@pytest.mark.parametrize("activation", [0, 1, 2])
@pytest.mark.parametrize("c", [1, 2, 3, 21])
@pytest.mark.parametrize(("width", "height"), [(61, 47), (13, 11), (6, 5)])  # resize, same size, exact 2x shrink
def test_postprocessor_on_logits_in_place_equals_the_old_pipeline(
    activation: int, c: int, width: int, height: int, special: bool
) -> None:
    from segkit.postprocess import activate

    rng = np.random.default_rng(c * 31 + activation + width)
    k = random_logits(rng, 11, 13, c, special=special)
    pp = Postprocessor(activation, k.shape)
    conf, cat = pp.masks(k[None], width, height)
    chw = np.ascontiguousarray(k.transpose(2, 0, 1))
    with np.errstate(all="ignore"):
        act = activate(chw, activation)
    if (width, height) == (13, 11):
        want = act
    else:
        want = _old_resize(act, mask_linear_plan(11, 13, height, width), np.empty((c, height, width), F32))
    assert conf is not None and cat is not None
    assert all(_same(m, want[i]) for i, m in enumerate(conf))
    fill = threshold_mask if c == 1 else argmax_mask
    want_cat = fill(chw, category_plan(11, 13, height, width), activation, np.empty((height, width), np.uint8))
    assert np.array_equal(cat, want_cat)


def test_postprocessor_keeps_no_reference_to_the_logits() -> None:
    """The runtime hands in its own output buffer: nothing may hold it once ``masks()`` returns."""
    k = np.random.default_rng(0).normal(0, 1, (1, 9, 11, 5)).astype(F32)
    before = sys.getrefcount(k)
    ref = weakref.ref(k)
    for activation in (0, 1, 2):
        pp = Postprocessor(activation, k.shape[1:])
        for size in ((20, 17), (11, 9)):
            pp.masks(k, *size)
            pp.confidence_masks(k, *size)
            pp.category_mask(k, *size)
        assert sys.getrefcount(k) == before
    del k
    gc.collect()
    assert ref() is None


def test_logits_of_other_float_types_are_converted_and_others_refused() -> None:
    k = np.random.default_rng(1).normal(0, 1, (7, 8, 3))
    pp = Postprocessor(0, k.shape)
    conf, cat = pp.masks(k, 15, 9)
    conf32, cat32 = pp.masks(k.astype(F32), 15, 9)
    assert conf is not None and conf32 is not None and cat is not None and cat32 is not None
    assert all(_same(a, b) for a, b in zip(conf, conf32, strict=True)) and np.array_equal(cat, cat32)
    with pytest.raises(TypeError):
        pp.masks(k.astype(np.complex64), 15, 9)
