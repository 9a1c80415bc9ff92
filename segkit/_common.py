"""Small helpers every stage shares: a bounded plan cache, the band size of banded passes, the usable cores, the
check for an index in ASCII digits, the names of temporary files, a Pillow image over a numpy buffer.

Imports nothing of segkit, so ``preprocess``, ``postprocess`` and ``runtime`` may all use it without importing
each other.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from PIL import Image as PILImage

# Output elements per band of a banded pass (~128 KiB of float32 or int32 per intermediate): small enough that a
# band's temporaries stay in cache. The bits never depend on it, only the speed.
BAND_ELEMENTS = 1 << 15

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class PlanCache(Generic[K, V]):
    """A least-recently-used map of at most ``maxsize`` values built on first use: the stages' plans (tables built
    from sizes) and the postprocessor's recycled blocks per shape.

    A video of fixed size then does no set-up work after its first frame, and a stream of varying sizes keeps
    only the last few alive."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._plans: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, build: Callable[[], V]) -> V:
        """The plan for ``key``, made by ``build()`` on a miss (evicting the least recently used one if full)."""
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = build()
            while len(self._plans) > self.maxsize:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    def __len__(self) -> int:
        return len(self._plans)

    def __contains__(self, key: object) -> bool:
        return key in self._plans

    def clear(self) -> None:
        """Forget every plan."""
        self._plans.clear()


def available_cores() -> int:
    """The cores this process may run on (affinity-aware, so ``taskset`` is honoured), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def is_index(text: str) -> bool:
    """Whether ``text`` is a non-negative integer in ASCII digits (``str.isdigit`` also accepts '²', which ``int``
    refuses) of at most 18 digits (``int`` refuses strings of over 4300; no index or count here needs 19)."""
    return len(text) <= 18 and text.isascii() and text.isdigit()


def temporary_prefix(target: Path) -> str:
    """The start of the name of every temporary file written for ``target``: a dot and 16 hex digits of a hash of
    its name.

    Fixed-length, so every legal output name (up to the file system's 255 bytes) has a legal temporary name, and
    the same in every process, so ``batch.remove_partials`` finds what a killed writer left (``segkit.batch``
    writes images, ``segkit.video`` videos).
    """
    return "." + hashlib.sha256(os.fsencode(target.name)).hexdigest()[:16]


def rgbx_canvas(array: np.ndarray) -> PILImage.Image:
    """An "RGBX" Pillow image whose pixels are ``array``'s memory (a writable C-contiguous (H, W, 4) uint8 array).

    What Pillow pastes or decodes into it lands in the array, with no copy out (``np.asarray`` of a Pillow image
    copies twice). ``frombuffer`` shares the memory but marks the image read-only, so that a paste would first copy
    it; the array is the caller's own, so the mark is lifted.
    """
    height, width = array.shape[:2]
    image = PILImage.frombuffer("RGBX", (width, height), array, "raw", "RGBX", 0, 1)
    image.readonly = 0
    return image
