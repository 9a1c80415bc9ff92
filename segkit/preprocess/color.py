"""Color conversion: any supported image format to the uint8 RGB(A) pixels the warp or resize consumes.

MediaPipe itself accepts only SRGB and SRGBA here (GRAY8 fails for 3-channel models, GRAY16 aborts the process).
segkit converts every format with an obvious meaning instead:

* GRAY8 / GRAY16 / VEC32F1: gray replicated to R, G and B.
* 16-bit formats (GRAY16, SRGB48, SRGBA64): ``round(v / 257)``, the exact inverse of 8-to-16-bit ``v * 257``.
* float formats (VEC32F1, VEC32F4): values in [0, 1], ``round_half_even(clip(v, 0, 1) * 255)``; NaN is an error.
* SBGRA: channels reordered to RGBA. VEC32F2 (two channels) has no color meaning and is rejected.
* 4-channel models given an image without alpha get alpha 255 (opaque); MediaPipe fails there.
"""

from __future__ import annotations

import numpy as np

from segkit._common import rgbx_canvas

UNKNOWN, SRGB, SRGBA, GRAY8, GRAY16, SRGB48, SRGBA64, VEC32F1, SBGRA, VEC32F2, VEC32F4 = (
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    9,
    11,
    12,
    13,
)

# format -> (numpy dtype, channel count, name)
_FORMATS: dict[int, tuple[type, int, str]] = {
    SRGB: (np.uint8, 3, "SRGB"),
    SRGBA: (np.uint8, 4, "SRGBA"),
    GRAY8: (np.uint8, 1, "GRAY8"),
    GRAY16: (np.uint16, 1, "GRAY16"),
    SRGB48: (np.uint16, 3, "SRGB48"),
    SRGBA64: (np.uint16, 4, "SRGBA64"),
    VEC32F1: (np.float32, 1, "VEC32F1"),
    SBGRA: (np.uint8, 4, "SBGRA"),
    VEC32F4: (np.float32, 4, "VEC32F4"),
}


def _checked(data: np.ndarray, image_format: int) -> tuple[np.ndarray, int]:
    """``data`` as (H, W, C) after checking it suits ``image_format``; ValueError naming the problem otherwise."""
    if image_format == VEC32F2:
        raise ValueError("Unsupported image format: VEC32F2 (two float channels have no color meaning)")
    if image_format not in _FORMATS:
        raise ValueError(f"Unsupported image format: {image_format}")
    dtype, channels, name = _FORMATS[image_format]
    if data.dtype != dtype:
        raise ValueError(f"Image format {name} needs {np.dtype(dtype).name} data, got {data.dtype}")
    if data.ndim == 2 and channels == 1:
        data = data[:, :, None]
    if data.ndim != 3 or data.shape[2] != channels:
        raise ValueError(f"Image format {name} needs shape (H, W, {channels}), got {data.shape}")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"Image is empty: shape {data.shape}")
    return data, channels


def _to_uint8(data: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by ``round(v / 257)``; float in [0, 1] -> uint8 by ``rint(clip(v, 0, 1) * 255)``."""
    if data.dtype == np.uint8:
        return data
    if data.dtype == np.uint16:
        return ((data.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.isnan(data).any():
        raise ValueError("Float image contains NaN")
    pixels: np.ndarray = np.rint(np.clip(data, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
    return pixels


def rgb_into_rgba(rgb: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy C-contiguous uint8 (H, W, 3) pixels into C-contiguous uint8 (H, W, 4) ``out``, alpha 255.

    Pillow's RGB unpacker writes into ``out``'s memory (an "RGBX" image over it): at 720p 0.3 ms, where numpy's
    strided copy of 3-byte items takes 1.3 ms, the same bytes."""
    rgbx_canvas(out).frombytes(rgb, "raw", "RGB")
    return out


def to_pixels(data: np.ndarray, image_format: int, channels: int) -> np.ndarray:
    """uint8 (H, W, 3|4) pixels for a model with ``channels`` input channels.

    For ``channels == 3`` an RGBA image may come back with its 4 channels (no copy); the warp reads only the
    first three. For ``channels == 4`` an image with alpha comes back as RGBA; one without alpha comes back
    with 3 channels, which ``Preprocessor`` reads as opaque (alpha 255) without materializing an RGBA copy
    (the segmenter's hair-mask feedback supplies its own alpha plane). The result may be a read-only or
    non-contiguous view of ``data``; the caller must not write to it."""
    if channels not in (3, 4):
        raise ValueError(f"Model input needs 3 or 4 channels, got {channels}")
    data = np.asarray(data)
    data, have = _checked(data, image_format)
    if image_format == SBGRA:
        data = data[:, :, [2, 1, 0, 3]] if channels == 4 else data[:, :, [2, 1, 0]]
    elif have == 4 and channels == 3 and data.dtype != np.uint8:
        data = data[:, :, :3]
    pixels = _to_uint8(data)
    if have == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return pixels
