"""Output recycling: a held result is never overwritten; dropped results give their memory back."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from segkit.postprocess import Postprocessor
from segkit.postprocess.pool import BLOCKS_PER_SHAPE, BlockPool

F32 = np.float32


def _logits(seed: int, shape: tuple[int, int, int] = (9, 11, 3)) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, shape).astype(F32)


def _ptr(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def _fresh(activation: int, logits: np.ndarray, width: int, height: int) -> tuple[list[np.ndarray], np.ndarray]:
    conf, cat = Postprocessor(activation, logits.shape, num_threads=1).masks(logits, width, height)
    assert conf is not None and cat is not None
    return [m.copy() for m in conf], cat.copy()


def _same(a: tuple[list[np.ndarray], np.ndarray], b: tuple[list[np.ndarray] | None, np.ndarray | None]) -> bool:
    assert b[0] is not None and b[1] is not None
    return all(
        np.array_equal(x.view(np.uint32), y.view(np.uint32)) for x, y in zip(a[0], b[0], strict=True)
    ) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize(("width", "height"), [(23, 17), (11, 9), (22, 18)])  # resize, same size, 2x (no area)
@pytest.mark.parametrize("activation", [0, 1, 2])
def test_held_results_are_never_overwritten(width: int, height: int, activation: int) -> None:
    pp = Postprocessor(activation, (9, 11, 3), num_threads=2)
    held = [pp.masks(_logits(i), width, height) for i in range(4)]  # more than the pool keeps per shape
    for i in range(4, 8):
        pp.masks(_logits(i), width, height)  # dropped at once: its blocks are recycled
    for i, result in enumerate(held):
        assert _same(_fresh(activation, _logits(i), width, height), result)
    pp.close()


def test_one_held_mask_pins_the_whole_block_and_views_pin_it_too() -> None:
    pp = Postprocessor(2, (9, 11, 3), num_threads=1)
    conf, cat = pp.masks(_logits(0), 23, 17)
    assert conf is not None and cat is not None
    keep_mask = conf[1]
    keep_view = cat[2:5, ::2]  # a view of the category mask alone
    want_mask, want_view = keep_mask.copy(), keep_view.copy()
    kept_ptr = _ptr(conf[0])
    del conf, cat
    for i in range(1, 6):
        c2, k2 = pp.masks(_logits(i), 23, 17)
        assert c2 is not None and k2 is not None
        assert _ptr(c2[0]) != kept_ptr
        assert not np.shares_memory(c2[0], keep_mask) and not np.shares_memory(k2, keep_view)
        del c2, k2
    assert np.array_equal(keep_mask, want_mask) and np.array_equal(keep_view, want_view)


def test_dropped_results_are_reused() -> None:
    pp = Postprocessor(0, (9, 11, 3), num_threads=1)
    conf, cat = pp.masks(_logits(0), 23, 17)
    assert conf is not None and cat is not None
    ptrs = (_ptr(conf[0]), _ptr(cat))
    del conf, cat
    conf, cat = pp.masks(_logits(1), 23, 17)
    assert conf is not None and cat is not None
    assert (_ptr(conf[0]), _ptr(cat)) == ptrs
    assert _same(_fresh(0, _logits(1), 23, 17), (conf, cat))


def test_a_loop_that_keeps_the_previous_result_alternates_two_blocks() -> None:
    pp = Postprocessor(1, (9, 11, 3), num_threads=1)
    seen = set()
    result = pp.masks(_logits(0), 23, 17)
    for i in range(1, 8):
        previous, result = result, pp.masks(_logits(i), 23, 17)
        assert result[0] is not None and previous[0] is not None
        assert not np.shares_memory(result[0][0], previous[0][0])
        assert _same(_fresh(1, _logits(i - 1), 23, 17), previous)
        seen.add(_ptr(result[0][0]))
        del previous
    assert len(seen) == BLOCKS_PER_SHAPE


def test_frozen_and_exported_masks_stay_pinned() -> None:
    pp = Postprocessor(0, (9, 11, 3), num_threads=1)
    conf, cat = pp.masks(_logits(0), 23, 17)
    assert conf is not None and cat is not None
    frozen = cat[:, :, None]
    frozen.flags.writeable = False  # what ImageSegmenter's Image wrapper does
    cat.flags.writeable = False  # and a caller freezing the block itself
    exported = conf[2].data  # a memoryview: a buffer export of the mask
    want_cat, want_conf = cat.copy(), conf[2].copy()
    del conf, cat
    gc.collect()
    for i in range(1, 5):
        pp.masks(_logits(i), 23, 17)
    assert np.array_equal(frozen[:, :, 0], want_cat)
    assert np.array_equal(np.asarray(exported), want_conf)
    del frozen, exported
    conf, cat = pp.masks(_logits(9), 23, 17)  # the pinned blocks are free again; writable after the freeze
    assert cat is not None and cat.flags.writeable and _same(_fresh(0, _logits(9), 23, 17), (conf, cat))


def test_pool_keeps_few_blocks_and_close_releases_them() -> None:
    pool = BlockPool()
    a = pool.take((4, 5), F32)
    b = pool.take((4, 5), F32)
    c = pool.take((4, 5), F32)  # both kept blocks are held: a new, unkept one
    assert len({_ptr(a), _ptr(b), _ptr(c)}) == 3
    del c
    assert _ptr(pool.take((4, 5), F32)) not in (_ptr(a), _ptr(b))  # still held, and c was not kept
    pa = _ptr(a)
    del a
    assert _ptr(pool.take((4, 5), F32)) == pa
    assert pool.take((4, 5), np.uint8).dtype == np.uint8
    pool.clear()
    b[...] = 1.5  # still a valid, writable array after clear() (its contents were uninitialized: maybe NaN)
    assert np.all(b == 1.5)


def test_close_keeps_results_and_the_postprocessor_usable() -> None:
    pp = Postprocessor(2, (9, 11, 3), num_threads=2)
    first = pp.masks(_logits(0), 23, 17)
    pp.close()
    second = pp.masks(_logits(1), 23, 17)
    assert _same(_fresh(2, _logits(0), 23, 17), first)
    assert _same(_fresh(2, _logits(1), 23, 17), second)
