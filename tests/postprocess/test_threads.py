"""The threaded path: any thread count gives the same bits; the helper thread is joined by close() and never
outlives its Postprocessor (or blocks interpreter exit)."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable

import numpy as np
import pytest

import segkit.postprocess.postprocessor as post
from segkit import _common
from segkit.postprocess import Postprocessor
from segkit.postprocess.threads import MAX_THREADS, Helpers, default_threads, split
from tests.postprocess.cases import random_logits, size_cases

F32 = np.float32


def _helper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("segkit-post")]


@pytest.fixture
def always_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split every pass, however small, and make many bands (so the split falls inside band runs)."""
    for name in ("SPLIT_RESIZE", "SPLIT_ACTIVATION", "SPLIT_CATEGORY"):
        monkeypatch.setattr(post, name, 1)
    for name in ("SPLIT_BAND_ELEMENTS", "SPLIT_CATEGORY_BAND_ELEMENTS"):
        monkeypatch.setattr(post, name, 256)
    monkeypatch.setattr(_common, "BAND_ELEMENTS", 256)


def _masks(pp: Postprocessor, k: np.ndarray, width: int, height: int) -> tuple[list[np.ndarray], np.ndarray]:
    conf, cat = pp.masks(k, width, height)
    assert conf is not None and cat is not None
    return [m.copy() for m in conf], cat.copy()


def _same(a: tuple[list[np.ndarray], np.ndarray], b: tuple[list[np.ndarray], np.ndarray]) -> bool:
    return all(np.array_equal(x.view(np.uint32), y.view(np.uint32)) for x, y in zip(a[0], b[0], strict=True)) and (
        np.array_equal(a[1], b[1])
    )


@pytest.mark.usefixtures("always_split")
@pytest.mark.parametrize(("h", "w", "c", "oh", "ow", "special"), size_cases(40, seed=7, same_size_every=11))
@pytest.mark.parametrize("activation", [0, 1, 2])
def test_thread_count_does_not_change_a_bit(
    h: int, w: int, c: int, oh: int, ow: int, special: bool, activation: int
) -> None:
    k = random_logits(np.random.default_rng(h * 1009 + w * 17 + c * 3 + activation), h, w, c, special)
    one = Postprocessor(activation, k.shape, num_threads=1)
    two = Postprocessor(activation, k.shape, num_threads=2)
    try:
        want = _masks(one, k, ow, oh)
        assert _same(_masks(two, k, ow, oh), want)
        assert _same(_masks(two, k, ow, oh), want)  # again, with recycled blocks and a warm helper
        assert _same(_masks(two, k[None], ow, oh), want)
    finally:
        one.close()
        two.close()


@pytest.mark.slow
@pytest.mark.parametrize(("c", "activation"), [(1, 0), (1, 1), (2, 2), (3, 2), (21, 0), (4, 1)])
def test_large_outputs_split_at_the_real_thresholds_and_match(c: int, activation: int) -> None:
    """Sizes above the measured break-even (the production path), including NaN/inf logits."""
    k = random_logits(np.random.default_rng(c + 10 * activation), 72, 96, c, special=activation != 1)
    before = set(threading.enumerate())
    one = Postprocessor(activation, k.shape, num_threads=1)
    two = Postprocessor(activation, k.shape, num_threads=2)
    try:
        for width, height in ((1280, 720), (800, 600)):
            assert _same(_masks(two, k, width, height), _masks(one, k, width, height))
        assert set(threading.enumerate()) - before, "the large passes should have used the helper thread"
    finally:
        one.close()
        two.close()


@pytest.mark.usefixtures("always_split")
def test_every_pass_really_runs_on_both_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: set[str] = set()
    real_run = Helpers.run

    def spy(self: Helpers, jobs: list[Callable[[], object]]) -> None:
        assert len(jobs) == 2

        def traced(job: Callable[[], object]) -> Callable[[], object]:
            def run() -> object:
                seen.add(threading.current_thread().name)
                return job()

            return run

        real_run(self, [traced(job) for job in jobs])

    monkeypatch.setattr(Helpers, "run", spy)
    monkeypatch.setattr(post, "SPLIT_CATEGORY_BAND_ELEMENTS", 32)  # several bands even for the 10x15 mask
    for activation, c in ((2, 2), (1, 3), (0, 1)):
        k = np.random.default_rng(c).normal(0, 2, (30, 20, c)).astype(F32)
        pp = Postprocessor(activation, k.shape, num_threads=2)
        for width, height in ((90, 70), (20, 30), (10, 15)):  # resize, same size (activation), 2x area
            seen.clear()
            pp.masks(k, width, height)
            assert len(seen) == 2, (activation, c, width, height)
        pp.close()


def test_split_covers_the_range_in_order() -> None:
    for n in range(0, 30):
        for parts in (1, 2, 3, 5):
            runs = split(n, parts)
            assert [i for a, b in runs for i in range(a, b)] == list(range(n))
            assert len(runs) == min(n, parts)


def test_default_threads_and_bad_counts() -> None:
    assert 1 <= default_threads() <= MAX_THREADS
    assert Postprocessor(0, (4, 4, 1)).num_threads == default_threads()
    assert Postprocessor(0, (4, 4, 1), num_threads=1).num_threads == 1
    assert Postprocessor(0, (4, 4, 1), num_threads=64).num_threads == MAX_THREADS
    with pytest.raises(ValueError):
        Postprocessor(0, (4, 4, 1), num_threads=0)


@pytest.mark.usefixtures("always_split")
def test_one_thread_starts_no_thread() -> None:
    start = threading.enumerate()
    pp = Postprocessor(2, (30, 20, 2), num_threads=1)
    pp.masks(np.ones((30, 20, 2), F32), 100, 80)
    assert threading.enumerate() == start
    pp.close()


@pytest.mark.usefixtures("always_split")
def test_close_joins_the_helper_and_the_postprocessor_stays_usable() -> None:
    k = random_logits(np.random.default_rng(3), 30, 20, 3, special=False)
    before = set(threading.enumerate())
    pp = Postprocessor(2, k.shape, num_threads=2)
    want = _masks(pp, k, 100, 80)
    helpers = [t for t in _helper_threads() if t not in before]
    assert len(helpers) == 1
    pp.close()
    assert not helpers[0].is_alive() and not set(threading.enumerate()) - before
    assert _same(_masks(pp, k, 100, 80), want)  # a new helper is started on demand
    assert len(set(threading.enumerate()) - before) == 1
    pp.close()
    pp.close()  # idempotent
    assert not set(threading.enumerate()) - before


@pytest.mark.slow
@pytest.mark.usefixtures("always_split")
def test_create_close_cycles_leave_the_thread_count_flat() -> None:
    k = np.random.default_rng(4).normal(0, 1, (24, 20, 2)).astype(F32)
    gc.collect()
    start, count = set(threading.enumerate()), threading.active_count()
    for _ in range(50):
        pp = Postprocessor(2, k.shape, num_threads=2)
        pp.masks(k, 70, 50)
        assert len(set(threading.enumerate()) - start) == 1  # (threads of other, unclosed instances may end)
        pp.close()
        assert not set(threading.enumerate()) - start
    assert threading.active_count() <= count


@pytest.mark.slow
@pytest.mark.usefixtures("always_split")
def test_an_unclosed_postprocessor_lets_its_helper_exit() -> None:
    k = np.random.default_rng(5).normal(0, 1, (24, 20, 2)).astype(F32)
    before = set(threading.enumerate())
    pp = Postprocessor(2, k.shape, num_threads=2)
    pp.masks(k, 70, 50)
    (helper,) = set(threading.enumerate()) - before
    ref = weakref.ref(pp)
    del pp
    gc.collect()
    assert ref() is None
    helper.join(timeout=10)
    assert not helper.is_alive()


@pytest.mark.usefixtures("always_split")
def test_the_helper_keeps_no_reference_to_the_logits() -> None:
    k = np.random.default_rng(6).normal(0, 1, (24, 20, 3)).astype(F32)
    before = sys.getrefcount(k)
    pp = Postprocessor(2, k.shape, num_threads=2)
    for _ in range(20):
        pp.masks(k, 70, 50)
        assert sys.getrefcount(k) == before
    pp.close()


@pytest.mark.slow
def test_an_unclosed_helper_does_not_block_interpreter_exit() -> None:
    code = (
        "import numpy as np\n"
        "import segkit.postprocess.postprocessor as post\n"
        "post.SPLIT_RESIZE = post.SPLIT_ACTIVATION = post.SPLIT_CATEGORY = 1\n"
        "pp = post.Postprocessor(2, (40, 30, 2), num_threads=2)\n"
        "pp.masks(np.ones((40, 30, 2), np.float32), 90, 70)\n"
        "import threading\n"
        "assert any(t.name.startswith('segkit-post') for t in threading.enumerate())\n"
        "KEEP = pp\n"
    )
    # a hang at interpreter exit raises TimeoutExpired (60 s: generous for a loaded machine, still a clear failure)
    done = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_errors_in_either_thread_propagate_after_both_finish() -> None:
    before = set(threading.enumerate())
    helpers = Helpers(2)
    finished: list[str] = []

    def slow() -> None:
        time.sleep(0.05)
        finished.append("slow")

    def fail() -> None:
        raise KeyError("worker")

    with pytest.raises(KeyError, match="worker"):
        helpers.run([slow, fail])
    assert finished == ["slow"]

    def fail_here() -> None:
        raise ValueError("caller")

    with pytest.raises(ValueError, match="caller"):
        helpers.run([fail_here, slow])
    assert finished == ["slow", "slow"]  # the worker's job had finished when run() raised
    helpers.run([lambda: finished.append("a"), lambda: finished.append("b")])
    assert sorted(finished[2:]) == ["a", "b"]
    (worker,) = (t for t in _helper_threads() if t not in before)
    helpers.close()
    assert not worker.is_alive()
