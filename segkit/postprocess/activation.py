"""MediaPipe's mask activations (NONE, SIGMOID, SOFTMAX) and output dequantization, bit-exact in float32.

MediaPipe evaluates ``expf`` correctly rounded (LLVM libc); numpy's float32 ``exp`` is not, so ``exp`` runs in
float64 and is rounded once to float32. Divisions run in float32: ``float(1 / double(y))`` equals the float32
quotient ``1 / y`` because double rounding is innocuous for division at these precisions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np

NONE, SIGMOID, SOFTMAX = 0, 1, 2
_P = ParamSpec("_P")
_R = TypeVar("_R")


def quiet(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` with numpy's floating-point warnings off: NaN and inf logits are valid input, not errors.

    (``np.errstate`` is per thread, so worker functions carry it themselves.)
    """

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return run


_F32 = np.float32
_ONE = np.float32(1.0)
_CHUNK = 1 << 16  # float64 elements per exp chunk (512 KiB: fewer calls, so two threads rarely wait for the GIL)


@quiet
def expf(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Correctly rounded float32 ``exp`` of a float32 array (float64 ``exp``, rounded once), into ``out``.

    Works in chunks through a small float64 buffer: large temporaries would cost page faults on every call.
    """
    out = np.empty(x.shape, _F32) if out is None else out
    src, dst = x.reshape(-1), out.reshape(-1)
    if not np.shares_memory(dst, out):
        raise ValueError("expf needs a contiguous output array")
    scratch = np.empty(min(_CHUNK, src.size), np.float64)
    for a in range(0, src.size, _CHUNK):
        t = scratch[: min(_CHUNK, src.size - a)]
        np.copyto(t, src[a : a + _CHUNK])
        np.exp(t, out=t)
        np.copyto(dst[a : a + _CHUNK], t, casting="same_kind")
    return out


@quiet
def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """MediaPipe's ``float(1. / (1 + expf(-x)))`` element-wise on a float32 array, into ``out``."""
    e: np.ndarray = np.negative(x, out=out if out is not None else np.empty(x.shape, _F32))
    expf(e, out=e)
    np.add(e, _ONE, out=e)
    np.divide(_ONE, e, out=e)
    return e


@quiet
def softmax(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """MediaPipe's stable softmax over axis 0 of a channel-first float32 array.

    ``m = max_c x``; ``e_c = expf(x_c - m)``; the denominator is summed in float32 in channel order.
    """
    if out is None:
        out = np.empty_like(x, dtype=_F32)
    if x.shape[0] == 2 and _softmax2(x, out):
        return out
    m = x.max(axis=0)
    den = np.empty_like(m)
    for c in range(x.shape[0]):
        np.subtract(x[c], m, out=out[c])
        expf(out[c], out=out[c])
        if c == 0:
            den[...] = out[0]
        else:
            np.add(den, out[c], out=den)
    np.divide(out, den, out=out)
    return out


def _softmax2(x: np.ndarray, out: np.ndarray) -> bool:
    """Two-channel softmax with one ``expf`` per pixel instead of two; False (``out`` clobbered) if not finite.

    The larger channel gets ``expf(0) == 1`` exactly and the other ``expf(-|x0 - x1|)`` (float subtraction is
    sign-symmetric), so the general formula reduces to ``1 / (1 + e)`` and ``e / (1 + e)``, placed by which
    channel is larger; ties give 0.5 either way. Infinite or NaN logits (and differences that overflow) take
    the general path.
    """
    d = np.subtract(x[0], x[1], out=out[1])
    t = np.abs(d)
    if not np.isfinite(t.max()):
        return False
    first = np.greater_equal(d, _F32(0.0))  # channel 0 is the maximum (or ties)
    second = np.logical_not(first)
    np.negative(t, out=t)
    e = expf(t, out=t)  # in (0, 1]
    den = np.add(e, _ONE)
    # numerators: 1 for the larger channel, e for the other; max(e, flag) picks without a masked copy
    np.divide(np.maximum(e, first, out=out[0]), den, out=out[0])
    np.divide(np.maximum(e, second, out=out[1]), den, out=out[1])
    return True


def activate(x: np.ndarray, activation: int, out: np.ndarray | None = None) -> np.ndarray:
    """Confidence values of channel-first float32 logits ``(C, h, w)`` under ``activation`` (0, 1 or 2)."""
    if activation == SIGMOID:
        return sigmoid(x, out=out)
    if activation == SOFTMAX:
        return softmax(x, out=out)
    if activation != NONE:
        raise ValueError(f"unknown activation {activation!r}; expected 0 (NONE), 1 (SIGMOID) or 2 (SOFTMAX)")
    if out is None:
        return x.astype(_F32, copy=True)
    np.copyto(out, x)
    return out


def _first_float_above_half() -> np.float32:
    """The smallest float32 ``v`` with ``sigmoid(v) > 0.5f`` (sigmoid is monotonic, so bisect bit patterns)."""
    lo, hi = 0, 0x7F800000  # bit patterns of +0.0 and +inf: sigmoid(0) == 0.5, sigmoid(inf) == 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        v = np.array([mid], dtype=np.uint32).view(_F32)
        if sigmoid(v)[0] > _F32(0.5):
            hi = mid
        else:
            lo = mid
    first: np.float32 = np.array([hi], dtype=np.uint32).view(_F32)[0]
    return first


# ``sigmoid(v) > 0.5f`` exactly when ``v > SIGMOID_HALF_CUT`` (the float just below the first one that passes).
SIGMOID_HALF_CUT: np.float32 = np.nextafter(_first_float_above_half(), _F32(-1.0))


def dequantize(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """MediaPipe's ``float(scale * (int(q) - zero_point))`` for a quantized (uint8, int8, bool...) output tensor."""
    q = raw.astype(np.int32) - np.int32(zero_point)
    values: np.ndarray = np.multiply(q.astype(_F32), _F32(scale), dtype=_F32)
    return values


@quiet
def to_alpha(mask: np.ndarray, out: np.ndarray | None = None, scratch: np.ndarray | None = None) -> np.ndarray:
    """A [0, 1] confidence mask as uint8 alpha (``rint(clip(m) * 255)``), e.g. the hair model's feedback channel.

    ``out`` (uint8, the mask's shape, may be a strided view) and ``scratch`` (float32, same shape) avoid allocation.
    """
    t = np.clip(mask, _F32(0.0), _ONE, out=scratch)
    t = np.multiply(t, _F32(255.0), out=t) if t.dtype == _F32 else t * _F32(255.0)
    np.rint(t, out=t)
    if out is None:
        alpha: np.ndarray = t.astype(np.uint8)
        return alpha
    np.copyto(out, t, casting="unsafe")
    return out
