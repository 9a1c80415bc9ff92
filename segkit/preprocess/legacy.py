"""The legacy ``selfie_segmentation`` graph's image-to-tensor step, reproduced bit for bit.

MediaPipe's solution graph (``selfie_segmentation_cpu.pbtxt``) runs ``ImageToTensorCalculator`` on the whole image
with rotation 0, ``keep_aspect_ratio: false``, ``border_mode: BORDER_ZERO`` and the float range [0, 1]: the same
``cv::warpPerspective`` geometry as the Tasks graph (``warp``), but taps outside the image read 0 instead of the
edge pixel, and the uint8 result is scaled by ``float(1/255)`` (``convertTo``). The plan folds the border into the
integer bilinear weights: a tap outside the image gets weight 0. The weights are exact integers, so summing the
four taps in any grouping gives the same ``S``; when the source column depends only on the tensor column and the
row only on the tensor row (checked exactly), the warp runs as a row gather then a column gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segkit.preprocess.warp import source_coords, warp_matrix

_F32 = np.float32
# convertTo(CV_32F, scale = (1 - 0) / (255 - 0) in float, offset 0): one float32 product per value
_UNIT_LUT = np.arange(256, dtype=_F32) * (_F32(1.0) / _F32(255.0))

Pair = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class SeparableZeroBorderPlan:
    """The zero-border warp as a row gather then a column gather: the clipped source rows (height,) and columns
    (width,) of the low and high taps, with their uint32 5-bit weights shaped (height, 1, 1) and (1, width, 1), 0
    for a tap outside the image."""

    image_height: int
    image_width: int
    height: int
    width: int
    rows: Pair
    cols: Pair
    row_weights: Pair
    col_weights: Pair


@dataclass(frozen=True)
class GridZeroBorderPlan:
    """The zero-border warp per tensor pixel: flat whole-pixel indices (h*w,) of the four taps (y0x0, y0x1, y1x0,
    y1x1) and their (h*w, 1) uint32 weight products, 0 for a tap outside the image."""

    image_height: int
    image_width: int
    height: int
    width: int
    indices: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]


ZeroBorderPlan = SeparableZeroBorderPlan | GridZeroBorderPlan


def _taps(coord: np.ndarray, size: int) -> tuple[Pair, Pair]:
    """For 1/32-pixel source coordinates: the clipped low/high tap positions and their weights, 0 outside."""
    lo, frac = coord >> 5, coord & 31
    positions, weights = [], []
    for tap, weight in ((lo, 32 - frac), (lo + 1, frac)):
        positions.append(np.clip(tap, 0, size - 1).astype(np.intp))
        weights.append(np.where((tap >= 0) & (tap < size), weight, 0).astype(np.uint32))
    return (positions[0], positions[1]), (weights[0], weights[1])


def make_zero_border_plan(
    image_height: int, image_width: int, height: int, width: int, *, allow_separable: bool = True
) -> ZeroBorderPlan:
    """The plan that warps a (image_height, image_width) image onto a (height, width) tensor as OpenCV's
    ``warpPerspective(INTER_LINEAR, BORDER_CONSTANT 0)`` does for MediaPipe's full-image, unrotated ROI.
    ``allow_separable=False`` forces the per-pixel form (same bits; the separable one is only faster)."""
    if min(image_height, image_width, height, width) < 1:
        raise ValueError(f"cannot warp a {image_width}x{image_height} image to {width}x{height}")
    sx, sy = source_coords(warp_matrix(image_height, image_width, height, width, 0), height, width)
    if allow_separable and (sx == sx[:1]).all() and (sy == sy[:, :1]).all():
        cols, col_weights = _taps(sx[0], image_width)
        rows, row_weights = _taps(sy[:, 0], image_height)
        return SeparableZeroBorderPlan(
            image_height,
            image_width,
            height,
            width,
            rows,
            cols,
            (row_weights[0][:, None, None], row_weights[1][:, None, None]),
            (col_weights[0][None, :, None], col_weights[1][None, :, None]),
        )
    (x_lo, x_hi), (wx_lo, wx_hi) = _taps(sx.reshape(-1), image_width)
    (y_lo, y_hi), (wy_lo, wy_hi) = _taps(sy.reshape(-1), image_height)
    indices = tuple(y * image_width + x for y in (y_lo, y_hi) for x in (x_lo, x_hi))
    weights = tuple((wy * wx)[:, None] for wy in (wy_lo, wy_hi) for wx in (wx_lo, wx_hi))
    return GridZeroBorderPlan(image_height, image_width, height, width, indices, weights)


def zero_border_tensor(rgb: np.ndarray, plan: ZeroBorderPlan, out: np.ndarray) -> np.ndarray:
    """Warp C-contiguous uint8 ``rgb`` (image_height, image_width, 3) with ``plan`` and scale it to [0, 1] into
    ``out`` (float32 (height, width, 3)): ``(S + 512) >> 10`` of the 5-bit bilinear sum, then ``p * float(1/255)``."""
    if rgb.shape != (plan.image_height, plan.image_width, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"plan is for uint8 ({plan.image_height}, {plan.image_width}, 3), got {rgb.dtype} {rgb.shape}")
    if isinstance(plan, SeparableZeroBorderPlan):
        (y_lo, y_hi), (wy_lo, wy_hi) = plan.rows, plan.row_weights
        total = _columns(np.take(rgb, y_lo, axis=0), plan) * wy_lo
        total += _columns(np.take(rgb, y_hi, axis=0), plan) * wy_hi
    else:
        pixels = rgb.reshape(-1, 3)
        total = np.zeros((plan.height * plan.width, 3), np.uint32)
        for index, weight in zip(plan.indices, plan.weights, strict=True):
            total += np.take(pixels, index, axis=0) * weight
    total += 512
    total >>= 10
    np.take(_UNIT_LUT, total.reshape(plan.height, plan.width, 3), out=out)
    return out


def _columns(band: np.ndarray, plan: SeparableZeroBorderPlan) -> np.ndarray:
    """The X pass over gathered source rows (height, image_width, 3): ``wx_lo * p[x_lo] + wx_hi * p[x_hi]``."""
    (x_lo, x_hi), (wx_lo, wx_hi) = plan.cols, plan.col_weights
    part = np.take(band, x_lo, axis=1) * wx_lo
    part += np.take(band, x_hi, axis=1) * wx_hi
    return part
