"""Pixels to input tensor, bit-identical to MediaPipe's CPU preprocessing.

3-channel models: rotated-ROI perspective warp (``warp``), then normalization (``normalize``) for float models.
4-channel models: MediaPipe's legacy path, ``cv::resize`` (``resize``) of the RGBA image with rotation ignored,
alpha forced to 0 for the hair model, then normalization. ``Preprocessor`` caches plans per input size and
reuses its buffers; the math lives in the pure functions of the submodules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segkit._common import PlanCache
from segkit.preprocess.color import rgb_into_rgba, to_pixels
from segkit.preprocess.normalize import normalization_affine, normalize_into
from segkit.preprocess.resize import PixelResizer, pixel_resizer
from segkit.preprocess.warp import WarpPlan, apply_warp, make_warp_plan

__all__ = ["InputSpec", "Preprocessor", "to_pixels"]

# Plans kept per Preprocessor: a few input sizes (a video, a batch of mixed photos) without unbounded growth.
PLANS_KEPT = 8
_FLT_EPSILON = float(np.finfo(np.float32).eps)
# MediaPipe's text when a model's normalization divides by (almost) zero.
STD_IS_ZERO = (
    "NormalizationOptions.std_values can't be 0. Please check if the tensor metadata has been populated correctly."
)
# the first three float32 lanes of a four-lane pixel, as one 12-byte field
_RGB_OF_RGBA32 = np.dtype({"names": ["rgb"], "formats": ["V12"], "offsets": [0], "itemsize": 16})


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
            raise RuntimeError(STD_IS_ZERO)  # MediaPipe's exception type and text

    @property
    def normalized(self) -> bool:
        """True when the tensor holds normalized float values (float models); uint8 models get raw pixels."""
        return self.dtype == "float32"


class Preprocessor:
    """Builds the ``[1, h, w, c]`` input tensor from uint8 RGB(A) pixels; the returned array is reused per call.

    Plans (gather tables, weights) are cached per (image size, channels, rotation) in a small LRU, so a video of
    fixed size does no set-up work after its first frame. Rotation applies to 3-channel models only: MediaPipe's
    4-channel (legacy) path ignores it, and so does this one."""

    def __init__(self, spec: InputSpec) -> None:
        if spec.normalized and (spec.mean is None or spec.std is None):
            raise ValueError("A float32 model input needs normalization (mean/std) to preprocess images")
        self.spec = spec
        self._warps: PlanCache[tuple[int, int, int, int], WarpPlan] = PlanCache(PLANS_KEPT)
        self._resizers: PlanCache[tuple[int, int], PixelResizer] = PlanCache(PLANS_KEPT)
        # uint8 models take raw pixels, even when the metadata has normalization options
        self._affine = None
        if spec.normalized and spec.mean is not None and spec.std is not None:
            self._affine = normalization_affine(spec.mean, spec.std)
        self._out = np.empty((1, spec.height, spec.width, spec.channels), dtype=spec.dtype)
        if spec.channels == 3:
            # warp scratch per input lane count (3: RGB, 4: RGBA pixels), made on first use
            self._warp_bufs: dict[int, tuple[np.ndarray, ...]] = {}
        else:
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
        pixels = np.ascontiguousarray(pixels)
        alpha_needed = not self.spec.zero_alpha or keep_alpha
        if pixels.shape[2] == 3:  # no alpha: opaque, as to_pixels promises
            pixels = self._opaque(pixels)
        return self._resize(pixels, alpha_needed)

    def _opaque(self, rgb: np.ndarray) -> np.ndarray:
        """RGBA of ``rgb`` with alpha 255, in a buffer reused per size."""
        shape = (*rgb.shape[:2], 4)
        if self._rgba is None or self._rgba.shape != shape:
            self._rgba = np.empty(shape, dtype=np.uint8)
        return rgb_into_rgba(rgb, self._rgba)

    def _warp(self, pixels: np.ndarray, rotation: int) -> np.ndarray:
        """3-channel path: the perspective warp (whole-pixel gathers, integer X pass, exact float32 Y pass), then
        the normalization."""
        h, w, c = pixels.shape
        spec = self.spec
        plan = self._warps.get((h, w, c, rotation), lambda: make_warp_plan(h, w, c, spec.height, spec.width, rotation))
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
        values = apply_warp(flat, plan, rows, bufs, channels)
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

        resizer = self._resizers.get((h, w), lambda: pixel_resizer(h, w, spec.height, spec.width, 4))
        resizer.run(pixels, emit)
        if not alpha_needed:
            self._out[0, :, :, 3] = affine[1] if affine is not None else 0
        return self._out
