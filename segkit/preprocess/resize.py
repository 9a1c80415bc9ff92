"""OpenCV's uint8 ``cv::resize`` (INTER_LINEAR and INTER_AREA), reproduced bit for bit for the 4-channel path.

MediaPipe's legacy 4-channel pipeline stretches the RGBA image to the tensor size with ``cv::resize``: INTER_AREA
when the image is larger than the tensor in both dimensions, INTER_LINEAR otherwise. Plans hold the integer
tables (linear) or float32 weights (area) OpenCV derives from the sizes; applying one is gathers and arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from segkit import _common
from segkit.preprocess.warp import DBL_EPSILON

_F32 = np.float32
_COEF_SCALE = 2048


def choose_interpolation(image_height: int, image_width: int, height: int, width: int) -> str:
    """``"area"`` when the image is larger than the tensor in both dimensions (MediaPipe's rule), else ``"linear"``."""
    return "area" if image_width > width and image_height > height else "linear"


@dataclass(frozen=True)
class PixelLinearPlan:
    """Row/column tables of OpenCV's fixed-point uint8 INTER_LINEAR for one (source, destination, channels)
    geometry."""

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
class PixelBlockPlan:
    """OpenCV's INTER_AREA at an integer scale in both axes: the average of ``scale_y`` x ``scale_x`` blocks."""

    scale_x: int
    scale_y: int


@dataclass(frozen=True)
class PixelAreaPlan:
    """OpenCV's general uint8 INTER_AREA decimation tables: per destination column/row, padded lists of taps and
    weights."""

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


def pixel_linear_plan(image_height: int, image_width: int, channels: int, height: int, width: int) -> PixelLinearPlan:
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
    return PixelLinearPlan(
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


def _pixel_rows(pixels: np.ndarray) -> np.ndarray:
    """A C-contiguous (H, W, cn) uint8 image as (H, W) whole-pixel items, so gathers move pixels, not bytes."""
    h, w, cn = pixels.shape
    return pixels.reshape(h, w * cn).view(np.dtype((np.void, cn)))


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


def pixel_area_plan(
    image_height: int, image_width: int, channels: int, height: int, width: int
) -> PixelBlockPlan | PixelAreaPlan:
    """Tables for ``cv::resize(INTER_AREA)`` when shrinking in both axes: a block average at integer scales (as
    OpenCV's fast path), the general tap tables otherwise."""
    scale_x = 1.0 / (width / image_width)
    scale_y = 1.0 / (height / image_height)
    ix, iy = round(scale_x), round(scale_y)
    if abs(scale_x - ix) < DBL_EPSILON and abs(scale_y - iy) < DBL_EPSILON:
        return PixelBlockPlan(ix, iy)
    xi, xa = _pad_taps(_area_tab(image_width, width, scale_x))
    xalpha = np.repeat(xa, channels, axis=1)
    yi, ya = _pad_taps(_area_tab(image_height, height, scale_y))
    return PixelAreaPlan(xi, xalpha, yi, ya[:, :, None])


# --- banded, allocation-free application (the Preprocessor's 4-channel path) --------------------------------------
#
# Each resizer applies OpenCV's arithmetic in OpenCV's order (so the same bits) to a few destination rows at a time
# so every intermediate stays in cache, with scratch buffers made once per plan. ``emit(r0, r1, values)`` receives
# the final values of destination rows [r0, r1) as an (r1 - r0, w*cn) array (int32 for linear, float32 for area,
# both already in [0, 255]) that it may overwrite.
Emit = Callable[[int, int, np.ndarray], None]


class PixelResizer(Protocol):
    """A uint8 ``cv::resize`` for one geometry, applied band by band."""

    def run(self, pixels: np.ndarray, emit: Emit) -> None:
        """Resize C-contiguous uint8 (H, W, cn) ``pixels``, handing each band of rows to ``emit``."""
        ...


def pixel_resizer(image_height: int, image_width: int, height: int, width: int, channels: int) -> PixelResizer:
    """The resizer MediaPipe's rule picks for this geometry: INTER_AREA when shrinking in both axes, else LINEAR."""
    if choose_interpolation(image_height, image_width, height, width) == "linear":
        plan = pixel_linear_plan(image_height, image_width, channels, height, width)
        return PixelLinearResizer(plan, channels, height, width)
    area = pixel_area_plan(image_height, image_width, channels, height, width)
    if isinstance(area, PixelBlockPlan):
        return PixelBlockResizer(area, channels, height, width)
    return PixelAreaResizer(area, channels, height, width)


def _band_edges(height: int, row_len: int) -> list[tuple[int, int]]:
    rows = max(1, _common.BAND_ELEMENTS // max(1, row_len))
    return [(r, min(height, r + rows)) for r in range(0, height, rows)]


class PixelBlockResizer:
    """OpenCV's integer-scale INTER_AREA (a block average) in one pass, into a buffer reused per call."""

    def __init__(self, plan: PixelBlockPlan, channels: int, height: int, width: int) -> None:
        self.plan, self.cn = plan, channels
        self.out = np.empty((height, width * channels), np.uint8)

    def run(self, pixels: np.ndarray, emit: Emit) -> None:
        h, sx, sy = self.out.shape[0], self.plan.scale_x, self.plan.scale_y
        blocks = pixels[: h * sy].reshape(h, sy, -1, sx, self.cn).astype(np.int32)
        total = blocks.sum(axis=(1, 3)).reshape(h, -1)
        if sx == 2 and sy == 2:
            np.copyto(self.out, (total + 2) >> 2, casting="unsafe")
        else:
            scaled = total.astype(_F32) * _F32(1.0 / (sx * sy))
            np.copyto(self.out, np.clip(np.rint(scaled), 0, 255), casting="unsafe")
        emit(0, h, self.out)


@dataclass(frozen=True)
class _LinearBand:
    r0: int
    r1: int
    src: slice | np.ndarray  # source rows of this band's horizontal pass (a slice when contiguous)
    row0: np.ndarray  # intp (r1 - r0,): index into the band's horizontal rows
    row1: np.ndarray


class PixelLinearResizer:
    """OpenCV's uint8 INTER_LINEAR for one plan and channel count, banded, with its scratch buffers.

    Vertical step as OpenCV's SIMD kernel rounds it (used for whole rows, tails included, in the shipped builds):
    ``(((d0 >> 4) * b0 >> 16) + ((d1 >> 4) * b1 >> 16) + 2) >> 2``."""

    def __init__(self, plan: PixelLinearPlan, channels: int, height: int, width: int) -> None:
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


class PixelAreaResizer:
    """OpenCV's general (non-integer scale) uint8 INTER_AREA for one plan and channel count, banded, with its
    buffers."""

    def __init__(self, plan: PixelAreaPlan, channels: int, height: int, width: int) -> None:
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
