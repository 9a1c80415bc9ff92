"""MediaPipe's CPU image-to-tensor warp (3-channel models), reproduced bit for bit.

MediaPipe builds a rotated ROI, maps its corners onto the tensor with ``cv::getPerspectiveTransform`` and calls
``cv::warpPerspective(INTER_LINEAR, BORDER_REPLICATE)`` on the uint8 image. The plan below redoes that float
arithmetic step by step (float32 where the C++ uses float, double elsewhere, no FMA) and turns it into integer
whole-pixel gather indices and 5-bit bilinear weights; applying it is four gathers, an integer X pass and a
float32 Y pass whose values are exact integers scaled by powers of two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_F32 = np.float32
_INT_MIN, _INT_MAX = -2147483648.0, 2147483647.0
DBL_EPSILON = float(np.finfo(np.float64).eps)  # OpenCV's DBL_EPSILON tolerances


Taps = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class WarpTaps:
    """Per tensor pixel, the four bilinear taps as flat whole-pixel indices and the 5-bit source fractions.

    ``offsets`` index the image as a flat array of whole pixels (``y * image_width + x``), so one gather moves a
    pixel's three (or four) bytes at once (``pixel_view`` gives that view of the image)."""

    height: int
    width: int
    offsets: Taps  # intp, shape (h*w,), taps (y0, x0) (y0, x1) (y1, x0) (y1, x1)
    fx: np.ndarray  # uint8 (h, w): the 1/32-pixel X fraction
    fy: np.ndarray  # uint8 (h, w): the 1/32-pixel Y fraction


@dataclass(frozen=True)
class SeparableWarpPlan:
    """A warp whose X fraction depends only on the tensor column and Y only on the row (rotation 0/180), or X only
    on the row and Y only on the column (90/270), checked exactly over the whole grid.

    Then ``S = (o0*gx + o1*fx)*gy + (o2*gx + o3*fx)*fy`` (the 2-D weights factor exactly), with the weights shaped
    to broadcast over the (h, w*channels) gathered pixels: (w*channels,) for weights that follow the column,
    (h, 1) for the row."""

    height: int
    width: int
    offsets: Taps
    x_weights: tuple[np.ndarray, np.ndarray]  # uint16, 32 - fx and fx
    # float32, (32 - fy) / 1024 and fy / 1024: every partial sum is an integer below 2**24 times 2**-10, so the
    # float32 Y pass is exact and ``floor(S / 1024 + 0.5)`` equals ``(S + 512) >> 10``.
    y_weights: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class GridWarpPlan:
    """A warp whose fractions do not factor: the 5-bit fractions of every tensor pixel, per channel lane."""

    height: int
    width: int
    offsets: Taps
    # uint8 (h, w*channels): fx and fy repeated per channel lane of the image; the weights 32-f and f are derived
    # per call.
    fractions: tuple[np.ndarray, np.ndarray]


WarpPlan = SeparableWarpPlan | GridWarpPlan


def pixel_view(flat: np.ndarray, channels: int) -> np.ndarray:
    """A flat C-contiguous uint8 (H*W*channels,) image as (H*W,) whole pixels: 3-byte voids or uint32 RGBA."""
    return flat.view(np.uint32) if channels == 4 else flat.view("V3")


def roi_corners(image_width: int, image_height: int, rotation_degrees: int) -> list[tuple[np.float32, np.float32]]:
    """The four ROI corners ``cv::boxPoints`` gives MediaPipe for the whole image at ``rotation_degrees``."""
    rotation = _F32(-rotation_degrees * math.pi / 180.0)
    norm_w, norm_h = _F32(1.0), _F32(1.0)
    if abs(rotation_degrees) % 180 != 0:
        norm_w = _F32(1.0) * _F32(image_height) / _F32(image_width)
        norm_h = _F32(1.0) * _F32(image_width) / _F32(image_height)
    cx = _F32(0.5) * _F32(image_width)
    cy = _F32(0.5) * _F32(image_height)
    w = norm_w * _F32(image_width)
    h = norm_h * _F32(image_height)
    angle = _F32(float(rotation * _F32(180.0)) / math.pi)
    theta = float(angle) * math.pi / 180.0
    b = _F32(math.cos(theta)) * _F32(0.5)
    a = _F32(math.sin(theta)) * _F32(0.5)
    return [
        ((cx - a * h) - b * w, (cy + b * h) - a * w),
        ((cx + a * h) - b * w, (cy - b * h) - a * w),
        ((a * h + cx) + b * w, (cy - b * h) + a * w),
        ((cx - a * h) + b * w, (b * h + cy) + a * w),
    ]


def _solve_lu(a: list[list[float]], b: list[float]) -> list[float]:
    """OpenCV's ``LUImpl`` (partial pivoting, division in back substitution) on an 8x8 double system."""
    m = len(b)
    for i in range(m):
        k = i
        for j in range(i + 1, m):
            if abs(a[j][i]) > abs(a[k][i]):
                k = j
        if abs(a[k][i]) < DBL_EPSILON * 100:
            raise ValueError("degenerate perspective transform")
        if k != i:
            a[i], a[k] = a[k], a[i]
            b[i], b[k] = b[k], b[i]
        d = -1.0 / a[i][i]
        for j in range(i + 1, m):
            alpha = a[j][i] * d
            row_j, row_i = a[j], a[i]
            for c in range(i + 1, m):
                row_j[c] += alpha * row_i[c]
            b[j] += alpha * b[i]
    for i in range(m - 1, -1, -1):
        s = b[i]
        for c in range(i + 1, m):
            s -= a[i][c] * b[c]
        b[i] = s / a[i][i]
    return b


def perspective_matrix(
    src: list[tuple[np.float32, np.float32]], dst: list[tuple[np.float32, np.float32]]
) -> list[float]:
    """``cv::getPerspectiveTransform`` for float32 points: the 3x3 forward matrix, row-major, in double."""
    a = [[0.0] * 8 for _ in range(8)]
    b = [0.0] * 8
    for i in range(4):
        sx, sy = src[i]
        dx, dy = dst[i]
        a[i][0] = a[i + 4][3] = float(sx)
        a[i][1] = a[i + 4][4] = float(sy)
        a[i][2] = a[i + 4][5] = 1.0
        a[i][6] = float(-sx * dx)
        a[i][7] = float(-sy * dx)
        a[i + 4][6] = float(-sx * dy)
        a[i + 4][7] = float(-sy * dy)
        b[i] = float(dx)
        b[i + 4] = float(dy)
    return [*_solve_lu(a, b), 1.0]


def invert3(m: list[float]) -> list[float]:
    """OpenCV's closed-form double 3x3 ``invert`` (cofactors times 1/det), as ``warpPerspective`` uses it."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    det = m00 * (m11 * m22 - m12 * m21) - m01 * (m10 * m22 - m12 * m20) + m02 * (m10 * m21 - m11 * m20)
    if det == 0.0:
        return [0.0] * 9
    d = 1.0 / det
    return [
        (m11 * m22 - m12 * m21) * d,
        (m02 * m21 - m01 * m22) * d,
        (m01 * m12 - m02 * m11) * d,
        (m12 * m20 - m10 * m22) * d,
        (m00 * m22 - m02 * m20) * d,
        (m02 * m10 - m00 * m12) * d,
        (m10 * m21 - m11 * m20) * d,
        (m01 * m20 - m00 * m21) * d,
        (m00 * m11 - m01 * m10) * d,
    ]


def source_coords(
    inv: list[float], height: int, width: int, rows: slice | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``WarpPerspectiveInvoker``'s 1/32-pixel source coordinates (int64, shape (rows, width)) for each tensor
    pixel of ``rows`` (default all ``height`` rows)."""
    m0, m1, m2, m3, m4, m5, m6, m7, m8 = inv
    r0, r1 = (0, height) if rows is None else (rows.start, rows.stop)
    bw0 = min(1024 // min(16, height), width)
    u = np.arange(width, dtype=np.int64)
    xb = ((u // bw0) * bw0).astype(np.float64)[None, :]
    x1 = (u % bw0).astype(np.float64)[None, :]
    r = np.arange(r0, r1, dtype=np.float64)[:, None]
    x0 = (m0 * xb + m1 * r) + m2
    y0 = (m3 * xb + m4 * r) + m5
    w0 = (m6 * xb + m7 * r) + m8
    wd = w0 + m6 * x1
    with np.errstate(divide="ignore"):
        scale = np.where(wd != 0.0, 32.0 / np.where(wd != 0.0, wd, 1.0), 0.0)
    fx = np.clip((x0 + m0 * x1) * scale, _INT_MIN, _INT_MAX)
    fy = np.clip((y0 + m3 * x1) * scale, _INT_MIN, _INT_MAX)
    return np.rint(fx).astype(np.int64), np.rint(fy).astype(np.int64)


def warp_matrix(image_height: int, image_width: int, height: int, width: int, rotation_degrees: int) -> list[float]:
    """The inverse (tensor -> image) matrix ``warpPerspective`` samples with, for the whole image and a rotation."""
    src = roi_corners(image_width, image_height, rotation_degrees)
    fw, fh = _F32(width), _F32(height)
    dst = [(_F32(0), fh), (_F32(0), _F32(0)), (fw, _F32(0)), (fw, fh)]
    return invert3(perspective_matrix(src, dst))


_PLAN_CHUNK = 16384  # tensor pixels per chunk of the plan build: bounds its float64/int64 temporaries


def warp_taps(image_height: int, image_width: int, height: int, width: int, rotation_degrees: int) -> WarpTaps:
    """The taps and fractions that warp a C-contiguous (image_height, image_width, C) uint8 image to (height, width).

    The grid is built in row chunks, so the transient memory stays small."""
    inv = warp_matrix(image_height, image_width, height, width, rotation_degrees)
    n = height * width
    offsets: Taps = (np.empty(n, np.intp), np.empty(n, np.intp), np.empty(n, np.intp), np.empty(n, np.intp))
    fxs = np.empty((height, width), np.uint8)
    fys = np.empty((height, width), np.uint8)
    step = max(1, _PLAN_CHUNK // width)
    for r0 in range(0, height, step):
        r1 = min(height, r0 + step)
        sx, sy = source_coords(inv, height, width, slice(r0, r1))
        np.bitwise_and(sx, 31, out=fxs[r0:r1], casting="unsafe")
        np.bitwise_and(sy, 31, out=fys[r0:r1], casting="unsafe")
        ix = np.clip(sx >> 5, -32768, 32767)
        iy = np.clip(sy >> 5, -32768, 32767)
        del sx, sy
        x_lo = np.clip(ix, 0, image_width - 1)
        x_hi = np.clip(ix + 1, 0, image_width - 1)
        y_lo = np.clip(iy, 0, image_height - 1) * image_width
        y_hi = np.clip(iy + 1, 0, image_height - 1) * image_width
        lo, hi = r0 * width, r1 * width
        for k, (yy, xx) in enumerate(((y_lo, x_lo), (y_lo, x_hi), (y_hi, x_lo), (y_hi, x_hi))):
            np.add(yy, xx, out=offsets[k][lo:hi].reshape(r1 - r0, width), casting="unsafe")
    return WarpTaps(height, width, offsets, fxs, fys)


def make_warp_plan(
    image_height: int, image_width: int, channels: int, height: int, width: int, rotation_degrees: int
) -> WarpPlan:
    """The plan that warps a C-contiguous (image_height, image_width, channels) uint8 image to (height, width, 3),
    sampling its first three channels: separable when the fractions factor, else the 2-D grid form.

    The plan keeps four intp indices per tensor pixel, plus per-row/column weights (separable) or two uint8
    fractions per tensor pixel and lane (grid)."""
    taps = warp_taps(image_height, image_width, height, width, rotation_degrees)
    return separable_plan(taps, channels) or grid_plan(taps, channels)


def grid_plan(taps: WarpTaps, channels: int) -> GridWarpPlan:
    """The 2-D form of ``taps`` for ``channels``-byte pixels: each fraction repeated per channel lane."""
    lanes = (taps.height, taps.width * channels)
    fx = np.repeat(taps.fx.reshape(-1), channels).reshape(lanes)
    fy = np.repeat(taps.fy.reshape(-1), channels).reshape(lanes)
    return GridWarpPlan(taps.height, taps.width, taps.offsets, (fx, fy))


def separable_plan(taps: WarpTaps, channels: int) -> SeparableWarpPlan | None:
    """The separable form of ``taps`` when each fraction is exactly constant down the columns or along the rows
    of the tensor grid; None otherwise. Column weights are repeated per channel lane.

    The 2-D weights are products ``(32-fx or fx) * (32-fy or fy)``, so the bilinear sum factors exactly into a
    pass with the X weights and a pass with the Y weights whichever axis each one follows; the taps keep their
    own per-pixel indices, so only the fractions need to factor."""

    def along(f: np.ndarray) -> np.ndarray | None:
        if (f == f[:1, :]).all():  # follows the tensor column: (w*channels,)
            column: np.ndarray = np.repeat(f[0], channels)
            return column
        if (f == f[:, :1]).all():  # follows the tensor row: (h, 1)
            row: np.ndarray = f[:, :1].copy()
            return row
        return None

    ax, ay = along(taps.fx), along(taps.fy)
    if ax is None or ay is None:
        return None
    col, row = ax.astype(np.uint16), ay.astype(np.float32)
    y_weights = ((32 - row) * _F32(1 / 1024), row * _F32(1 / 1024))
    return SeparableWarpPlan(taps.height, taps.width, taps.offsets, (32 - col, col), y_weights)


def apply_warp(
    flat: np.ndarray,
    plan: WarpPlan,
    rows: slice,
    bufs: tuple[np.ndarray, ...],
    channels: int = 3,
) -> np.ndarray:
    """The warp of tensor rows ``rows`` (a band): ``(S + 512) >> 10`` as float32, a (rows, w*channels) view
    whose lanes past the third (RGBA input) are garbage.

    ``flat`` is the image as a flat uint8 buffer of ``channels``-byte pixels; ``bufs`` are whole-tensor scratch
    arrays, each (h, w*channels) or longer: g uint8, top and bot uint16, then float32 ``a`` and ``b``; only the
    band's rows of each are touched, so bands can run on different threads. ``a`` may be the tensor itself (3
    channels): the result is written there. The X pass is integer, the Y pass float32 with every value an exact
    integer below 2**24 scaled by a power of two, so the result equals the integer 2-D formula exactly."""
    w = plan.width
    n = w * channels
    r0, r1 = rows.start, rows.stop
    m = r1 - r0
    g, top, bot, a, b = (x.reshape(-1)[r0 * n : r1 * n].reshape(m, n) for x in bufs)
    t16 = b.reshape(-1).view(np.uint16)[: m * n].reshape(m, n)
    if isinstance(plan, SeparableWarpPlan):
        gx, fx = plan.x_weights
        gy, fy = plan.y_weights
        if gx.ndim == 2:
            gx, fx = gx[r0:r1], fx[r0:r1]
        if gy.ndim == 2:
            gy, fy = gy[r0:r1], fy[r0:r1]
        _x_pass(flat, plan.offsets, r0 * w, r1 * w, channels, (g, top, bot, t16), gx, fx)
        np.copyto(b, bot)
        np.multiply(b, fy, out=b)
        np.copyto(a, top)
        np.multiply(a, gy, out=a)
        np.add(a, b, out=a)
        np.add(a, _F32(0.5), out=a)
    else:
        fx, fy = (v[r0:r1] for v in plan.fractions)
        gx = a.reshape(-1).view(np.uint8)[: m * n].reshape(m, n)  # a is free until the Y pass
        np.subtract(32, fx, out=gx)
        _x_pass(flat, plan.offsets, r0 * w, r1 * w, channels, (g, top, bot, t16), gx, fx)
        # S = 32*top + (bot - top)*fy, each partial an integer below 2**24
        np.subtract(bot, top, out=t16)
        np.copyto(b, t16.view(np.int16))
        np.multiply(b, fy, out=b)
        np.copyto(a, top)
        np.multiply(a, _F32(32), out=a)
        np.add(a, b, out=a)
        np.add(a, _F32(512), out=a)
        np.multiply(a, _F32(1 / 1024), out=a)
    np.floor(a, out=a)
    return a


def _x_pass(
    flat: np.ndarray,
    offsets: Taps,
    lo: int,
    hi: int,
    channels: int,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    gx: np.ndarray,
    fx: np.ndarray,
) -> None:
    """The integer X pass of tensor pixels ``[lo, hi)``: ``top = o0*gx + o1*fx`` and ``bot = o2*gx + o3*fx``
    (uint16) from whole-pixel gathers into the uint8 scratch ``g`` (``t16`` is uint16 scratch)."""
    g, top, bot, t16 = scratch
    src, gv = pixel_view(flat, channels), pixel_view(g.reshape(-1), channels)
    for dst, k0, k1 in ((top, 0, 1), (bot, 2, 3)):
        np.take(src, offsets[k0][lo:hi], out=gv, mode="clip")
        np.multiply(g, gx, out=dst, dtype=np.uint16)
        np.take(src, offsets[k1][lo:hi], out=gv, mode="clip")
        np.multiply(g, fx, out=t16, dtype=np.uint16)
        np.add(dst, t16, out=dst)
