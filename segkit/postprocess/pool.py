"""Recycled output blocks: a returned mask's memory is reused only after every reference to it is gone.

Fresh large arrays cost an allocation and a page fault per 4 KiB page on every call (glibc maps big blocks
anew each time). ``BlockPool`` keeps a few blocks per shape and hands one out again only when nothing outside
the pool refers to it: every mask given to a caller is the block itself or a numpy view of it, and a view keeps
its base (the block) alive, so a block whose reference count is back to the pool's own is unreachable from
outside and may be overwritten. Anything still holding a mask (or a view, or a buffer export of one) pins its
block, and the pool allocates another.
"""

from __future__ import annotations

import sys

import numpy as np

from segkit._common import PlanCache

# Blocks kept per shape: two covers ``r = segment(...)`` in a loop (the previous result is alive during the call).
BLOCKS_PER_SHAPE = 2
SHAPES_KEPT = 4


def _refs(blocks: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(blocks[i])


# The reference count of a block held only by a pool list, as ``_refs`` sees it.
_FREE = _refs([np.empty(1)], 0)


class BlockPool:
    """Per ``(shape, dtype)``, up to ``BLOCKS_PER_SHAPE`` blocks, reused once no one else holds them."""

    def __init__(self) -> None:
        self._blocks: PlanCache[tuple[tuple[int, ...], str], list[np.ndarray]] = PlanCache(SHAPES_KEPT)

    def take(self, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A C-contiguous block of ``shape``: a free pooled one (stale contents) or a new one (kept if room)."""
        blocks = self._blocks.get((tuple(shape), np.dtype(dtype).str), list)
        for i in range(len(blocks)):
            if _refs(blocks, i) == _FREE:
                block = blocks[i]
                block.flags.writeable = True  # a caller may have frozen it (it owns its memory, so this is allowed)
                return block
        block = np.empty(shape, dtype)
        if len(blocks) < BLOCKS_PER_SHAPE:
            blocks.append(block)
        return block

    def clear(self) -> None:
        """Forget every block (blocks still held by callers stay valid: they are ordinary arrays)."""
        self._blocks.clear()
