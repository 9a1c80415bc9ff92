"""MediaPipe's legacy Selfie Segmentation solution (``mp.solutions.selfie_segmentation``), revived on LiteRT.

The graph is MediaPipe's ``selfie_segmentation_cpu.pbtxt``: a stretch of the whole RGB image onto the model's
tensor with a zero border (``segkit.preprocess.legacy``), the model (no metadata; a sigmoid inside the graph),
and the probability resized back to the image size with OpenCV's float ``INTER_LINEAR``
(``segkit.postprocess.resize``). The graph keeps no state between frames, so every ``process`` call is
independent, as in MediaPipe. Errors keep MediaPipe's types and messages.
"""

from __future__ import annotations

import operator
import threading
from types import TracebackType
from typing import NamedTuple

import numpy as np

from segkit import models
from segkit._common import PlanCache
from segkit.postprocess import mask_linear_plan, resize_masks
from segkit.postprocess.resize import MaskLinearPlan
from segkit.preprocess.legacy import ZeroBorderPlan, make_zero_border_plan, zero_border_tensor
from segkit.runtime import Runtime, open_runtime, read_model_file

__all__ = ["MODEL_NAMES", "SelfieSegmentation", "SolutionOutputs"]

# model_selection -> registry name: 0 the general 256x256 model, 1 the 144x256 landscape model
MODEL_NAMES = ("selfie_segmentation", "selfie_segmentation_landscape")
_RGB_CHANNELS = 3
_PLAN_CACHE = 4


class SolutionOutputs(NamedTuple):
    """What ``SelfieSegmentation.process`` returns: the person probability per pixel, float32 (H, W) in [0, 1]."""

    segmentation_mask: np.ndarray


class SelfieSegmentation:
    """MediaPipe Selfie Segmentation: ``process(rgb)`` gives a float32 (H, W) person mask for an RGB image.

    ``model_selection`` 0 picks the general-purpose model (256x256 tensor), 1 the faster landscape model (256x144).
    ``num_threads`` (segkit's own, default all cores) is the interpreter's thread count; it does not change the
    masks."""

    def __init__(self, model_selection: int = 0, *, num_threads: int | None = None) -> None:
        try:
            selection = operator.index(model_selection)  # any integer, as MediaPipe's int side packet takes
        except TypeError:
            raise TypeError(f"model_selection must be an int (0 or 1), got {type(model_selection).__name__}") from None
        if selection not in (0, 1):
            raise ValueError(f"model_selection must be 0 or 1, got {model_selection}")
        model = read_model_file(models.path(MODEL_NAMES[selection]))
        self._lock = threading.Lock()  # one call at a time: the interpreter and the tensor buffer are shared
        self._runtime: Runtime | None = open_runtime(model, num_threads=num_threads)
        spec = self._runtime.input_spec
        _, self._height, self._width, _ = spec.shape
        self._tensor = np.empty((1, self._height, self._width, 3), np.float32)
        self._warp_plans: PlanCache[tuple[int, int], ZeroBorderPlan] = PlanCache(_PLAN_CACHE)
        self._resize_plans: PlanCache[tuple[int, int], MaskLinearPlan] = PlanCache(_PLAN_CACHE)

    def process(self, image: np.ndarray) -> SolutionOutputs:
        """The segmentation mask of ``image``, a uint8 RGB (H, W, 3) array (any strides).

        Raises ValueError('Input image must contain three channel rgb data.') for other shapes, TypeError for
        other dtypes (MediaPipe's message), ValueError for an empty image or a closed solution."""
        if not isinstance(image, np.ndarray):
            raise TypeError(f"image must be a numpy ndarray, got {type(image).__name__}")
        if image.ndim != 3 or image.shape[2] != _RGB_CHANNELS:
            raise ValueError("Input image must contain three channel rgb data.")
        if image.dtype != np.uint8:
            raise TypeError(
                f"Cannot cast array data from dtype('{image.dtype}') to dtype('uint8') according to the rule 'safe'"
            )
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            raise ValueError(f"Input image must not be empty, got shape {image.shape}")
        rgb = np.ascontiguousarray(image)
        with self._lock:
            return self._process(rgb)

    def _process(self, rgb: np.ndarray) -> SolutionOutputs:
        """The graph on a checked C-contiguous uint8 (H, W, 3) image; the caller holds the lock."""
        if self._runtime is None:
            raise ValueError("_graph is None in SolutionBase")
        height, width = rgb.shape[:2]
        h, w = self._height, self._width
        plan = self._warp_plans.get((height, width), lambda: make_zero_border_plan(height, width, h, w))
        zero_border_tensor(rgb, plan, self._tensor[0])
        logits = self._runtime.run(self._tensor)[0].reshape(h, w)
        if (height, width) == (h, w):  # cv::resize to the same size is a copy
            return SolutionOutputs(logits.copy())
        resize = self._resize_plans.get((height, width), lambda: mask_linear_plan(h, w, height, width))
        mask = np.empty((1, height, width), np.float32)
        resize_masks(logits[None], resize, mask)
        return SolutionOutputs(mask[0])

    def reset(self) -> None:
        """MediaPipe's ``SolutionBase.reset``: restarts the graph. This graph has no state, so nothing changes."""

    def close(self) -> None:
        """Frees the model. A second call raises MediaPipe's ValueError, as in MediaPipe."""
        with self._lock:
            if self._runtime is None:
                raise ValueError("Closing SolutionBase._graph which is already None")
            self._runtime.close()
            self._runtime = None
            self._warp_plans.clear()
            self._resize_plans.clear()

    def __enter__(self) -> SelfieSegmentation:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
