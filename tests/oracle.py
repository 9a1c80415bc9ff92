"""The reference: the real ``mediapipe`` 1.2.2 package, run side by side with segkit in tests and benchmarks."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from mediapipe.tasks.python import BaseOptions as MpBaseOptions
from mediapipe.tasks.python import vision as mp_vision
from mediapipe.tasks.python.vision.core.image import Image as MpImage
from mediapipe.tasks.python.vision.core.image import ImageFormat as MpImageFormat


@functools.lru_cache(maxsize=32)
def mediapipe_segmenter(model: str | Path | bytes, confidence: bool, category: bool) -> Any:  # mediapipe's, untyped
    """A cached IMAGE-mode MediaPipe segmenter for a model path or buffer."""
    if isinstance(model, bytes):
        base = MpBaseOptions(model_asset_buffer=model)
    else:
        base = MpBaseOptions(model_asset_path=str(model))
    options = mp_vision.ImageSegmenterOptions(
        base_options=base, output_confidence_masks=confidence, output_category_mask=category
    )
    return mp_vision.ImageSegmenter.create_from_options(options)


def mediapipe_masks(
    model: str | Path | bytes,
    pixels: np.ndarray,
    *,
    rotation: int = 0,
    confidence: bool = True,
    category: bool = True,
) -> tuple[list[np.ndarray] | None, np.ndarray | None]:
    """MediaPipe's confidence masks ((H, W) float32 each) and category mask ((H, W) uint8) for uint8 RGB(A) pixels."""
    fmt = MpImageFormat.SRGBA if pixels.shape[2] == 4 else MpImageFormat.SRGB
    image = MpImage(image_format=fmt, data=np.ascontiguousarray(pixels))
    options = mp_vision.ImageProcessingOptions(rotation_degrees=rotation)
    result = mediapipe_segmenter(model, confidence, category).segment(image, options)
    conf = [m.numpy_view()[:, :, 0].copy() for m in result.confidence_masks] if result.confidence_masks else None
    cat = result.category_mask.numpy_view()[:, :, 0].copy() if result.category_mask is not None else None
    return conf, cat
