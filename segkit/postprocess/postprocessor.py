"""``Postprocessor``: logits to MediaPipe's confidence masks and category mask, with per-size tables cached."""

from __future__ import annotations

import functools

import numpy as np

from segkit._common import PlanCache

from .activation import NONE, SIGMOID, SOFTMAX, activate, sigmoid
from .category import CategoryPlan, argmax_mask, category_plan, threshold_mask
from .pool import BlockPool
from .resize import MaskLinearPlan, mask_linear_plan, resize_mask_jobs, resize_masks
from .threads import MAX_THREADS, Helpers, default_threads, split

PLANS_KEPT = 4  # output sizes whose tables are kept (an LRU)
_F32 = np.dtype(np.float32)
_TRANSPOSE_BLOCK = 512  # pixels per block when moving (h, w, C) logits to (C, h, w): keeps the copy in cache
# Above this many channels, activations run on a channel-first copy (made in the activation's own buffer, then
# activated in place): on the strided view they are slower. Up to it they read the view (faster for C <= 2).
_FEW_CHANNELS = 2
# Least work per thread worth a split (measured on 2 cores: below these a second thread's hand-off and the GIL
# between numpy calls cost more than it gains). Output elements (all channels) for the confidence resize,
# tensor elements for the activation, output pixels for the category mask. A split resize also costs ~13 MB of
# scratch and malloc arena in the second thread, so it waits for work that repays it: DeepLab's 21 masks at
# 1280x720 (9.7M elements a thread, ~8 ms saved) split; at 640x480 (3.2M, already faster than MediaPipe) they don't.
SPLIT_RESIZE = 4_000_000
SPLIT_ACTIVATION = 100_000
SPLIT_CATEGORY = 400_000
# Output elements per resize band when the resize is split: larger than one thread's cache-sized bands, so the
# threads make fewer, longer numpy calls (each call's hand-back of the GIL may wait for the other thread).
SPLIT_BAND_ELEMENTS = 1 << 17
SPLIT_CATEGORY_BAND_ELEMENTS = 1 << 18
# A plan's key: output width, height, and whether its bands are the split (larger) ones.
_Key = tuple[int, int, bool]


class Postprocessor:
    """Turns one model's mask output into masks; caches sampling tables per output size (the math is elsewhere).

    Output memory is recycled (``BlockPool``): a returned mask's block is reused only once the caller has let go
    of every mask of that result, so results stay valid as long as they are held, and a caller that drops them
    pays no allocation or page faults on the next call. Large passes (activation, confidence resize, category
    mask) are split by output rows between the calling thread and up to ``num_threads - 1`` helper threads
    (``threads.Helpers``; started on first use, joined by ``close()``); small ones run on the calling thread,
    where handing the GIL between threads would cost more than the second core gains. Every element is computed
    by the same operations whichever thread runs it, so the masks are identical for any ``num_threads``. One
    call at a time per instance (the activated values live in a reused buffer).

    The logits are read in place, as a channel-first strided view of the ``(h, w, C)`` array (no copy of
    them is made, and none is kept after a call returns: the runtime's output buffer may be handed in).
    """

    def __init__(self, activation: int, tensor_shape: tuple[int, int, int], *, num_threads: int | None = None) -> None:
        """``activation``: 0 NONE, 1 SIGMOID, 2 SOFTMAX; ``tensor_shape``: the mask tensor's ``(h, w, C)``.

        ``num_threads``: threads for large passes, at most ``threads.MAX_THREADS`` (None: that or the cores
        available, if fewer; 1: everything on the calling thread, no helper thread).
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
        self.num_threads = default_threads() if num_threads is None else min(int(num_threads), MAX_THREADS)
        self._helpers = Helpers(self.num_threads)
        self._blocks = BlockPool()
        self._shapes = ((h, w, c), (1, h, w, c), (h, w)) if c == 1 else ((h, w, c), (1, h, w, c))
        self._act: np.ndarray | None = None  # activated values before resizing, reused
        self._linear: PlanCache[_Key, MaskLinearPlan] = PlanCache(PLANS_KEPT)
        self._category: PlanCache[_Key, CategoryPlan] = PlanCache(PLANS_KEPT)

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
        """Join the helper thread and release the cached tables and recycled buffers (masks already returned
        stay valid); reusable after (a helper thread is started again when needed)."""
        self._helpers.close()
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
        view: np.ndarray = a.reshape(h, w, c).transpose(2, 0, 1)
        return view

    def _parts(self, work: int, least: int) -> int:
        """Into how many parts to split ``work`` elements: at least ``least`` per part, at most one per thread."""
        return max(1, min(self.num_threads, work // least))

    def _confidence(self, k: np.ndarray, width: int, height: int) -> list[np.ndarray]:
        _check_size(width, height)
        c, h, w = k.shape
        if (width, height) == (w, h):
            out = self._blocks.take((c, h, w), np.float32)
            parts = self._parts(c * h * w, SPLIT_ACTIVATION)
            if parts == 1:
                activate(k, self.activation, out=out)
            else:
                self._activate_split(k, out, parts, transpose=False)
            return list(out)
        if self.activation == NONE:
            act = k
        else:
            if self._act is None:
                self._act = np.empty((c, h, w), np.float32)
            transpose = c > _FEW_CHANNELS and not k.flags.c_contiguous
            parts = self._parts(c * h * w, SPLIT_ACTIVATION)
            if parts > 1:
                act = self._activate_split(k, self._act, parts, transpose=transpose)
            else:
                if transpose:
                    k = _transpose_into(k, self._act)  # then in place: SIGMOID and the general SOFTMAX allow it
                act = activate(k, self.activation, out=self._act)
        out = self._blocks.take((c, height, width), np.float32)
        parts = self._parts(c * height * width, SPLIT_RESIZE)
        if parts == 1:
            plan = self._linear.get((width, height, False), lambda: mask_linear_plan(h, w, height, width))
            resize_masks(act, plan, out)
        else:
            plan = self._linear.get(
                (width, height, True), lambda: mask_linear_plan(h, w, height, width, SPLIT_BAND_ELEMENTS)
            )
            self._helpers.run(resize_mask_jobs(act, plan, out, parts))
        return list(out)

    def _activate_split(self, k: np.ndarray, out: np.ndarray, parts: int, *, transpose: bool) -> np.ndarray:
        """``activate(k)`` into ``out`` by source rows across the threads (``transpose``: first copy each part
        channel-first into ``out``, then activate it there in place). Element-wise, so the same bits."""
        self._helpers.run(
            [functools.partial(self._activate_rows, k, out, a, b, transpose) for a, b in split(k.shape[1], parts)]
        )
        return out

    def _activate_rows(self, k: np.ndarray, out: np.ndarray, a: int, b: int, transpose: bool) -> None:
        x, o = k[:, a:b], out[:, a:b]
        if transpose:
            x = _transpose_into(x, o)
        if self.activation == SIGMOID and x.shape[0] > 1:
            for c in range(x.shape[0]):  # ``sigmoid`` needs a contiguous output: one channel's rows are one
                sigmoid(x[c], out=o[c])
        else:
            activate(x, self.activation, out=o)

    def _category_mask(self, k: np.ndarray, width: int, height: int) -> np.ndarray:
        _check_size(width, height)
        c, h, w = k.shape
        out = self._blocks.take((height, width), np.uint8)
        fill = threshold_mask if c == 1 else argmax_mask
        parts = self._parts(height * width, SPLIT_CATEGORY)
        if parts == 1:
            plan = self._category.get((width, height, False), lambda: category_plan(h, w, height, width))
            fill(k, plan, self.activation, out)
        else:
            plan = self._category.get(
                (width, height, True), lambda: category_plan(h, w, height, width, SPLIT_CATEGORY_BAND_ELEMENTS)
            )
            self._helpers.run(
                [
                    functools.partial(fill, k, plan, self.activation, out, range(a, b))
                    for a, b in split(len(plan.bands), parts)
                ]
            )
        return out


def _transpose_into(k: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy the ``(C, h, w)`` view ``k`` of C-contiguous ``(h, w, C)`` logits into ``out``, in cache-sized blocks."""
    c, h, w = k.shape
    hwc = k.transpose(1, 2, 0)
    dst = out.reshape(c, h * w)  # a view also for a row range of a C-contiguous block
    if not hwc.flags.c_contiguous or not np.may_share_memory(dst, out):
        np.copyto(out, k)
        return out
    src = hwc.reshape(h * w, c)
    for s in range(0, h * w, _TRANSPOSE_BLOCK):
        np.copyto(dst[:, s : s + _TRANSPOSE_BLOCK], src[s : s + _TRANSPOSE_BLOCK].T)
    return out


def _check_size(width: object, height: object) -> None:
    if not all(isinstance(n, (int, np.integer)) and n > 0 for n in (width, height)):
        raise ValueError(f"bad output size {width!r}x{height!r}; width and height must be positive integers")
