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

from segkit.preprocess.color import rgb_into_rgba, to_pixels
from segkit.preprocess.normalize import normalization_affine, normalization_lut, normalize_into, value_range
from segkit.preprocess.resize import (
    AreaPlan,
    AreaRunner,
    LinearRunner,
    choose_interpolation,
    make_area_plan,
    make_linear_plan,
    resize_area,
    resize_linear,
)
from segkit.preprocess.warp import WarpPlan, apply_separable, make_warp_plan

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
# the first three float32 lanes of a four-lane pixel, as one 12-byte field
_RGB_OF_RGBA32 = np.dtype({"names": ["rgb"], "formats": ["V12"], "offsets": [0], "itemsize": 16})


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
        self._plans: OrderedDict[tuple[int, ...], WarpPlan | LinearRunner | AreaRunner | AreaPlan] = OrderedDict()
        self._affine = normalization_affine(spec.mean, spec.std) if spec.normalized else None  # type: ignore[arg-type]
        self._out = np.empty((1, spec.height, spec.width, spec.channels), dtype=spec.dtype)
        if spec.channels == 3:
            # warp scratch per input lane count (3: RGB, 4: RGBA pixels), made on first use
            self._warp_bufs: dict[int, tuple[np.ndarray, ...]] = {}
        else:
            self._resized = np.empty((spec.height, spec.width * 4), dtype=np.uint8)
            self._rgba: np.ndarray | None = None  # opaque RGBA copy of 3-channel pixels, reused per size

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
        if self._honor_rotation and rotation_degrees % 360:
            pixels = np.rot90(pixels, k=-(rotation_degrees // 90) % 4)
        pixels = np.ascontiguousarray(pixels)
        alpha_needed = not self.spec.zero_alpha or keep_alpha
        if pixels.shape[2] == 3:  # no alpha: opaque, as to_pixels promises
            pixels = self._opaque(pixels)
        return self._resize(pixels, alpha_needed)

    def _opaque(self, rgb: np.ndarray) -> np.ndarray:
        """RGBA of ``rgb`` with alpha 255 in a buffer reused per size: its alpha is written once, at creation,
        and the per-call copy touches only the color bytes."""
        shape = rgb.shape[:2] + (4,)
        if self._rgba is None or self._rgba.shape != shape:
            self._rgba = np.empty(shape, dtype=np.uint8)
            self._rgba[:, :, 3] = 255
        return rgb_into_rgba(rgb, self._rgba)

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
        """3-channel path: the perspective warp (whole-pixel gathers, integer X pass, exact float32 Y pass), then
        the normalization."""
        h, w, c = pixels.shape
        spec = self.spec
        plan: WarpPlan = self._plan(  # type: ignore[assignment]
            (h, w, c, rotation), lambda: make_warp_plan(h, w, c, spec.height, spec.width, rotation)
        )
        self._warp_band(pixels.reshape(-1), plan, slice(0, spec.height), c)
        return self._out

    def _bufs(self, lanes: int) -> tuple[np.ndarray, ...]:
        """The warp's scratch for ``lanes``-byte pixels: g uint8, top and bot uint16, a and b float32, each
        (h, w*lanes); for a float model reading RGB pixels ``a`` is the tensor itself."""
        bufs = self._warp_bufs.get(lanes)
        if bufs is None:
            shape = (self.spec.height, self.spec.width * lanes)
            top_bot = np.empty((2, *shape), np.uint16)
            a = self._out[0].reshape(shape) if lanes == 3 and self.spec.normalized else np.empty(shape, np.float32)
            bufs = (np.empty(shape, np.uint8), top_bot[0], top_bot[1], a, np.empty(shape, np.float32))
            self._warp_bufs[lanes] = bufs
        return bufs

    def _warp_band(self, flat: np.ndarray, plan: WarpPlan, rows: slice, channels: int = 3) -> None:
        """Rows ``rows`` of the tensor through the warp. For a float model reading RGB pixels the warp already
        wrote the integer pixel values into the tensor, normalized here in place."""
        bufs = self._bufs(channels)
        values = apply_separable(flat, plan, rows, bufs, channels)
        out = self._out[0, rows]
        if channels == 4:  # keep the RGB lanes: one strided copy of 12-byte items into float32 (rows, w, 3)
            rgb = bufs[4].reshape(-1)[: out.size].reshape(out.shape)
            np.copyto(rgb.reshape(-1).view("V12"), values.reshape(-1).view(_RGB_OF_RGBA32)["rgb"])
            values = rgb
        out = out.reshape(values.shape)
        if self._affine is not None:
            normalize_into(values, out, *self._affine)
        else:
            np.copyto(out, values, casting="unsafe")

    def _resize(self, pixels: np.ndarray, alpha_needed: bool) -> np.ndarray:
        """4-channel path: ``cv::resize`` (AREA when shrinking in both axes, else LINEAR), alpha rule, then
        normalization, band by band straight into the tensor."""
        h, w, _ = pixels.shape
        spec = self.spec
        out = self._out[0].reshape(spec.height, spec.width * 4)
        affine = self._affine

        def emit(r0: int, r1: int, values: np.ndarray) -> None:
            if affine is not None:
                normalize_into(values, out[r0:r1], *affine)
            else:
                np.copyto(out[r0:r1], values, casting="unsafe")

        if choose_interpolation(h, w, spec.height, spec.width) == "area":
            plan = self._plan((h, w, 0), lambda: _area_runner(h, w, spec.height, spec.width))
            if isinstance(plan, AreaRunner):
                plan.run(pixels, emit)
            else:
                emit(0, spec.height, resize_area(pixels, plan, self._resized))  # type: ignore[arg-type]
        else:
            plan = self._plan(
                (h, w, 1),
                lambda: LinearRunner(make_linear_plan(h, w, 4, spec.height, spec.width), 4, spec.height, spec.width),
            )
            plan.run(pixels, emit)  # type: ignore[union-attr]
        if not alpha_needed:
            self._out[0, :, :, 3] = affine[1] if affine is not None else 0
        return self._out


def _area_runner(h: int, w: int, height: int, width: int) -> AreaRunner | AreaPlan:
    plan = make_area_plan(h, w, 4, height, width)
    return plan if plan.fast else AreaRunner(plan, 4, height, width)
