"""OpenCV's uint8 ``cv::resize`` (INTER_LINEAR and INTER_AREA), reproduced bit for bit for the 4-channel path.

MediaPipe's legacy 4-channel pipeline stretches the RGBA image to the tensor size with ``cv::resize``: INTER_AREA
when the image is larger than the tensor in both dimensions, INTER_LINEAR otherwise. Plans hold the integer
tables (linear) or float32 weights (area) OpenCV derives from the sizes; applying one is gathers and arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_F32 = np.float32
_COEF_SCALE = 2048


def choose_interpolation(image_height: int, image_width: int, height: int, width: int) -> str:
    """``"area"`` when the image is larger than the tensor in both dimensions (MediaPipe's rule), else ``"linear"``."""
    return "area" if image_width > width and image_height > height else "linear"


@dataclass(frozen=True)
class LinearPlan:
    """Row/column tables of OpenCV's fixed-point INTER_LINEAR for one (source, destination, channels) geometry."""

    rows: np.ndarray  # intp: the distinct source rows the destination needs
    row0: np.ndarray  # intp (h,): index into ``rows`` of the upper tap
    row1: np.ndarray  # intp (h,): index into ``rows`` of the lower tap
    beta0: np.ndarray  # int32 (h, 1)
    beta1: np.ndarray  # int32 (h, 1)
    xofs0: np.ndarray  # intp (w,): source column of the left tap
    xofs1: np.ndarray  # intp (w,): source column of the right tap
    alpha0: np.ndarray  # int32 (w*cn,)
    alpha1: np.ndarray  # int32 (w*cn,)


@dataclass(frozen=True)
class AreaPlan:
    """OpenCV's INTER_AREA decimation tables: per destination column/row, padded lists of taps and weights."""

    fast: bool  # integer scale in both axes: plain block average
    scale_x: int
    scale_y: int
    xsrc: np.ndarray  # intp (E, w): source columns, one row per tap
    xalpha: np.ndarray  # float32 (E, w*cn)
    ysrc: np.ndarray  # intp (F, h): source rows, one row per tap
    yalpha: np.ndarray  # float32 (F, h, 1)


def _saturate_short(v: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(v.astype(np.float64)), -32768, 32767).astype(np.int32)


def _linear_axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv::resize``'s float source coordinate per destination index: (floor, fraction as float32)."""
    inv = dst / src
    scale = 1.0 / inv
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(_F32)
    s = np.floor(f).astype(np.int64)
    return s, (f - s.astype(_F32)).astype(_F32)


def make_linear_plan(image_height: int, image_width: int, channels: int, height: int, width: int) -> LinearPlan:
    """Tables for ``cv::resize(INTER_LINEAR)`` of a uint8 (H, W, channels) image to (height, width)."""
    sx, fx = _linear_axis(image_width, width)
    low = sx < 0
    fx[low], sx[low] = 0, 0
    high = sx >= image_width - 1
    fx[high], sx[high] = 0, image_width - 1
    a0 = _saturate_short((_F32(1) - fx) * _F32(_COEF_SCALE))
    a1 = _saturate_short(fx * _F32(_COEF_SCALE))
    xofs0 = sx.astype(np.intp)
    xofs1 = np.where(high, sx, sx + 1).astype(np.intp)
    sy, fy = _linear_axis(image_height, height)
    b0 = _saturate_short((_F32(1) - fy) * _F32(_COEF_SCALE))
    b1 = _saturate_short(fy * _F32(_COEF_SCALE))
    y0 = np.clip(sy, 0, image_height - 1)
    y1 = np.clip(sy + 1, 0, image_height - 1)
    rows, inverse = np.unique(np.concatenate([y0, y1]), return_inverse=True)
    return LinearPlan(
        rows.astype(np.intp),
        inverse[:height].astype(np.intp),
        inverse[height:].astype(np.intp),
        b0.reshape(-1, 1),
        b1.reshape(-1, 1),
        xofs0,
        xofs1,
        np.repeat(a0, channels),
        np.repeat(a1, channels),
    )


def resize_linear(pixels: np.ndarray, plan: LinearPlan, out: np.ndarray) -> np.ndarray:
    """Apply ``plan`` to a C-contiguous uint8 (H, W, cn) image, writing uint8 (h, w*cn) into ``out``.

    Vertical step as OpenCV's SIMD kernel rounds it (used for whole rows, tails included, in the shipped builds):
    ``(((d0 >> 4) * b0 >> 16) + ((d1 >> 4) * b1 >> 16) + 2) >> 2``."""
    src = _pixel_rows(pixels)[plan.rows]
    horiz = _gather_columns(src, plan.xofs0) * plan.alpha0
    horiz += _gather_columns(src, plan.xofs1) * plan.alpha1
    horiz >>= 4
    top = horiz[plan.row0]
    top *= plan.beta0
    top >>= 16
    bottom = horiz[plan.row1]
    bottom *= plan.beta1
    bottom >>= 16
    top += bottom
    top += 2
    top >>= 2
    np.minimum(top, 255, out=top)
    np.copyto(out, top, casting="unsafe")
    return out


def _pixel_rows(pixels: np.ndarray) -> np.ndarray:
    """A C-contiguous (H, W, cn) uint8 image as (H, W) whole-pixel items, so gathers move pixels, not bytes."""
    h, w, cn = pixels.shape
    return pixels.reshape(h, w * cn).view(np.dtype((np.void, cn)))


def _gather_columns(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The pixels at ``columns`` of every row, back as uint8 (rows, len(columns) * cn)."""
    picked = np.take(rows, columns, axis=1)
    return picked.view(np.uint8).reshape(picked.shape[0], -1)


def _area_tab(src: int, dst: int, scale: float) -> list[list[tuple[int, float]]]:
    """``computeResizeAreaTab``: per destination index, the (source index, float32 weight) taps in order."""
    taps: list[list[tuple[int, float]]] = []
    for d in range(dst):
        fs1 = d * scale
        fs2 = fs1 + scale
        cell = min(scale, src - fs1)
        s1, s2 = math.ceil(fs1), math.floor(fs2)
        s2 = min(s2, src - 1)
        s1 = min(s1, s2)
        row: list[tuple[int, float]] = []
        if s1 - fs1 > 1e-3:
            row.append((s1 - 1, float(_F32((s1 - fs1) / cell))))
        row.extend((s, float(_F32(1.0 / cell))) for s in range(s1, s2))
        if fs2 - s2 > 1e-3:
            row.append((s2, float(_F32(min(min(fs2 - s2, 1.0), cell) / cell))))
        taps.append(row)
    return taps


def _pad_taps(taps: list[list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Taps as (E, n) index and weight arrays; missing taps read index 0 with weight 0 (adds an exact +0)."""
    e = max(len(t) for t in taps)
    idx = np.zeros((e, len(taps)), dtype=np.intp)
    alpha = np.zeros((e, len(taps)), dtype=_F32)
    for j, t in enumerate(taps):
        for k, (s, a) in enumerate(t):
            idx[k, j], alpha[k, j] = s, a
    return idx, alpha


def make_area_plan(image_height: int, image_width: int, channels: int, height: int, width: int) -> AreaPlan:
    """Tables for ``cv::resize(INTER_AREA)`` when shrinking in both axes."""
    scale_x = 1.0 / (width / image_width)
    scale_y = 1.0 / (height / image_height)
    ix, iy = int(round(scale_x)), int(round(scale_y))
    fast = abs(scale_x - ix) < 2.220446049250313e-16 and abs(scale_y - iy) < 2.220446049250313e-16
    if fast:
        empty_i, empty_f = np.zeros((0, 0), np.intp), np.zeros((0, 0), _F32)
        return AreaPlan(True, ix, iy, empty_i, empty_f, empty_i, empty_f.reshape(0, 0, 1))
    xi, xa = _pad_taps(_area_tab(image_width, width, scale_x))
    xalpha = np.repeat(xa, channels, axis=1)
    yi, ya = _pad_taps(_area_tab(image_height, height, scale_y))
    return AreaPlan(False, 0, 0, xi, xalpha, yi, ya[:, :, None])


def resize_area(pixels: np.ndarray, plan: AreaPlan, out: np.ndarray) -> np.ndarray:
    """Apply ``plan`` to a C-contiguous uint8 (H, W, cn) image, writing uint8 (h, w*cn) into ``out``."""
    h = out.shape[0]
    cn = pixels.shape[2]
    if plan.fast:
        sx, sy = plan.scale_x, plan.scale_y
        blocks = pixels[: h * sy].reshape(h, sy, -1, sx, cn).astype(np.int32)
        total = blocks.sum(axis=(1, 3)).reshape(h, -1)
        if sx == 2 and sy == 2:
            np.copyto(out, (total + 2) >> 2, casting="unsafe")
        else:
            scaled = total.astype(_F32) * _F32(1.0 / (sx * sy))
            np.copyto(out, np.clip(np.rint(scaled), 0, 255), casting="unsafe")
        return out
    rows = _pixel_rows(pixels)
    buf = np.zeros((rows.shape[0], plan.xalpha.shape[1]), dtype=_F32)
    tmp = np.empty_like(buf)
    for k in range(plan.xsrc.shape[0]):
        np.multiply(_gather_columns(rows, plan.xsrc[k]), plan.xalpha[k], out=tmp)
        buf += tmp
    total = np.zeros((h, buf.shape[1]), dtype=_F32)
    part = np.empty_like(total)
    for k in range(plan.ysrc.shape[0]):
        np.multiply(buf[plan.ysrc[k]], plan.yalpha[k], out=part)
        total += part
    np.rint(total, out=total)
    np.clip(total, 0, 255, out=total)
    np.copyto(out, total, casting="unsafe")
    return out


# --- banded, allocation-free application (the Preprocessor's 4-channel path) --------------------------------------
#
# The same arithmetic as ``resize_linear`` / ``resize_area`` in the same order (so the same bits), applied to a few
# destination rows at a time so every intermediate stays in cache, with scratch buffers made once per plan.
# ``emit(r0, r1, values)`` receives the final values of destination rows [r0, r1) as an (r1 - r0, w*cn) array
# (int32 for linear, float32 for area, both already in [0, 255]) that it may overwrite.
Emit = Callable[[int, int, np.ndarray], None]

_BAND_ELEMENTS = 1 << 15  # destination values per band (~128 KiB of int32 / float32 per intermediate)


def _band_edges(height: int, row_len: int) -> list[tuple[int, int]]:
    rows = max(1, _BAND_ELEMENTS // max(1, row_len))
    return [(r, min(height, r + rows)) for r in range(0, height, rows)]


@dataclass(frozen=True)
class _LinearBand:
    r0: int
    r1: int
    src: slice | np.ndarray  # source rows of this band's horizontal pass (a slice when contiguous)
    row0: np.ndarray  # intp (r1 - r0,): index into the band's horizontal rows
    row1: np.ndarray


class LinearRunner:
    """``resize_linear`` for one plan and channel count, banded, with its scratch buffers."""

    def __init__(self, plan: LinearPlan, channels: int, height: int, width: int) -> None:
        self.plan, self.cn, n = plan, channels, width * channels
        self.bands: list[_LinearBand] = []
        most = 1
        for r0, r1 in _band_edges(height, n):
            lo = int(min(plan.row0[r0:r1].min(), plan.row1[r0:r1].min()))
            hi = int(max(plan.row0[r0:r1].max(), plan.row1[r0:r1].max())) + 1
            src_rows = plan.rows[lo:hi]
            src = (
                slice(int(src_rows[0]), int(src_rows[-1]) + 1)
                if src_rows[-1] - src_rows[0] == hi - lo - 1
                else src_rows
            )
            self.bands.append(_LinearBand(r0, r1, src, plan.row0[r0:r1] - lo, plan.row1[r0:r1] - lo))
            most = max(most, hi - lo, r1 - r0)
        self.g0 = np.empty((most, n), np.uint8)
        self.g1 = np.empty((most, n), np.uint8)
        self.horiz = np.empty((most, n), np.int32)
        self.tmp = np.empty((most, n), np.int32)
        self.top = np.empty((most, n), np.int32)
        self.bottom = np.empty((most, n), np.int32)

    def run(self, pixels: np.ndarray, emit: Emit) -> None:
        plan, cn = self.plan, self.cn
        rows = _pixel_rows(pixels)
        item = np.dtype((np.void, cn))
        for b in self.bands:
            src = rows[b.src]
            m, k = src.shape[0], b.r1 - b.r0
            g0, g1 = self.g0[:m], self.g1[:m]
            np.take(src, plan.xofs0, axis=1, out=g0.view(item), mode="clip")
            np.take(src, plan.xofs1, axis=1, out=g1.view(item), mode="clip")
            horiz, tmp = self.horiz[:m], self.tmp[:m]
            np.multiply(g0, plan.alpha0, out=horiz)
            np.multiply(g1, plan.alpha1, out=tmp)
            horiz += tmp
            horiz >>= 4
            top, bottom = self.top[:k], self.bottom[:k]
            np.take(horiz, b.row0, axis=0, out=top, mode="clip")
            top *= plan.beta0[b.r0 : b.r1]
            top >>= 16
            np.take(horiz, b.row1, axis=0, out=bottom, mode="clip")
            bottom *= plan.beta1[b.r0 : b.r1]
            bottom >>= 16
            top += bottom
            top += 2
            top >>= 2
            np.minimum(top, 255, out=top)
            emit(b.r0, b.r1, top)


@dataclass(frozen=True)
class _AreaBand:
    r0: int
    r1: int
    src: slice  # source rows of this band's horizontal pass
    ysrc: np.ndarray  # intp (F, r1 - r0): index into the band's horizontal rows (padded taps: any row, weight 0)
    yalpha: np.ndarray  # float32 (F, r1 - r0, 1)


class AreaRunner:
    """``resize_area`` (general, non-integer scale) for one plan and channel count, banded, with its buffers."""

    def __init__(self, plan: AreaPlan, channels: int, height: int, width: int) -> None:
        if plan.fast:
            raise ValueError("AreaRunner handles the general INTER_AREA plan; use resize_area for integer scales")
        self.plan, self.cn, n = plan, channels, width * channels
        self.bands: list[_AreaBand] = []
        most = 1
        for r0, r1 in _band_edges(height, n):
            ys, ya = plan.ysrc[:, r0:r1], plan.yalpha[:, r0:r1]
            real = ya[..., 0] != 0
            lo, hi = int(ys[real].min()), int(ys[real].max()) + 1
            local = np.where(real, ys - lo, 0).astype(np.intp)
            self.bands.append(_AreaBand(r0, r1, slice(lo, hi), local, np.ascontiguousarray(ya)))
            most = max(most, hi - lo, r1 - r0)
        self.g = np.empty((most, n), np.uint8)
        self.buf = np.empty((most, n), _F32)
        self.tmp = np.empty((most, n), _F32)
        self.total = np.empty((most, n), _F32)
        self.part = np.empty((most, n), _F32)

    def run(self, pixels: np.ndarray, emit: Emit) -> None:
        plan, cn = self.plan, self.cn
        rows = _pixel_rows(pixels)
        item = np.dtype((np.void, cn))
        for b in self.bands:
            src = rows[b.src]
            m, k = src.shape[0], b.r1 - b.r0
            g, buf, tmp = self.g[:m], self.buf[:m], self.tmp[:m]
            # buf = ((0 + t0) + t1) + ...: 0 + t0 is t0 exactly (t0 >= +0), so start from t0
            np.take(src, plan.xsrc[0], axis=1, out=g.view(item), mode="clip")
            np.multiply(g, plan.xalpha[0], out=buf)
            for e in range(1, plan.xsrc.shape[0]):
                np.take(src, plan.xsrc[e], axis=1, out=g.view(item), mode="clip")
                np.multiply(g, plan.xalpha[e], out=tmp)
                buf += tmp
            total, part = self.total[:k], self.part[:k]
            np.take(buf, b.ysrc[0], axis=0, out=total, mode="clip")
            total *= b.yalpha[0]
            for f in range(1, b.ysrc.shape[0]):
                np.take(buf, b.ysrc[f], axis=0, out=part, mode="clip")
                part *= b.yalpha[f]
                total += part
            np.rint(total, out=total)
            np.clip(total, 0, 255, out=total)
            emit(b.r0, b.r1, total)
