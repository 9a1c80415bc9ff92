"""``Postprocessor``: logits to MediaPipe's confidence masks and category mask, with per-size tables cached."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from .activation import NONE, SIGMOID, SOFTMAX, activate
from .category import CategoryPlan, argmax_mask, category_plan, threshold_mask
from .pool import BlockPool
from .resize import LinearPlan, linear_plan, resize_linear

_PLANS_KEPT = 4
_F32 = np.dtype(np.float32)
_TRANSPOSE_BLOCK = 512  # pixels per block when moving (h, w, C) logits to (C, h, w): keeps the copy in cache
# Above this many channels, activations run on a channel-first copy (made in the activation's own buffer, then
# activated in place): on the strided view they are slower. Up to it they read the view (faster for C <= 2).
_FEW_CHANNELS = 2
_Plan = TypeVar("_Plan", LinearPlan, CategoryPlan)


class Postprocessor:
    """Turns one model's mask output into masks; caches sampling tables per output size (the math is elsewhere).

    Output memory is recycled (``BlockPool``): a returned mask's block is reused only once the caller has let go
    of every mask of that result, so results stay valid as long as they are held, and a caller that drops them
    pays no allocation or page faults on the next call. All work runs on the calling thread: on small numpy
    calls, handing the GIL between two threads costs more than the second core gains (measured; see the
    package notes), so ``num_threads`` is accepted and validated but does not change the schedule. One call at
    a time per instance (the activated values live in a reused buffer).

    The logits are read in place, as a channel-first strided view of the ``(h, w, C)`` array (no copy of
    them is made, and none is kept after a call returns: the runtime's output buffer may be handed in).
    """

    def __init__(self, activation: int, tensor_shape: tuple[int, int, int], *, num_threads: int | None = None) -> None:
        """``activation``: 0 NONE, 1 SIGMOID, 2 SOFTMAX; ``tensor_shape``: the mask tensor's ``(h, w, C)``.

        ``num_threads``: kept for the API (None or >= 1); postprocessing runs on the calling thread.
        """
        if activation not in (NONE, SIGMOID, SOFTMAX):
            raise ValueError(f"unknown activation {activation!r}; expected 0 (NONE), 1 (SIGMOID) or 2 (SOFTMAX)")
        h, w, c = (int(n) for n in tensor_shape)
        if min(h, w, c) < 1:
            raise ValueError(f"bad mask tensor shape {tuple(tensor_shape)!r}; expected (h, w, C), all positive")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
        self.activation = activation
        self.tensor_shape = (h, w, c)
        self.num_threads = num_threads if num_threads is not None else max(1, min(4, os.cpu_count() or 1))
        self._blocks = BlockPool()
        self._shapes = ((h, w, c), (1, h, w, c), (h, w)) if c == 1 else ((h, w, c), (1, h, w, c))
        self._act: np.ndarray | None = None  # activated values before resizing, reused
        self._linear: OrderedDict[tuple[int, int], LinearPlan] = OrderedDict()
        self._category: OrderedDict[tuple[int, int], CategoryPlan] = OrderedDict()

    def confidence_masks(self, logits: np.ndarray, width: int, height: int) -> list[np.ndarray]:
        """C float32 ``(height, width)`` masks: activation at tensor size, then OpenCV's linear resize."""
        return self._confidence(self._channels_first(logits), width, height)

    def category_mask(self, logits: np.ndarray, width: int, height: int) -> np.ndarray:
        """The uint8 ``(height, width)`` category mask (class index, or 0/255 for one channel)."""
        return self._category_mask(self._channels_first(logits), width, height)

    def masks(
        self, logits: np.ndarray, width: int, height: int, *, confidence: bool = True, category: bool = True
    ) -> tuple[list[np.ndarray] | None, np.ndarray | None]:
        """Either or both kinds of mask from one pass over ``logits``; None for a kind not asked for."""
        k = self._channels_first(logits)
        return (
            self._confidence(k, width, height) if confidence else None,
            self._category_mask(k, width, height) if category else None,
        )

    def close(self) -> None:
        """Release the cached tables and recycled buffers (masks already returned stay valid); reusable after."""
        self._blocks.clear()
        self._linear.clear()
        self._category.clear()
        self._act = None

    def _channels_first(self, logits: np.ndarray) -> np.ndarray:
        """``(h, w, C)``, ``(1, h, w, C)`` or ``(h, w)`` float logits as a ``(C, h, w)`` view (float32; other float
        types are converted, which copies). Nothing refers to it after the call."""
        h, w, c = self.tensor_shape
        a = logits if type(logits) is np.ndarray else np.asarray(logits)
        if a.shape not in self._shapes:
            raise ValueError(f"logits of shape {a.shape} do not match the mask tensor shape {(h, w, c)}")
        if a.dtype != _F32:
            if not np.can_cast(a.dtype, _F32, "same_kind"):
                raise TypeError(f"logits must be floating point, got {a.dtype}")
            a = a.astype(_F32)
        return a.reshape(h, w, c).transpose(2, 0, 1)

    def _confidence(self, k: np.ndarray, width: int, height: int) -> list[np.ndarray]:
        c, h, w = k.shape
        if (width, height) == (w, h):
            return list(activate(k, self.activation, out=self._blocks.take((c, h, w), np.float32)))
        if self.activation == NONE:
            act = k
        else:
            if self._act is None:
                self._act = np.empty((c, h, w), np.float32)
            if c > _FEW_CHANNELS and not k.flags.c_contiguous:
                k = _transpose_into(k, self._act)  # then in place: SIGMOID and the general SOFTMAX allow it
            act = activate(k, self.activation, out=self._act)
        plan = _cached(self._linear, (width, height), lambda: linear_plan(h, w, height, width))
        out = self._blocks.take((c, height, width), np.float32)
        resize_linear(act, plan, out)
        return list(out)

    def _category_mask(self, k: np.ndarray, width: int, height: int) -> np.ndarray:
        c, h, w = k.shape
        plan = _cached(self._category, (width, height), lambda: category_plan(h, w, height, width))
        out = self._blocks.take((height, width), np.uint8)
        fill = threshold_mask if c == 1 else argmax_mask
        fill(k, plan, self.activation, out)
        return out


def _transpose_into(k: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy the ``(C, h, w)`` view ``k`` of C-contiguous ``(h, w, C)`` logits into ``out``, in cache-sized blocks."""
    c, h, w = k.shape
    hwc = k.transpose(1, 2, 0)
    if not hwc.flags.c_contiguous:
        np.copyto(out, k)
        return out
    src, dst = hwc.reshape(h * w, c), out.reshape(c, h * w)
    for s in range(0, h * w, _TRANSPOSE_BLOCK):
        np.copyto(dst[:, s : s + _TRANSPOSE_BLOCK], src[s : s + _TRANSPOSE_BLOCK].T)
    return out


def _check_size(width: object, height: object) -> None:
    if not all(isinstance(n, (int, np.integer)) and n > 0 for n in (width, height)):
        raise ValueError(f"bad output size {width!r}x{height!r}; width and height must be positive integers")


def _cached(cache: OrderedDict[tuple[int, int], _Plan], key: tuple[int, int], build: Callable[[], _Plan]) -> _Plan:
    """``cache[key]``, built on first use; keeps the most recently used few entries."""
    _check_size(*key)
    plan = cache.get(key)
    if plan is None:
        plan = cache[key] = build()
        while len(cache) > _PLANS_KEPT:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return plan
