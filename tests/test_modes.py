"""Tests of segkit.modes: MediaPipe's mode/callback messages, timestamp rules, and the LIVE_STREAM flow limiter."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable
from typing import Any, cast

import pytest

from segkit.modes import (
    LiveStreamWorker,
    TimestampGuard,
    WorkerClosedError,
    check_callback,
    check_mode,
    mode_name,
)
from segkit.options import RunningMode

JOIN_S = 10.0  # generous bound on any wait: a deadlock fails the test instead of hanging it


class Recorder:
    """Collects deliveries and drops; optional gate/delay make ``process`` slow on demand."""

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.delay_s = delay_s
        self.gate = gate
        self.delivered: list[int] = []
        self.dropped: list[int] = []
        self.threads: set[str] = set()
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def process(self, item: Any) -> Any:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                assert self.gate.wait(JOIN_S)
            if self.delay_s:
                time.sleep(self.delay_s)
            return ("result", item)
        finally:
            with self.lock:
                self.active -= 1

    def deliver(self, result: Any, item: Any, timestamp_ms: int) -> None:
        assert result == ("result", item)
        self.threads.add(threading.current_thread().name)
        self.delivered.append(timestamp_ms)

    def on_drop(self, timestamp_ms: int) -> None:
        self.dropped.append(timestamp_ms)

    def worker(self, **kwargs: Any) -> LiveStreamWorker[Any, Any]:
        return LiveStreamWorker(self.process, self.deliver, on_drop=self.on_drop, **kwargs)


def release_later(gate: threading.Event, delay_s: float = 0.05) -> threading.Timer:
    """Set ``gate`` from another thread after ``delay_s``; join the returned timer to keep thread counts exact."""
    timer = threading.Timer(delay_s, gate.set)
    timer.start()
    return timer


def wait_until(predicate: Callable[[], bool], timeout: float = JOIN_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


# --- messages ---------------------------------------------------------------------------------------------------


LIVE_NEEDS = "The vision task is in live stream mode, a user-defined result callback must be provided."
IMAGE_NO = "The vision task is in image or video mode, a user-defined result callback should not be provided."


@pytest.mark.parametrize("mode", [RunningMode.LIVE_STREAM, "LIVE_STREAM"])
def test_live_stream_needs_callback(mode: Any) -> None:
    for missing in (None, 0, ""):
        with pytest.raises(ValueError) as e:
            check_callback(mode, cast(Any, missing))  # deliberately not a callable
        assert str(e.value) == LIVE_NEEDS
    check_callback(mode, print)


@pytest.mark.parametrize("mode", [RunningMode.IMAGE, RunningMode.VIDEO, "IMAGE", "VIDEO"])
def test_image_and_video_reject_callback(mode: Any) -> None:
    for callback in (print, lambda *a: None, 1):
        with pytest.raises(ValueError) as e:
            check_callback(mode, cast(Any, callback))
        assert str(e.value) == IMAGE_NO
    check_callback(mode, None)


@pytest.mark.parametrize(
    "expected, actual, message",
    [
        ("VIDEO", "IMAGE", "Task is not initialized with the video mode. Current running mode:image mode"),
        ("LIVE_STREAM", "VIDEO", "Task is not initialized with the live stream mode. Current running mode:video mode"),
        ("IMAGE", "LIVE_STREAM", "Task is not initialized with the image mode. Current running mode:live stream mode"),
        ("IMAGE", "VIDEO", "Task is not initialized with the image mode. Current running mode:video mode"),
        ("VIDEO", "LIVE_STREAM", "Task is not initialized with the video mode. Current running mode:live stream mode"),
        ("LIVE_STREAM", "IMAGE", "Task is not initialized with the live stream mode. Current running mode:image mode"),
    ],
)
def test_check_mode_messages(expected: str, actual: str, message: str) -> None:
    for exp, act in ((expected, actual), (RunningMode(expected), RunningMode(actual))):
        with pytest.raises(ValueError) as e:
            check_mode(exp, act)
        assert str(e.value) == message


def test_check_mode_same_mode_passes_and_names() -> None:
    for mode in RunningMode:
        check_mode(mode, mode)
        check_mode(mode.value, mode)
    assert [mode_name(m) for m in RunningMode] == ["image mode", "video mode", "live stream mode"]
    with pytest.raises(ValueError, match="Unknown running mode"):
        check_mode("AUDIO", "IMAGE")


# --- timestamps -------------------------------------------------------------------------------------------------


MONOTONIC = "Input timestamp must be monotonically increasing."


def test_timestamp_rules_5_5_4_6() -> None:
    guard = TimestampGuard()
    assert guard.last is None
    assert guard.accept(5) == 5
    for bad in (5, 4):
        with pytest.raises(ValueError) as e:
            guard.accept(bad)
        assert str(e.value) == MONOTONIC
        assert guard.last == 5
    assert guard.accept(6) == 6 and guard.last == 6


def test_timestamp_first_may_be_negative() -> None:
    guard = TimestampGuard()
    assert guard.accept(-1000) == -1000
    assert guard.accept(-999) == -999
    with pytest.raises(ValueError, match="monotonically"):
        guard.accept(-1000)


def test_timestamp_types() -> None:
    guard = TimestampGuard()
    for bad in (True, 1.0, "3", None):
        with pytest.raises(TypeError, match="timestamp_ms must be an int"):
            guard.accept(bad)
    assert guard.last is None

    class IntLike:
        def __index__(self) -> int:
            return 7

    assert guard.accept(IntLike()) == 7
    with pytest.raises(ValueError, match="invalid timestamp"):
        guard.accept(2**62)
    assert guard.last == 7


# --- flow limiting ----------------------------------------------------------------------------------------------


def test_sixty_back_to_back_deliver_first_and_last() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)
    worker = rec.worker()
    try:
        for ts in range(60):
            worker.submit(f"frame{ts}", ts)
            assert worker.stats.outstanding <= 2
        assert rec.dropped == list(range(1, 59))  # each drop is reported before submit() returns
    finally:
        gate.set()
    worker.close(timeout=JOIN_S)
    assert rec.delivered == [0, 59]
    assert rec.dropped == list(range(1, 59))
    assert rec.max_active == 1
    assert rec.threads == {"segkit-live-stream"}
    stats = worker.stats
    assert (stats.submitted, stats.processed, stats.delivered, stats.dropped, stats.failed) == (60, 2, 2, 58, 0)
    assert stats.outstanding == 0


def test_submit_does_not_block_on_slow_process() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)
    with rec.worker() as worker:
        for ts in range(20):
            worker.submit(ts, ts)
        # every submit returned while the first frame is still held at the gate: nothing waited for the worker
        assert not gate.is_set() and worker.stats.outstanding == 2
        gate.set()
    assert rec.delivered == [0, 19]


def test_every_frame_delivered_when_processing_keeps_up() -> None:
    rec = Recorder()
    worker = rec.worker()
    for ts in range(0, 100, 10):
        worker.submit(ts, ts)
        wait_until(lambda: worker.stats.outstanding == 0)
    worker.close(timeout=JOIN_S)
    assert rec.delivered == list(range(0, 100, 10)) and rec.dropped == []


def test_worker_checks_timestamps() -> None:
    rec = Recorder()
    with rec.worker() as worker:
        worker.submit("a", 5)
        with pytest.raises(ValueError) as e:
            worker.submit("b", 5)
        assert str(e.value) == MONOTONIC
        with pytest.raises(TypeError):
            worker.submit("b", cast(Any, 6.0))  # deliberately not an int
        worker.submit("c", 6)
    assert rec.delivered == [5, 6]
    assert worker.stats.submitted == 2


@pytest.mark.slow
def test_stress_200fps_slow_callback() -> None:
    item_bytes = 200_000
    delivered: list[int] = []
    dropped: list[int] = []

    def deliver(result: bytearray, item: bytearray, timestamp_ms: int) -> None:
        time.sleep(0.03)  # a slow user callback: ~33 fps against a 200 fps producer
        delivered.append(timestamp_ms)

    worker: LiveStreamWorker[bytearray, bytearray] = LiveStreamWorker(lambda b: b, deliver, on_drop=dropped.append)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        period = 1 / 200
        start = time.monotonic()
        ts = 0
        while time.monotonic() - start < 5.0:
            worker.submit(bytearray(item_bytes), ts)
            assert worker.stats.outstanding <= 2
            ts += 1
            time.sleep(max(0.0, start + ts * period - time.monotonic()))
        worker.close(timeout=JOIN_S)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    last = ts - 1
    assert ts > 200  # of ~1000 paced submissions: a loaded machine may fall behind the 200 fps pace
    assert peak - base < 8 * item_bytes  # ~3 frames alive at most (in flight, waiting, the one being submitted)
    assert delivered == sorted(delivered) and len(delivered) > 50
    assert delivered[-1] == last  # the last frame is delivered before close() returns
    assert sorted(delivered + dropped) == list(range(ts))
    assert not set(delivered) & set(dropped)
    assert worker.stats.submitted == ts and worker.stats.outstanding == 0


# --- errors -----------------------------------------------------------------------------------------------------


def test_process_error_raised_on_next_submit_and_worker_stays_usable(caplog: pytest.LogCaptureFixture) -> None:
    def process(item: str) -> str:
        if item == "bad":
            raise ValueError("bad image")
        return item

    delivered: list[int] = []
    worker: LiveStreamWorker[str, str] = LiveStreamWorker(process, lambda r, i, t: delivered.append(t))
    with caplog.at_level(logging.ERROR, logger="segkit"):
        worker.submit("bad", 1)
        wait_until(lambda: worker.stats.failed == 1)
    assert "Error in async operation at timestamp 1 ms" in caplog.text
    assert "ValueError: bad image" in caplog.text  # the traceback is logged
    with pytest.raises(ValueError, match="bad image"):
        worker.submit("good", 2)  # raised before the item is accepted
    worker.submit("good", 3)
    worker.close(timeout=JOIN_S)
    assert delivered == [3]
    assert worker.stats.submitted == 2


def test_pending_error_does_not_use_the_timestamp_of_the_refused_item() -> None:
    def deliver(result: int, item: int, timestamp_ms: int) -> None:
        if timestamp_ms == 1:
            raise RuntimeError("user bug")

    worker: LiveStreamWorker[int, int] = LiveStreamWorker(lambda x: x, deliver)
    worker.submit(1, 1)
    wait_until(lambda: worker.stats.failed == 1)
    with pytest.raises(ValueError, match="monotonically"):
        worker.submit(0, 0)  # a bad timestamp is reported first; the pending error stays pending
    with pytest.raises(RuntimeError, match="user bug"):
        worker.submit(2, 2)
    worker.submit(2, 2)  # the refused call can be retried with the same timestamp
    worker.close(timeout=JOIN_S)
    assert worker.stats.delivered == 1 and worker.stats.submitted == 2


def test_guard_check_does_not_accept() -> None:
    guard = TimestampGuard()
    guard.accept(3)
    assert guard.check(4) == 4 and guard.last == 3
    with pytest.raises(ValueError, match="monotonically"):
        guard.check(3)


def test_callback_error_raised_on_next_submit_then_cleared(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def deliver(result: int, item: int, timestamp_ms: int) -> None:
        calls.append(timestamp_ms)
        raise RuntimeError(f"user bug at {timestamp_ms}")

    worker: LiveStreamWorker[int, int] = LiveStreamWorker(lambda x: x, deliver)
    with caplog.at_level(logging.ERROR, logger="segkit"):
        worker.submit(0, 0)
        wait_until(lambda: worker.stats.failed == 1)
        with pytest.raises(RuntimeError, match="user bug at 0"):
            worker.submit(1, 1)
        worker.submit(2, 2)  # cleared once raised
        wait_until(lambda: worker.stats.failed == 2)
    assert "Error in callback at timestamp 0 ms" in caplog.text
    assert "Traceback" in caplog.text
    with pytest.raises(RuntimeError, match="user bug at 2"):
        worker.close(timeout=JOIN_S)
    worker.close()  # idempotent, nothing left to raise
    assert calls == [0, 2]


def test_first_pending_error_wins() -> None:
    gate = threading.Event()

    def deliver(result: int, item: int, timestamp_ms: int) -> None:
        assert gate.wait(JOIN_S)
        raise KeyError(timestamp_ms)

    worker: LiveStreamWorker[int, int] = LiveStreamWorker(lambda x: x, deliver)
    worker.submit(0, 0)
    worker.submit(1, 1)
    gate.set()
    with pytest.raises(KeyError) as e:
        worker.close(timeout=JOIN_S)
    assert e.value.args == (0,)
    assert worker.stats.failed == 2
    worker.close()


# --- close ------------------------------------------------------------------------------------------------------


def test_close_drains_idempotent_and_rejects_submit() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)
    worker = rec.worker()
    worker.submit("a", 1)
    worker.submit("b", 2)
    timer = release_later(gate)
    worker.close(timeout=JOIN_S)
    timer.join(JOIN_S)
    assert rec.delivered == [1, 2]  # in flight and waiting both delivered before close() returns
    assert worker.closed
    worker.close()
    worker.close(drain=False)
    with pytest.raises(WorkerClosedError, match="closed"):
        worker.submit("c", 3)


def test_close_without_drain_drops_waiting() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)
    worker = rec.worker()
    worker.submit("a", 1)
    worker.submit("b", 2)
    timer = release_later(gate)
    worker.close(drain=False, timeout=JOIN_S)
    timer.join(JOIN_S)
    assert rec.delivered == [1]
    assert rec.dropped == [2]


def test_close_unused_worker() -> None:
    worker = Recorder().worker()
    worker.close()
    worker.close()
    assert worker.stats.submitted == 0


def test_close_timeout() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)
    worker = rec.worker()
    worker.submit("a", 1)
    with pytest.raises(TimeoutError):
        worker.close(timeout=0.05)
    gate.set()
    worker.close(timeout=JOIN_S)
    assert rec.delivered == [1]


def test_close_from_inside_callback_does_not_deadlock() -> None:
    gate = threading.Event()
    delivered: list[int] = []
    returned = threading.Event()
    holder: list[LiveStreamWorker[int, int]] = []

    def deliver(result: int, item: int, timestamp_ms: int) -> None:
        delivered.append(timestamp_ms)
        if timestamp_ms == 1:
            assert gate.wait(JOIN_S)
            holder[0].close()
            returned.set()

    worker: LiveStreamWorker[int, int] = LiveStreamWorker(lambda x: x, deliver)
    holder.append(worker)
    worker.submit(1, 1)
    worker.submit(2, 2)
    gate.set()
    assert returned.wait(JOIN_S)
    with pytest.raises(ValueError, match="closed"):
        worker.submit(3, 3)
    worker.close(timeout=JOIN_S)
    assert delivered == [1, 2]  # the waiting item is still drained after the callback returns


def test_submit_from_inside_callback() -> None:
    delivered: list[int] = []
    holder: list[LiveStreamWorker[int, int]] = []

    def deliver(result: int, item: int, timestamp_ms: int) -> None:
        delivered.append(timestamp_ms)
        if timestamp_ms < 3:
            holder[0].submit(item, timestamp_ms + 1)

    worker: LiveStreamWorker[int, int] = LiveStreamWorker(lambda x: x, deliver)
    holder.append(worker)
    worker.submit(0, 0)
    wait_until(lambda: len(delivered) == 4)
    worker.close(timeout=JOIN_S)
    assert delivered == [0, 1, 2, 3]


# --- threads and leaks ------------------------------------------------------------------------------------------


def test_two_hundred_workers_leave_thread_count_flat() -> None:
    before = threading.active_count()
    for i in range(200):
        rec = Recorder()
        worker = rec.worker()
        worker.submit(i, i)
        worker.submit(i, i + 1)
        worker.close(timeout=JOIN_S)
        assert rec.delivered[-1] == i + 1
    assert threading.active_count() == before


def test_idle_thread_exits_and_restarts() -> None:
    rec = Recorder()
    worker = rec.worker(idle_timeout_s=0.05)
    before = threading.active_count()
    worker.submit("a", 1)
    wait_until(lambda: threading.active_count() == before and rec.delivered == [1])
    worker.submit("b", 2)
    worker.close(timeout=JOIN_S)
    assert rec.delivered == [1, 2]
    assert threading.active_count() == before


def test_unclosed_worker_is_collected_and_its_thread_ends() -> None:
    before = threading.active_count()
    rec = Recorder(delay_s=0.02)
    worker = rec.worker(idle_timeout_s=60.0)
    worker.submit("a", 1)
    worker.submit("b", 2)
    alive = weakref.ref(worker)
    del worker
    gc.collect()
    assert alive() is None
    wait_until(lambda: threading.active_count() == before)
    assert rec.delivered == [1, 2]  # accepted items are still delivered


@pytest.mark.slow
def test_unclosed_worker_does_not_keep_its_owner_alive() -> None:
    """The usual owner holds the worker and passes its own bound methods: an idle owner must be collectable."""

    class Owner:
        def __init__(self) -> None:
            self.delivered: list[int] = []
            self.worker: LiveStreamWorker[int, int] = LiveStreamWorker(self.process, self.deliver, idle_timeout_s=0.05)

        def process(self, item: int) -> int:
            return item

        def deliver(self, result: int, item: int, timestamp_ms: int) -> None:
            self.delivered.append(timestamp_ms)

    before = threading.active_count()
    owner = Owner()
    owner.worker.submit(1, 1)
    delivered = owner.delivered
    alive = weakref.ref(owner)
    del owner
    wait_until(lambda: gc.collect() >= 0 and alive() is None and threading.active_count() == before)
    assert delivered == [1]  # the running thread kept the owner alive until its item was delivered


def test_running_and_on_worker_thread() -> None:
    seen: list[tuple[bool, bool]] = []
    holder: list[LiveStreamWorker[int, int]] = []
    worker: LiveStreamWorker[int, int] = LiveStreamWorker(
        lambda x: x, lambda r, i, t: seen.append((holder[0].on_worker_thread(), holder[0].running))
    )
    holder.append(worker)
    assert not worker.running and not worker.on_worker_thread()
    worker.submit(1, 1)
    worker.close(timeout=JOIN_S)
    assert seen == [(True, True)]
    assert not worker.running and not worker.on_worker_thread()


@pytest.mark.slow
def test_unclosed_worker_does_not_hang_interpreter_exit() -> None:
    code = (
        "from segkit.modes import LiveStreamWorker\n"
        "holder = []\n"
        "w = LiveStreamWorker(lambda x: holder, lambda r, i, t: print('delivered', t, flush=True))\n"
        "holder.append(w)\n"  # a reference cycle through the thread's process function
        "w.submit(1, 5)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=JOIN_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "delivered 5"


def test_concurrent_submitters_keep_deliveries_in_order() -> None:
    rec = Recorder(delay_s=0.001)
    worker = rec.worker()
    counter = iter(range(10**6))
    counter_lock = threading.Lock()
    rejected: list[int] = []

    def produce() -> None:
        for _ in range(200):
            with counter_lock:
                ts = next(counter)
            try:
                worker.submit(ts, ts)
            except ValueError:
                rejected.append(ts)  # lost the race to a later timestamp: MediaPipe's monotonic rule

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    worker.close(timeout=JOIN_S)
    assert rec.delivered == sorted(set(rec.delivered))
    assert sorted(rec.delivered + rec.dropped + rejected) == list(range(800))
