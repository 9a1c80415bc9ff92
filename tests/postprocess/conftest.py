"""MediaPipe as the oracle for postprocessing: probe models whose logits the test chooses through the pixels.

With the image exactly the tensor size and rotation 0, MediaPipe's preprocessing is the identity on pixels, so
the probe model's logits are ``float32(p * scale) + offset`` of the image, flattened and cut to the output shape.
MediaPipe then resizes them to the image size, which the test compares with ``Postprocessor``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.modelbuilder import probe_model

F32 = np.float32


@dataclass(frozen=True)
class Probe:
    """One probe configuration: tensor ``(th, tw, 3 | 4)``, logits ``(h, w, C)``, normalization, activation."""

    tensor_hwc: tuple[int, int, int]
    output_hwc: tuple[int, int, int]
    mean: float
    std: float
    activation: int

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """The logits MediaPipe's probe model produces from ``pixels`` (MediaPipe's float32 normalization)."""
        lo = F32(F32(0.0 - self.mean) / F32(self.std))
        hi = F32(F32(255.0 - self.mean) / F32(self.std))
        scale = F32(F32(hi - lo) / F32(255.0))
        tensor: np.ndarray = np.multiply(pixels.astype(F32), scale, dtype=F32) + lo
        return tensor.ravel()[: math.prod(self.output_hwc)].reshape(self.output_hwc)


@dataclass
class MediaPipeMasks:
    """MediaPipe's outputs for one image: confidence masks (float32) and the category mask (uint8)."""

    confidence: list[np.ndarray]
    category: np.ndarray


class Oracle:
    """Creates (and caches) MediaPipe segmenters for probe models and runs them on images."""

    def __init__(self) -> None:
        self._segmenters: dict[Probe, Any] = {}  # mediapipe's ImageSegmenter (untyped)

    def segmenter(self, probe: Probe) -> Any:  # mediapipe's ImageSegmenter (untyped)
        """A MediaPipe ImageSegmenter for ``probe``'s model, built once per probe."""
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import ImageSegmenter, ImageSegmenterOptions

        seg = self._segmenters.get(probe)
        if seg is None:
            model = probe_model(
                probe.tensor_hwc, probe.output_hwc, mean=(probe.mean,), std=(probe.std,), activation=probe.activation
            )
            options = ImageSegmenterOptions(
                base_options=BaseOptions(model_asset_buffer=model),
                output_confidence_masks=True,
                output_category_mask=True,
            )
            seg = self._segmenters[probe] = ImageSegmenter.create_from_options(options)
        return seg

    def run(self, probe: Probe, pixels: np.ndarray) -> MediaPipeMasks:
        """MediaPipe's masks for ``pixels`` (uint8 ``(th, tw, 3 | 4)``, SRGB or SRGBA) through ``probe``."""
        import mediapipe as mp

        th, tw, ch = probe.tensor_hwc
        assert pixels.shape == (th, tw, ch) and min(th, tw) >= 2, "MediaPipe's category mask needs >= 2x2"
        fmt = mp.ImageFormat.SRGB if ch == 3 else mp.ImageFormat.SRGBA
        result = self.segmenter(probe).segment(mp.Image(image_format=fmt, data=np.ascontiguousarray(pixels)))
        confidence = [np.array(m.numpy_view(), dtype=F32).reshape(th, tw) for m in result.confidence_masks]
        category = np.array(result.category_mask.numpy_view(), dtype=np.uint8).reshape(th, tw)
        return MediaPipeMasks(confidence, category)

    def close(self) -> None:
        """Close every segmenter made so far."""
        for seg in self._segmenters.values():
            seg.close()
        self._segmenters.clear()


@pytest.fixture(scope="session")
def oracle() -> Iterator[Oracle]:
    """A session-wide MediaPipe oracle; its segmenters are closed at the end."""
    o = Oracle()
    yield o
    o.close()


def bits_differ(a: np.ndarray, b: np.ndarray) -> int:
    """How many float32 elements differ in their bit patterns."""
    return int(np.count_nonzero(a.astype(F32).view(np.uint32) != b.astype(F32).view(np.uint32)))
