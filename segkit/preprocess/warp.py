"""MediaPipe's CPU image-to-tensor warp (3-channel models), reproduced bit for bit.

MediaPipe builds a rotated ROI, maps its corners onto the tensor with ``cv::getPerspectiveTransform`` and calls
``cv::warpPerspective(INTER_LINEAR, BORDER_REPLICATE)`` on the uint8 image. The plan below redoes that float
arithmetic step by step (float32 where the C++ uses float, double elsewhere, no FMA) and turns it into integer
gather indices and 5-bit bilinear weights, so applying it is one gather plus an integer multiply-add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_F32 = np.float32
_INT_MIN, _INT_MAX = -2147483648.0, 2147483647.0


@dataclass(frozen=True)
class WarpPlan:
    """Gather offsets (per output element, relative to a flat pixel buffer) and the four bilinear weights."""

    height: int
    width: int
    offsets: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # intp, shape (h*w*3,)
    weights: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # int32, shape (h*w*3,)
    # Separable form, set when the 1/32-pixel source X depends only on the tensor column and Y only on the row
    # (rotation 0/180), or X only on the row and Y only on the column (90/270), checked exactly over the whole
    # grid. Then ``S = (o0*gx + o1*fx)*gy + (o2*gx + o3*fx)*fy`` (the 2-D weights factor exactly), with the
    # X weights ``(gx, fx)`` and Y weights ``(gy, fy)`` shaped to broadcast over the (h, w*3) output: (w*3,) for
    # weights that follow the column, (h, 1) for weights that follow the row.
    separable: bool = False
    x_weights: tuple[np.ndarray, np.ndarray] | None = None  # uint16, 32 - fx and fx
    y_weights: tuple[np.ndarray, np.ndarray] | None = None  # uint32, 32 - fy and fy


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
        if abs(a[k][i]) < 2.220446049250313e-16 * 100:
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


def perspective_matrix(src: list[tuple[np.float32, np.float32]], dst: list[tuple[np.float32, np.float32]]) -> list[float]:
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


def source_coords(inv: list[float], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``WarpPerspectiveInvoker``'s 1/32-pixel source coordinates (int64, shape (height, width)) for each tensor pixel."""
    m0, m1, m2, m3, m4, m5, m6, m7, m8 = inv
    bw0 = min(1024 // min(16, height), width)
    u = np.arange(width, dtype=np.int64)
    xb = ((u // bw0) * bw0).astype(np.float64)[None, :]
    x1 = (u % bw0).astype(np.float64)[None, :]
    r = np.arange(height, dtype=np.float64)[:, None]
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


def make_warp_plan(
    image_height: int, image_width: int, channels: int, height: int, width: int, rotation_degrees: int
) -> WarpPlan:
    """Gather offsets and weights that warp a C-contiguous (image_height, image_width, channels) uint8 image to
    (height, width, 3), sampling its first three channels."""
    inv = warp_matrix(image_height, image_width, height, width, rotation_degrees)
    sx, sy = source_coords(inv, height, width)
    ix = np.clip(sx >> 5, -32768, 32767)
    iy = np.clip(sy >> 5, -32768, 32767)
    fx = (sx & 31).astype(np.int32)
    fy = (sy & 31).astype(np.int32)
    x_lo = np.clip(ix, 0, image_width - 1)
    x_hi = np.clip(ix + 1, 0, image_width - 1)
    y_lo = np.clip(iy, 0, image_height - 1)
    y_hi = np.clip(iy + 1, 0, image_height - 1)
    chan = np.arange(3, dtype=np.intp)

    def offsets(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        base = (yy.astype(np.intp) * image_width + xx.astype(np.intp)) * channels
        return (base[..., None] + chan).reshape(-1)

    def spread(w: np.ndarray) -> np.ndarray:
        return np.repeat(w.reshape(-1), 3).astype(np.int32)

    gx, gy = 32 - fx, 32 - fy
    sep = _separable_weights(sx, sy)
    return WarpPlan(
        height,
        width,
        (offsets(y_lo, x_lo), offsets(y_lo, x_hi), offsets(y_hi, x_lo), offsets(y_hi, x_hi)),
        (spread(gx * gy), spread(fx * gy), spread(gx * fy), spread(fx * fy)),
        sep is not None,
        *(sep if sep is not None else (None, None)),
    )


def _separable_weights(
    sx: np.ndarray, sy: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """Broadcastable X and Y weight pairs when each fixed-point coordinate (integer part and 5-bit fraction)
    is exactly constant down the columns or along the rows of the tensor grid; None otherwise.

    The 2-D weights are products ``(32-fx or fx) * (32-fy or fy)``, so the bilinear sum factors exactly into a
    pass with the X weights and a pass with the Y weights whichever axis each one follows."""

    def along(v: np.ndarray, dtype: type) -> tuple[np.ndarray, np.ndarray] | None:
        f = (v & 31).astype(np.int64)  # only the fractions need to factor: the taps keep their 2-D offsets
        if (f == f[:1, :]).all():  # follows the tensor column: (w*3,)
            col = np.repeat(f[0], 3)
            return (32 - col).astype(dtype), col.astype(dtype)
        if (f == f[:, :1]).all():  # follows the tensor row: (h, 1)
            row = f[:, :1]
            return (32 - row).astype(dtype), row.astype(dtype)
        return None

    xw, yw = along(sx, np.uint16), along(sy, np.uint32)
    return None if xw is None or yw is None else (xw, yw)


def apply_separable(
    flat: np.ndarray,
    plan: WarpPlan,
    rows: slice,
    bufs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """The separable warp of tensor rows ``rows`` (a band): uint32 ``(S + 512) >> 10`` as a (rows, w*3) view.

    ``flat`` is the image as a flat uint8 buffer; ``bufs`` are whole-tensor scratch arrays (g uint8 (h*w*3,),
    top and bot uint16 (h, w*3), S and tmp uint32 (h, w*3)); only the band's rows of each are touched, so bands
    can run on different threads. Integer arithmetic throughout: the result equals the 2-D formula exactly."""
    n = plan.width * 3
    r0, r1 = rows.start, rows.stop
    lo, hi = r0 * n, r1 * n
    g = bufs[0][lo:hi]
    g2 = g.reshape(r1 - r0, n)
    top, bot, s, t = bufs[1][r0:r1], bufs[2][r0:r1], bufs[3][r0:r1], bufs[4][r0:r1]
    t16 = t.reshape(-1).view(np.uint16)[: (r1 - r0) * n].reshape(r1 - r0, n)
    gx, fx = plan.x_weights  # type: ignore[misc]
    gy, fy = plan.y_weights  # type: ignore[misc]
    if gx.ndim == 2:
        gx, fx = gx[r0:r1], fx[r0:r1]
    if gy.ndim == 2:
        gy, fy = gy[r0:r1], fy[r0:r1]
    o = plan.offsets
    np.take(flat, o[0][lo:hi], out=g, mode="clip")
    np.multiply(g2, gx, out=top)
    np.take(flat, o[1][lo:hi], out=g, mode="clip")
    np.multiply(g2, fx, out=t16)
    np.add(top, t16, out=top)
    np.take(flat, o[2][lo:hi], out=g, mode="clip")
    np.multiply(g2, gx, out=bot)
    np.take(flat, o[3][lo:hi], out=g, mode="clip")
    np.multiply(g2, fx, out=t16)
    np.add(bot, t16, out=bot)
    np.multiply(top, gy, out=s)
    np.multiply(bot, fy, out=t)
    np.add(s, t, out=s)
    np.add(s, 512, out=s)
    np.right_shift(s, 10, out=s)
    return s
