"""OpenCV's float32 ``cv::resize(..., INTER_LINEAR)`` as MediaPipe's CPU build runs it, bit for bit.

Half-pixel centres; horizontal pass then vertical pass, each product and sum rounded to float32 (no FMA);
horizontal weights clamped at the borders, vertical weights not (only the row indices are). An exact 2x
shrink in both axes becomes OpenCV's fast area average. Tables are built once per size pair (``LinearPlan``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activation import quiet

_F32 = np.float32
_QUARTER = np.float32(0.25)
_ZERO = np.float32(0.0)
# OpenCV's vectorised 2x area average covers whole groups of this many output columns per row; the rest of
# the row takes the scalar path, which sums in a different order.
AREA_SIMD_LANES = 4
# Rows per band: about this many output elements, so a band's temporaries stay in cache.
BAND_ELEMENTS = 1 << 15


def _half_pixel(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's source position per output index: ``(floor, fraction)`` with the fraction in float32."""
    scale = 1.0 / (n_out / n_in)
    f = ((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5).astype(_F32)
    s = np.floor(f)
    return s.astype(np.intp), (f - s).astype(_F32)


@dataclass(frozen=True)
class LinearPlan:
    """Index and weight tables for resizing ``(in_h, in_w)`` to ``(out_h, out_w)``; see ``linear_plan``."""

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
    nx0: np.ndarray  # (in_w,) how many output columns use each source column as the left tap
    nx1: np.ndarray  # (in_w,) ... as the right tap
    bands: tuple[tuple[int, int, int, int], ...]  # (first out row, end out row, first src row, end src row)
    ny0: tuple[np.ndarray, ...]  # per band: how many of its output rows use each of its source rows as upper tap
    ny1: tuple[np.ndarray, ...]  # per band: ... as lower tap


def linear_plan(in_h: int, in_w: int, out_h: int, out_w: int) -> LinearPlan:
    """Build the tables OpenCV's ``resize`` computes for float INTER_LINEAR from ``(in_h, in_w)``."""
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
    rows = max(1, BAND_ELEMENTS // out_w)
    bands = tuple(
        (r, min(r + rows, out_h), int(y0[r]), int(y1[min(r + rows, out_h) - 1]) + 1) for r in range(0, out_h, rows)
    )
    return LinearPlan(
        in_h, in_w, out_h, out_w, area2x,
        x0=sx, x1=x1, ax0=(_F32(1) - fx).astype(_F32), ax1=fx,
        nx0=np.bincount(sx, minlength=in_w), nx1=np.bincount(x1, minlength=in_w),
        y0=y0, y1=y1, by0=(_F32(1) - fy).astype(_F32)[:, None], by1=fy[:, None],
        bands=bands,
        ny0=tuple(np.bincount(y0[r0:r1] - s0, minlength=s1 - s0) for r0, r1, s0, s1 in bands),
        ny1=tuple(np.bincount(y1[r0:r1] - s0, minlength=s1 - s0) for r0, r1, s0, s1 in bands),
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


@quiet
def resize_linear(src: np.ndarray, plan: LinearPlan, out: np.ndarray, bands: range | None = None) -> np.ndarray:
    """Resize float32 channels ``(C, in_h, in_w)`` into ``out`` ``(C, out_h, out_w)`` exactly as OpenCV does.

    Runs band by band (``bands``: which of ``plan.bands``, default all), all channels per band, so the band's
    weights and temporaries stay in cache. The horizontal gather is ``np.take`` into reused scratch; the
    vertical one uses ``np.repeat`` with per-source-row counts (tap rows never decrease) and the result is
    written to ``out`` once, by the final add (``out`` is large and rarely in cache).
    """
    if plan.area2x:
        for c in range(src.shape[0]):
            _area2x(src[c], out[c])
        return out
    w = plan.out_w
    which = bands if bands is not None else range(len(plan.bands))
    if not len(which):
        return out
    most_src = max(plan.bands[i][3] - plan.bands[i][2] for i in which)
    most_out = max(plan.bands[i][1] - plan.bands[i][0] for i in which)
    h_scratch, h1_scratch = np.empty((2, most_src, w), _F32)
    b_scratch = np.empty((2, most_out, w), _F32)
    x0, x1, ax0, ax1 = plan.x0, plan.x1, plan.ax0, plan.ax1
    for i in which:
        r0, r1, s0, s1 = plan.bands[i]
        n, s = r1 - r0, s1 - s0
        b0, b1 = b_scratch[0, :n], b_scratch[1, :n]
        b0[...] = plan.by0[r0:r1]
        b1[...] = plan.by1[r0:r1]
        n0, n1 = plan.ny0[i], plan.ny1[i]
        h, h1 = h_scratch[:s], h1_scratch[:s]
        for c in range(src.shape[0]):
            band = src[c, s0:s1]
            np.take(band, x0, axis=1, out=h, mode="clip")  # indices are in range; "clip" avoids buffering
            np.multiply(h, ax0, out=h)
            np.take(band, x1, axis=1, out=h1, mode="clip")
            np.multiply(h1, ax1, out=h1)
            np.add(h, h1, out=h)
            v = np.repeat(h, n0, axis=0)
            np.multiply(v, b0, out=v)
            v1 = np.repeat(h, n1, axis=0)
            np.multiply(v1, b1, out=v1)
            np.add(v, v1, out=out[c, r0:r1])
    return out
