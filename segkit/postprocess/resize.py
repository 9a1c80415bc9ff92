"""OpenCV's float32 ``cv::resize(..., INTER_LINEAR)`` as MediaPipe's CPU build runs it, bit for bit.

Half-pixel centres; horizontal pass then vertical pass, each product and sum rounded to float32 (no FMA);
horizontal weights clamped at the borders, vertical weights not (only the row indices are). An exact 2x
shrink in both axes becomes OpenCV's fast area average. Tables are built once per size pair (``MaskLinearPlan``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segkit import _common

from .activation import quiet
from .threads import split

_F32 = np.float32
_QUARTER = np.float32(0.25)
_ZERO = np.float32(0.0)
# OpenCV's vectorised 2x area average covers whole groups of this many output columns per row; the rest of
# the row takes the scalar path, which sums in a different order.
AREA_SIMD_LANES = 4
# Interleaved logits (a channel-first view of ``(h, w, C)``): source rows per horizontal block, all channels.
INTERLEAVED_ROWS = 6


def _half_pixel(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's source position per output index: ``(floor, fraction)`` with the fraction in float32."""
    scale = 1.0 / (n_out / n_in)
    f = ((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5).astype(_F32)
    s = np.floor(f)
    return s.astype(np.intp), (f - s).astype(_F32)


@dataclass(frozen=True)
class MaskLinearPlan:
    """Index and weight tables for resizing float32 masks ``(in_h, in_w)`` to ``(out_h, out_w)``; see
    ``mask_linear_plan``."""

    in_h: int
    in_w: int
    out_h: int
    out_w: int
    area2x: bool
    x0: np.ndarray  # (out_w,) source column of the left tap
    x1: np.ndarray  # (out_w,) source column of the right tap
    ax0: np.ndarray  # (out_w,) float32 weight of the left tap
    ax1: np.ndarray  # (out_w,) float32 weight of the right tap
    y0: np.ndarray  # (out_h,) source row of the upper tap (clamped)
    y1: np.ndarray  # (out_h,) source row of the lower tap (clamped)
    by0: np.ndarray  # (out_h, 1) float32 weight of the upper tap (not clamped)
    by1: np.ndarray  # (out_h, 1) float32 weight of the lower tap
    bands: tuple[tuple[int, int, int, int], ...]  # (first out row, end out row, first src row, end src row)


def mask_linear_plan(in_h: int, in_w: int, out_h: int, out_w: int, band_elements: int | None = None) -> MaskLinearPlan:
    """Build the tables OpenCV's ``resize`` computes for float INTER_LINEAR from ``(in_h, in_w)``, with bands of
    about ``band_elements`` output elements (default ``segkit._common.BAND_ELEMENTS``; the bits do not depend on
    it)."""
    if min(in_h, in_w, out_h, out_w) < 1:
        raise ValueError(f"cannot resize {in_w}x{in_h} to {out_w}x{out_h}")
    area2x = in_w == 2 * out_w and in_h == 2 * out_h
    sx, fx = _half_pixel(in_w, out_w)
    left = sx < 0
    fx[left], sx[left] = 0, 0
    right = sx >= in_w - 1
    fx[right], sx[right] = 0, in_w - 1
    x1 = np.minimum(sx + 1, in_w - 1)
    sy, fy = _half_pixel(in_h, out_h)
    y0 = np.clip(sy, 0, in_h - 1)
    y1 = np.clip(sy + 1, 0, in_h - 1)
    rows = max(1, (_common.BAND_ELEMENTS if band_elements is None else band_elements) // out_w)
    bands = tuple(
        (r, min(r + rows, out_h), int(y0[r]), int(y1[min(r + rows, out_h) - 1]) + 1) for r in range(0, out_h, rows)
    )
    return MaskLinearPlan(
        in_h, in_w, out_h, out_w, area2x,
        x0=sx, x1=x1, ax0=(_F32(1) - fx).astype(_F32), ax1=fx,
        y0=y0, y1=y1, by0=(_F32(1) - fy).astype(_F32)[:, None], by1=fy[:, None],
        bands=bands,
    )  # fmt: skip


def _area2x(src: np.ndarray, out: np.ndarray) -> None:
    """OpenCV's fast 2x2 area average: ``((a+b)+(c+d))*0.25`` in SIMD groups, ``(0+a+b+c+d)*0.25`` after them."""
    a, b, c, d = src[0::2, 0::2], src[0::2, 1::2], src[1::2, 0::2], src[1::2, 1::2]
    top = np.add(a, b)
    np.add(c, d, out=out)
    np.add(top, out, out=out)
    tail = out.shape[1] - out.shape[1] % AREA_SIMD_LANES
    if tail < out.shape[1]:
        t = out[:, tail:]
        np.add(a[:, tail:], b[:, tail:], out=t)
        np.add(t, c[:, tail:], out=t)
        np.add(t, d[:, tail:], out=t)
        np.add(_ZERO, t, out=t)
    np.multiply(out, _QUARTER, out=out)


def _interleaved(src: np.ndarray) -> np.ndarray | None:
    """``src`` ``(C, h, w)`` as the C-contiguous ``(h, w, C)`` array it views (several channels), else None."""
    if src.shape[0] < 2 or src.dtype != _F32:
        return None
    hwc = src.transpose(1, 2, 0)
    return hwc if hwc.flags.c_contiguous else None


def _staged(src: np.ndarray) -> bool:
    """Whether ``src``'s channel planes are not row-major float32: each band's source rows are then first
    copied, all channels at once, into a small scratch."""
    item = src.itemsize
    return src.dtype != _F32 or src.strides[2] != item or src.strides[1] != src.shape[2] * item


def _horizontal_interleaved(
    hwc: np.ndarray, plan: MaskLinearPlan, s0: int, s1: int, h: np.ndarray, scratch: np.ndarray, weights: np.ndarray
) -> None:
    """The horizontal pass of source rows ``[s0, s1)`` for every channel at once, into channel-first ``h``.

    On ``(h, w, C)`` logits a column gather moves C values per index (far cheaper than C single-value
    gathers); the sums are then moved channel-first, a few rows at a time so the scratch stays in cache.
    Same operations and order as the per-channel pass, so the same bits.
    """
    g0, g1 = scratch[0], scratch[1]
    for a in range(s0, s1, INTERLEAVED_ROWS):
        b = min(a + INTERLEAVED_ROWS, s1)
        t0, t1 = g0[: b - a], g1[: b - a]
        rows = hwc[a:b]
        rows.take(plan.x0, 1, t0, "clip")
        np.multiply(t0, weights[0], out=t0)
        rows.take(plan.x1, 1, t1, "clip")
        np.multiply(t1, weights[1], out=t1)
        np.add(t0, t1, out=t0)
        np.copyto(h[:, a - s0 : b - s0], t0.transpose(2, 0, 1))


@quiet
def resize_masks(src: np.ndarray, plan: MaskLinearPlan, out: np.ndarray, bands: range | None = None) -> np.ndarray:
    """Resize float32 channels ``(C, in_h, in_w)`` into ``out`` ``(C, out_h, out_w)`` exactly as OpenCV does.

    ``src`` may be any strided view (e.g. the model's ``(h, w, C)`` logits seen channel-first): each band's
    source rows are then copied channel-first into a small scratch, all channels at once, so no full-size
    channel-first copy is ever made. Runs band by band (``bands``: which of ``plan.bands``, default all), all
    channels per band, so the band's weights and temporaries stay in cache. Both passes gather with ``take``
    into reused scratch (the vertical one with per-band row indices), the vertical weights are whole planes
    (a broadcast column is twice as slow), and the result is written to ``out`` once, by the final add.
    """
    if plan.area2x:
        for c in range(src.shape[0]):
            _area2x(src[c], out[c])
        return out
    which = bands if bands is not None else range(len(plan.bands))
    if not len(which):
        return out
    most_src = max(plan.bands[i][3] - plan.bands[i][2] for i in which)
    most_out = max(plan.bands[i][1] - plan.bands[i][0] for i in which)
    scratch = _VerticalScratch(np.empty((2, most_out, plan.out_w), _F32), np.empty((2, most_out, plan.out_w), _F32))
    hwc = _interleaved(src)
    if hwc is not None:
        _resize_interleaved(hwc, plan, out, which, most_src, scratch)
    else:
        _resize_planar(src, plan, out, which, most_src, scratch)
    return out


@dataclass(frozen=True)
class _VerticalScratch:
    """Reused per call: the two vertical taps ``v`` and the two vertical weight planes ``b``, (2, rows, out_w)."""

    v: np.ndarray
    b: np.ndarray


_Rows = tuple[np.ndarray, np.ndarray]  # a band's upper and lower source rows, relative to its first source row


def _vertical(h: np.ndarray, rows: _Rows, scratch: _VerticalScratch, out: np.ndarray) -> None:
    """The vertical pass of one channel's horizontal rows ``h`` for one band, written into ``out`` (its rows)."""
    n = out.shape[0]
    v, v1 = scratch.v[0, :n], scratch.v[1, :n]
    h.take(rows[0], 0, v, "clip")
    np.multiply(v, scratch.b[0, :n], out=v)
    h.take(rows[1], 0, v1, "clip")
    np.multiply(v1, scratch.b[1, :n], out=v1)
    np.add(v, v1, out=out)


def _band_rows(plan: MaskLinearPlan, band: tuple[int, int, int, int], scratch: _VerticalScratch) -> _Rows:
    """The band's source rows of each tap, and its vertical weights written as whole planes into the scratch (a
    broadcast column is twice as slow)."""
    r0, r1, s0, _ = band
    scratch.b[0, : r1 - r0] = plan.by0[r0:r1]
    scratch.b[1, : r1 - r0] = plan.by1[r0:r1]
    return plan.y0[r0:r1] - s0, plan.y1[r0:r1] - s0


def _resize_interleaved(hwc: np.ndarray, plan: MaskLinearPlan, out: np.ndarray, which: range, most_src: int,
                        scratch: _VerticalScratch) -> None:  # fmt: skip
    """All channels' horizontal pass at once on ``(h, w, C)`` logits, then the vertical one per channel."""
    channels, w = hwc.shape[2], plan.out_w
    h_all = np.empty((channels, most_src, w), _F32)
    rows_scratch = np.empty((2, min(INTERLEAVED_ROWS, most_src), w, channels), _F32)
    weights = np.empty((2, w, channels), _F32)
    weights[0] = plan.ax0[:, None]
    weights[1] = plan.ax1[:, None]
    for i in which:
        band = plan.bands[i]
        r0, r1, s0, s1 = band
        taps = _band_rows(plan, band, scratch)
        _horizontal_interleaved(hwc, plan, s0, s1, h_all, rows_scratch, weights)
        for c in range(channels):
            _vertical(h_all[c, : s1 - s0], taps, scratch, out[c, r0:r1])


def _resize_planar(src: np.ndarray, plan: MaskLinearPlan, out: np.ndarray, which: range, most_src: int,
                   scratch: _VerticalScratch) -> None:  # fmt: skip
    """Channel by channel: each band's horizontal pass then its vertical pass. Source rows whose planes are not
    row-major float32 are first copied, all channels at once, into a small scratch."""
    channels = src.shape[0]
    h_scratch = np.empty((2, most_src, plan.out_w), _F32)
    stage = np.empty((channels, most_src, plan.in_w), _F32) if _staged(src) else None
    x0, x1, ax0, ax1 = plan.x0, plan.x1, plan.ax0, plan.ax1
    for i in which:
        band = plan.bands[i]
        r0, r1, s0, s1 = band
        s = s1 - s0
        taps = _band_rows(plan, band, scratch)
        h, h1 = h_scratch[0, :s], h_scratch[1, :s]
        rows = src[:, s0:s1]
        if stage is not None:
            np.copyto(stage[:, :s], rows, casting="same_kind")
            rows = stage[:, :s]
        for c in range(channels):
            row = rows[c]
            row.take(x0, 1, h, "clip")  # indices are in range; "clip" avoids buffering
            np.multiply(h, ax0, out=h)
            row.take(x1, 1, h1, "clip")
            np.multiply(h1, ax1, out=h1)
            np.add(h, h1, out=h)
            _vertical(h, taps, scratch, out[c, r0:r1])


@quiet
def _area2x_rows(src: np.ndarray, out: np.ndarray, r0: int, r1: int) -> None:
    """The 2x area average of output rows ``[r0, r1)`` of every channel (columns are not split: the SIMD tail
    depends on the row length)."""
    for c in range(src.shape[0]):
        _area2x(src[c, 2 * r0 : 2 * r1], out[c, r0:r1])


def resize_mask_jobs(src: np.ndarray, plan: MaskLinearPlan, out: np.ndarray, parts: int) -> list[Callable[[], object]]:
    """``resize_masks(src, plan, out)`` as up to ``parts`` independent jobs over disjoint output rows (whole
    bands), each with its own scratch; run in any order or concurrently, together they write the same bits."""
    if plan.area2x:
        return [functools.partial(_area2x_rows, src, out, a, b) for a, b in split(plan.out_h, parts)]
    return [functools.partial(resize_masks, src, plan, out, range(a, b)) for a, b in split(len(plan.bands), parts)]
