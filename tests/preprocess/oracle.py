"""MediaPipe as the oracle: the preprocessed tensor read back through a probe model's confidence masks.

The probe's output is ``[1, oh, ow, C]``, the first ``oh*ow*C`` tensor values. With ``(oh, ow)`` equal to the image
size MediaPipe returns the masks unresized, so they *are* the tensor values. For images larger than the tensor
the output is ``(H/2, W/2, C)`` and MediaPipe upscales the masks exactly 2x; with integer logits (mean 0/std 1)
that float bilinear upscale is exact dyadic arithmetic, so ``upscale2`` of our tensor must equal the masks.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions
from mediapipe.tasks.python.vision import ImageSegmenter, ImageSegmenterOptions
from mediapipe.tasks.python.vision.core.image_processing_options import ImageProcessingOptions

from tests.modelbuilder import probe_model

MAX_MASKS = 48
_OPEN: list[Any] = []  # mediapipe's ImageSegmenter (untyped)


@functools.lru_cache(maxsize=256)
def segmenter(
    tensor_hwc: tuple[int, int, int],
    output_hwc: tuple[int, int, int],
    dtype: str,
    mean: float,
    std: float,
    labels: tuple[str, ...] | None,
) -> Any:
    """A MediaPipe segmenter for a probe model; cached per model spec and closed by ``close_all``."""
    model = probe_model(
        tensor_hwc,
        output_hwc,
        dtype=dtype,
        mean=(mean,),
        std=(std,),
        activation=0,
        labels=list(labels) if labels else None,
    )
    seg = ImageSegmenter.create_from_options(ImageSegmenterOptions(base_options=BaseOptions(model_asset_buffer=model)))
    _OPEN.append(seg)
    return seg


def close_all() -> None:
    """Close every cached MediaPipe segmenter (avoids noisy ``__del__`` errors at exit)."""
    segmenter.cache_clear()
    while _OPEN:
        _OPEN.pop().close()


def fits(image_hw: tuple[int, int], tensor_hwc: tuple[int, int, int]) -> bool:
    """Whether ``mediapipe_values`` can read back at least part of the tensor for this image size."""
    h, w = image_hw
    n = math.prod(tensor_hwc)
    return h * w <= n or (h % 2 == 0 and w % 2 == 0 and (h // 2) * (w // 2) <= n)


def mediapipe_values(
    image: np.ndarray,
    image_format: int,
    tensor_hwc: tuple[int, int, int],
    *,
    dtype: str = "float32",
    mean: float = 0.0,
    std: float = 1.0,
    rotation: int = 0,
    labels: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, tuple[int, int, int], bool]:
    """MediaPipe's masks (H, W, C) float32 for ``image``, the probe output shape, and whether it was upscaled 2x."""
    h, w = image.shape[:2]
    n = math.prod(tensor_hwc)
    upscaled = h * w > n
    oh, ow = (h // 2, w // 2) if upscaled else (h, w)
    channels = min(n // (oh * ow), MAX_MASKS)
    seg = segmenter(tensor_hwc, (oh, ow, channels), dtype, mean, std, labels)
    mp_image = mp.Image(image_format=mp.ImageFormat(image_format), data=np.ascontiguousarray(image))
    result = seg.segment(mp_image, ImageProcessingOptions(rotation_degrees=rotation))
    masks = np.stack([m.numpy_view()[..., 0] for m in result.confidence_masks], -1).copy()
    return masks, (oh, ow, channels), upscaled


def upscale2(values: np.ndarray) -> np.ndarray:
    """MediaPipe's float bilinear 2x mask upscale (half-pixel centres, clamped), exact for dyadic inputs."""
    h, w, _ = values.shape
    a = values.astype(np.float64)

    def axis_taps(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = (np.arange(2 * n) + 0.5) * 0.5 - 0.5
        s = np.floor(f).astype(int)
        t = f - s
        return np.clip(s, 0, n - 1), np.clip(s + 1, 0, n - 1), t

    x0, x1, fx = axis_taps(w)
    horiz = a[:, x0] * (1 - fx)[None, :, None] + a[:, x1] * fx[None, :, None]
    y0, y1, fy = axis_taps(h)
    out: np.ndarray = (horiz[y0] * (1 - fy)[:, None, None] + horiz[y1] * fy[:, None, None]).astype(np.float32)
    return out


def expected_masks(tensor: np.ndarray, shape: tuple[int, int, int], upscaled: bool) -> np.ndarray:
    """What MediaPipe's masks must be if ``tensor`` is its preprocessed tensor."""
    values = tensor.reshape(-1)[: math.prod(shape)].astype(np.float32).reshape(shape)
    return upscale2(values) if upscaled else values
