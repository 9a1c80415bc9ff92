"""Pixels to input tensor, bit-identical to MediaPipe's CPU preprocessing.

3-channel models: rotated-ROI perspective warp (``warp``), then normalization (``normalize``) for float models.
4-channel models: MediaPipe's legacy path, ``cv::resize`` (``resize``) of the RGBA image with rotation ignored,
alpha forced to 0 for the hair model, then normalization. ``Preprocessor`` caches plans per input size and
reuses its buffers; the math lives in the pure functions of the submodules.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from segkit.preprocess.color import to_pixels
from segkit.preprocess.normalize import normalization_lut, value_range
from segkit.preprocess.resize import (
    AreaPlan,
    LinearPlan,
    choose_interpolation,
    make_area_plan,
    make_linear_plan,
    resize_area,
    resize_linear,
)
from segkit.preprocess.warp import WarpPlan, make_warp_plan

__all__ = [
    "InputSpec",
    "Preprocessor",
    "choose_interpolation",
    "make_area_plan",
    "make_linear_plan",
    "make_warp_plan",
    "normalization_lut",
    "resize_area",
    "resize_linear",
    "to_pixels",
    "value_range",
    "with_alpha",
]

_FLT_EPSILON = 1.1920928955078125e-07


def with_alpha(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGBA copy of ``pixels`` whose 4th channel is ``alpha`` (uint8 (H, W)), e.g. the hair model's last mask."""
    alpha = np.asarray(alpha)
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[:, :, 0]
    if alpha.dtype != np.uint8 or alpha.shape != pixels.shape[:2]:
        raise ValueError(f"alpha must be uint8 {pixels.shape[:2]}, got {alpha.dtype} {alpha.shape}")
    out = np.empty(pixels.shape[:2] + (4,), dtype=np.uint8)
    out[:, :, :3] = pixels[:, :, :3]
    out[:, :, 3] = alpha
    return out


@dataclass(frozen=True)
class InputSpec:
    """The model input the tensor is built for: tensor size, channels (3|4), dtype and normalization.

    ``mean``/``std`` come from the model metadata or an explicit override; float models need them.
    ``zero_alpha`` forces the 4th channel to 0 (MediaPipe's hair-model rule: labels[1] == "hair")."""

    height: int
    width: int
    channels: int
    dtype: str
    mean: float | None = None
    std: float | None = None
    zero_alpha: bool = False

    def __post_init__(self) -> None:
        if self.channels not in (3, 4):
            raise ValueError(f"Model input needs 3 or 4 channels, got {self.channels}")
        if self.dtype not in ("float32", "uint8"):
            raise ValueError(f"Model input type must be float32 or uint8, got {self.dtype}")
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"Model input size must be positive, got {self.height}x{self.width}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std must be given together")
        if self.std is not None and abs(self.std) < _FLT_EPSILON:
            raise ValueError("NormalizationOptions.std_values can't be 0.")

    @property
    def normalized(self) -> bool:
        """True when the tensor holds normalized float values (float models); uint8 models get raw pixels."""
        return self.dtype == "float32"


class Preprocessor:
    """Builds the ``[1, h, w, c]`` input tensor from uint8 RGB(A) pixels; the returned array is reused per call.

    Plans (gather tables, weights) are cached per (image size, channels, rotation) in a small LRU, so a video of
    fixed size does no set-up work after its first frame. ``honor_rotation`` applies the rotation on the
    4-channel path too (MediaPipe ignores it there); it is off by default to match MediaPipe."""

    def __init__(self, spec: InputSpec, *, cache_size: int = 8, honor_rotation: bool = False) -> None:
        if spec.normalized and spec.mean is None:
            raise ValueError("A float32 model input needs normalization (mean/std) to preprocess images")
        self.spec = spec
        self._honor_rotation = honor_rotation
        self._cache_size = cache_size
        self._plans: OrderedDict[tuple[int, ...], WarpPlan | LinearPlan | AreaPlan] = OrderedDict()
        self._lut = normalization_lut(spec.mean, spec.std) if spec.normalized else None  # type: ignore[arg-type]
        self._out = np.empty((1, spec.height, spec.width, spec.channels), dtype=spec.dtype)
        n = spec.height * spec.width * spec.channels
        if spec.channels == 3:
            self._gather = np.empty(n, dtype=np.uint8)
            self._acc = np.empty(n, dtype=np.int32)
            self._tmp = np.empty(n, dtype=np.int32)
        else:
            self._resized = np.empty((spec.height, spec.width * 4), dtype=np.uint8)

    def __call__(self, pixels: np.ndarray, rotation_degrees: int = 0, *, keep_alpha: bool = False) -> np.ndarray:
        """The input tensor for ``pixels`` (uint8 (H, W, 3|4), e.g. from ``to_pixels``) rotated clockwise.

        ``keep_alpha`` keeps the pixels' alpha on the 4-channel path even when ``spec.zero_alpha`` is set
        (hair-mask feedback, a segkit extension)."""
        if rotation_degrees % 90 != 0:
            raise ValueError("Expected rotation to be a multiple of 90°.")
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
            raise ValueError(f"Preprocessor needs uint8 (H, W, 3|4) pixels, got {pixels.dtype} {pixels.shape}")
        if self.spec.channels == 3:
            return self._warp(np.ascontiguousarray(pixels), int(rotation_degrees))
        if pixels.shape[2] != 4:
            raise ValueError("A 4-channel model needs RGBA pixels (see to_pixels)")
        if self._honor_rotation and rotation_degrees % 360:
            pixels = np.rot90(pixels, k=-(rotation_degrees // 90) % 4)
        return self._resize(np.ascontiguousarray(pixels), keep_alpha)

    def _plan(self, key: tuple[int, ...], build: object) -> object:
        """LRU lookup of a plan; ``build`` makes it on a miss."""
        plan = self._plans.get(key)
        if plan is None:
            plan = build()  # type: ignore[operator]
            self._plans[key] = plan
            if len(self._plans) > self._cache_size:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    def _warp(self, pixels: np.ndarray, rotation: int) -> np.ndarray:
        """3-channel path: the perspective warp as one gather + integer multiply-add + shift, then the LUT."""
        h, w, c = pixels.shape
        spec = self.spec
        plan: WarpPlan = self._plan(  # type: ignore[assignment]
            (h, w, c, rotation), lambda: make_warp_plan(h, w, c, spec.height, spec.width, rotation)
        )
        flat = pixels.reshape(-1)
        g, acc, tmp = self._gather, self._acc, self._tmp
        np.take(flat, plan.offsets[0], out=g, mode="clip")
        np.multiply(g, plan.weights[0], out=acc)
        for k in (1, 2, 3):
            np.take(flat, plan.offsets[k], out=g, mode="clip")
            np.multiply(g, plan.weights[k], out=tmp)
            acc += tmp
        acc += 512
        acc >>= 10
        out = self._out.reshape(-1)
        if self._lut is not None:
            np.take(self._lut, acc, out=out, mode="clip")
        else:
            np.copyto(out, acc, casting="unsafe")
        return self._out

    def _resize(self, pixels: np.ndarray, keep_alpha: bool) -> np.ndarray:
        """4-channel path: ``cv::resize`` (AREA when shrinking in both axes, else LINEAR), alpha rule, then LUT."""
        h, w, _ = pixels.shape
        spec = self.spec
        if choose_interpolation(h, w, spec.height, spec.width) == "area":
            plan = self._plan((h, w, 0), lambda: make_area_plan(h, w, 4, spec.height, spec.width))
            resize_area(pixels, plan, self._resized)  # type: ignore[arg-type]
        else:
            plan = self._plan((h, w, 1), lambda: make_linear_plan(h, w, 4, spec.height, spec.width))
            resize_linear(pixels, plan, self._resized)  # type: ignore[arg-type]
        resized = self._resized.reshape(spec.height, spec.width, 4)
        if spec.zero_alpha and not keep_alpha:
            resized[:, :, 3] = 0
        if self._lut is not None:
            np.take(self._lut, resized, out=self._out[0], mode="clip")
        else:
            np.copyto(self._out[0], resized)
        return self._out
