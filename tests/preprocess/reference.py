"""Test oracles for preprocessing: whole-image formulas the banded production code must equal bit for bit.

They apply segkit's own plans (the tables OpenCV derives from the sizes, themselves checked against cv2) in one
pass over the whole image, in OpenCV's order, so they are independent of the bands, buffers and gathers the
production resizers use. ``normalization_lut`` is MediaPipe's 256-entry table, ``with_alpha`` builds the RGBA
image the hair model's feedback path feeds.
"""

from __future__ import annotations

import numpy as np

from segkit.preprocess.normalize import normalization_affine
from segkit.preprocess.resize import PixelAreaPlan, PixelBlockPlan, PixelLinearPlan, pixel_area_plan, pixel_linear_plan

F32 = np.float32


def normalization_lut(mean: float, std: float) -> np.ndarray:
    """MediaPipe's 256-entry float32 table ``LUT[p] = float32(p * scale) + offset`` (two roundings, no FMA)."""
    scale, lo = normalization_affine(mean, std)
    products = np.arange(256, dtype=F32) * scale
    table: np.ndarray = (products + lo).astype(F32)
    return table


def with_alpha(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGBA copy of ``pixels`` whose 4th channel is ``alpha`` (uint8 (H, W) or (H, W, 1))."""
    alpha = np.asarray(alpha)
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[:, :, 0]
    if alpha.dtype != np.uint8 or alpha.shape != pixels.shape[:2]:
        raise ValueError(f"alpha must be uint8 {pixels.shape[:2]}, got {alpha.dtype} {alpha.shape}")
    out = np.empty((*pixels.shape[:2], 4), dtype=np.uint8)
    out[:, :, :3] = pixels[:, :, :3]
    out[:, :, 3] = alpha
    return out


def _pixel_rows(pixels: np.ndarray) -> np.ndarray:
    h, w, cn = pixels.shape
    return np.ascontiguousarray(pixels).reshape(h, w * cn).view(np.dtype((np.void, cn)))


def _gather_columns(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The pixels at ``columns`` of every row, back as uint8 (rows, len(columns) * cn)."""
    picked = np.take(rows, columns, axis=1)
    return picked.view(np.uint8).reshape(picked.shape[0], -1)


def resize_linear(pixels: np.ndarray, plan: PixelLinearPlan) -> np.ndarray:
    """``cv::resize(INTER_LINEAR)`` of uint8 (H, W, cn) in one pass: uint8 (h, w*cn)."""
    src = _pixel_rows(pixels)[plan.rows]
    horiz = _gather_columns(src, plan.xofs0) * plan.alpha0
    horiz += _gather_columns(src, plan.xofs1) * plan.alpha1
    horiz >>= 4
    top = (horiz[plan.row0] * plan.beta0) >> 16
    bottom = (horiz[plan.row1] * plan.beta1) >> 16
    out: np.ndarray = np.minimum((top + bottom + 2) >> 2, 255).astype(np.uint8)
    return out


def resize_area(pixels: np.ndarray, plan: PixelAreaPlan | PixelBlockPlan, height: int) -> np.ndarray:
    """``cv::resize(INTER_AREA)`` of uint8 (H, W, cn) in one pass: uint8 (height, w*cn)."""
    cn = pixels.shape[2]
    if isinstance(plan, PixelBlockPlan):
        sx, sy = plan.scale_x, plan.scale_y
        total = pixels[: height * sy].reshape(height, sy, -1, sx, cn).astype(np.int32).sum(axis=(1, 3))
        total = total.reshape(height, -1)
        if sx == 2 and sy == 2:
            block: np.ndarray = ((total + 2) >> 2).astype(np.uint8)
        else:
            block = np.clip(np.rint(total.astype(F32) * F32(1.0 / (sx * sy))), 0, 255).astype(np.uint8)
        return block
    rows = _pixel_rows(pixels)
    buf = np.zeros((rows.shape[0], plan.xalpha.shape[1]), dtype=F32)
    for k in range(plan.xsrc.shape[0]):
        buf += _gather_columns(rows, plan.xsrc[k]) * plan.xalpha[k]
    total_f = np.zeros((height, buf.shape[1]), dtype=F32)
    for k in range(plan.ysrc.shape[0]):
        total_f += buf[plan.ysrc[k]] * plan.yalpha[k]
    return np.clip(np.rint(total_f), 0, 255).astype(np.uint8)


def resize(pixels: np.ndarray, height: int, width: int, kind: str) -> np.ndarray:
    """The whole-image ``cv::resize`` of ``kind`` ("linear" or "area") as uint8 (height, width, cn)."""
    h, w, cn = pixels.shape
    if kind == "area":
        out = resize_area(pixels, pixel_area_plan(h, w, cn, height, width), height)
    else:
        out = resize_linear(pixels, pixel_linear_plan(h, w, cn, height, width))
    return out.reshape(height, width, cn)
