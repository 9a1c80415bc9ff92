"""The legacy ``selfie_segmentation`` graph's image-to-tensor step, reproduced bit for bit.

MediaPipe's solution graph (``selfie_segmentation_cpu.pbtxt``) runs ``ImageToTensorCalculator`` on the whole image
with rotation 0, ``keep_aspect_ratio: false``, ``border_mode: BORDER_ZERO`` and the float range [0, 1]: the same
``cv::warpPerspective`` geometry as the Tasks graph (``warp``), but taps outside the image read 0 instead of the
edge pixel, and the uint8 result is scaled by ``float(1/255)`` (``convertTo``). The plan folds the border into the
integer bilinear weights: a tap outside the image gets weight 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segkit.preprocess.warp import source_coords, warp_matrix

_F32 = np.float32
# convertTo(CV_32F, scale = (1 - 0) / (255 - 0) in float, offset 0): one float32 product per value
_UNIT_LUT = np.arange(256, dtype=_F32) * (_F32(1.0) / _F32(255.0))


@dataclass(frozen=True)
class ZeroBorderPlan:
    """Whole-pixel gather indices of the four bilinear taps and their integer weights (0 outside the image)."""

    image_height: int
    image_width: int
    height: int
    width: int
    indices: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # intp (h*w,): y * image_width + x, clipped
    weights: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # uint32 (h*w, 1): 5-bit products, or 0


def make_zero_border_plan(image_height: int, image_width: int, height: int, width: int) -> ZeroBorderPlan:
    """The plan that warps a (image_height, image_width) image onto a (height, width) tensor as OpenCV's
    ``warpPerspective(INTER_LINEAR, BORDER_CONSTANT 0)`` does for MediaPipe's full-image, unrotated ROI."""
    if min(image_height, image_width, height, width) < 1:
        raise ValueError(f"cannot warp a {image_width}x{image_height} image to {width}x{height}")
    sx, sy = source_coords(warp_matrix(image_height, image_width, height, width, 0), height, width)
    x0, y0 = (sx >> 5).reshape(-1), (sy >> 5).reshape(-1)
    fx, fy = (sx & 31).reshape(-1), (sy & 31).reshape(-1)
    indices: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for dy, wy in ((0, 32 - fy), (1, fy)):
        for dx, wx in ((0, 32 - fx), (1, fx)):
            x, y = x0 + dx, y0 + dy
            inside = (x >= 0) & (x < image_width) & (y >= 0) & (y < image_height)
            flat = np.clip(y, 0, image_height - 1) * image_width + np.clip(x, 0, image_width - 1)
            indices.append(flat.astype(np.intp))
            weights.append(np.where(inside, wy * wx, 0).astype(np.uint32)[:, None])
    return ZeroBorderPlan(
        image_height,
        image_width,
        height,
        width,
        (indices[0], indices[1], indices[2], indices[3]),
        (weights[0], weights[1], weights[2], weights[3]),
    )


def zero_border_tensor(rgb: np.ndarray, plan: ZeroBorderPlan, out: np.ndarray) -> np.ndarray:
    """Warp C-contiguous uint8 ``rgb`` (image_height, image_width, 3) with ``plan`` and scale it to [0, 1] into
    ``out`` (float32 (height, width, 3)): ``(S + 512) >> 10`` of the 5-bit bilinear sum, then ``p * float(1/255)``."""
    if rgb.shape != (plan.image_height, plan.image_width, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"plan is for uint8 ({plan.image_height}, {plan.image_width}, 3), got {rgb.dtype} {rgb.shape}")
    pixels = rgb.reshape(-1, 3)
    total = np.zeros((plan.height * plan.width, 3), np.uint32)
    tap = np.empty_like(total)
    for index, weight in zip(plan.indices, plan.weights, strict=True):
        np.multiply(np.take(pixels, index, axis=0), weight, out=tap)
        np.add(total, tap, out=total)
    total += 512
    total >>= 10
    np.take(_UNIT_LUT, total.reshape(plan.height, plan.width, 3), out=out)
    return out
