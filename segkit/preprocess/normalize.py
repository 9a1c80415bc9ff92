"""Value normalization: uint8 pixel to float32 tensor value, exactly as MediaPipe computes it."""

from __future__ import annotations

import numpy as np

_F32 = np.float32


def value_range(mean: float, std: float) -> tuple[np.float32, np.float32]:
    """MediaPipe's float32 output range ``((0 - mean) / std, (255 - mean) / std)`` for one mean/std pair."""
    m, s = _F32(mean), _F32(std)
    return (_F32(0.0) - m) / s, (_F32(255.0) - m) / s


def normalization_affine(mean: float, std: float) -> tuple[np.float32, np.float32]:
    """``(scale, offset)`` with ``value = float32(p * scale) + offset`` in float32, two roundings, no FMA."""
    lo, hi = value_range(mean, std)
    return (hi - lo) / _F32(255.0), lo


def normalize_into(pixels: np.ndarray, out: np.ndarray, scale: np.float32, offset: np.float32) -> np.ndarray:
    """``out = float32(pixels * scale) + offset`` elementwise for integer ``pixels`` in [0, 255].

    MediaPipe builds a 256-entry table of these values; numpy rounds each ufunc to float32 (two roundings, no
    FMA) exactly as that table's entries were computed, so this equals the lookup bit for bit and is cheaper
    than a gather."""
    np.multiply(pixels, scale, out=out, dtype=np.float32)
    np.add(out, offset, out=out)
    return out
