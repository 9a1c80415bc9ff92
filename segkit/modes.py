"""Running-mode machinery: MediaPipe's mode checks, VIDEO/LIVE_STREAM timestamp rules, and the LIVE_STREAM worker.

Stdlib only and segmentation-agnostic: the worker runs opaque items through a function it is given.
Running modes are accepted as ``RunningMode`` members or their string values ("IMAGE", "VIDEO", "LIVE_STREAM").
"""

from __future__ import annotations

import enum
import logging
import operator
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "LiveStreamWorker",
    "TimestampGuard",
    "WorkerClosedError",
    "WorkerStats",
    "check_callback",
    "check_mode",
    "mode_key",
    "mode_name",
]

_LOG = logging.getLogger("segkit")

_MODE_NAMES = {"IMAGE": "image mode", "VIDEO": "video mode", "LIVE_STREAM": "live stream mode"}

# MediaPipe timestamps are int64 microseconds; Timestamp::Min()/Max() are the outermost values allowed in a stream.
_MIN_US = -(2**63) + 2
_MAX_US = 2**63 - 3

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def mode_key(mode: Any) -> str:
    """The string value of a running mode given as an enum member (any enum with these values) or a string."""
    key = mode.value if isinstance(mode, enum.Enum) else mode
    if not isinstance(key, str) or key not in _MODE_NAMES:
        raise ValueError(f"Unknown running mode: {mode!r}")
    return key


def mode_name(mode: Any) -> str:
    """MediaPipe's display name of a running mode: 'image mode', 'video mode' or 'live stream mode'."""
    return _MODE_NAMES[mode_key(mode)]


def check_callback(running_mode: Any, result_callback: Callable[..., Any] | None) -> None:
    """Raise MediaPipe's ValueError when the callback does not fit the mode (truthiness, as MediaPipe tests it)."""
    if mode_key(running_mode) == "LIVE_STREAM":
        if not result_callback:
            raise ValueError("The vision task is in live stream mode, a user-defined result callback must be provided.")
    elif result_callback:
        raise ValueError(
            "The vision task is in image or video mode, a user-defined result callback should not be provided."
        )


def check_mode(expected: Any, actual: Any) -> None:
    """Raise MediaPipe's ValueError when a method for mode ``expected`` is called on a task in mode ``actual``."""
    if mode_key(expected) != mode_key(actual):
        raise ValueError(
            f"Task is not initialized with the {mode_name(expected)}. Current running mode:{mode_name(actual)}"
        )


class TimestampGuard:
    """MediaPipe's VIDEO/LIVE_STREAM timestamp rule: each accepted timestamp is strictly above the last accepted one.

    The first timestamp may be anything (negative included); a rejected timestamp leaves the state unchanged.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._last: int | None = None
        self._lock = threading.Lock()

    @property
    def last(self) -> int | None:
        """The last accepted timestamp in ms, or None before the first."""
        return self._last

    def accept(self, timestamp_ms: Any) -> int:
        """Validate and accept ``timestamp_ms``; return it as an int.

        TypeError for a non-integer (bool included); ValueError when not strictly increasing, or outside
        MediaPipe's int64-microsecond stream range.
        """
        with self._lock:
            value = self.check(timestamp_ms)
            self._last = value
        return value

    def check(self, timestamp_ms: Any) -> int:
        """Validate ``timestamp_ms`` as :meth:`accept` does, without accepting it; return it as an int."""
        value = _as_timestamp(timestamp_ms)
        last = self._last
        if last is not None and value <= last:
            raise ValueError("Input timestamp must be monotonically increasing.")
        return value


def _as_timestamp(timestamp_ms: Any) -> int:
    """``timestamp_ms`` as an int (ints and numpy integers, not bool/float), within MediaPipe's range."""
    if isinstance(timestamp_ms, bool):
        raise TypeError("timestamp_ms must be an int, got bool")
    try:
        value = operator.index(timestamp_ms)
    except TypeError:
        raise TypeError(f"timestamp_ms must be an int, got {type(timestamp_ms).__name__}") from None
    if not _MIN_US <= value * 1000 <= _MAX_US:
        raise ValueError("Calling TaskRunner::Send method with packets having invalid timestamp.")
    return value


class WorkerClosedError(ValueError):
    """``LiveStreamWorker.submit`` after ``close``."""


@dataclass(frozen=True)
class WorkerStats:
    """Counters of a LiveStreamWorker; ``submitted == delivered + dropped + failed + outstanding`` at all times."""

    submitted: int  # items accepted by submit()
    processed: int  # process() returned
    delivered: int  # deliver() returned normally
    dropped: int  # replaced in the waiting slot, or discarded by close(drain=False); never delivered
    failed: int  # process() or deliver() raised
    outstanding: int  # in flight + waiting: 0, 1 or 2


class _State:
    """Everything the worker thread touches; it never references the LiveStreamWorker, so GC can collect that."""

    def __init__(self, process: Callable[[Any], Any], deliver: Callable[[Any, Any, int], None], idle: float) -> None:
        self.process = process
        self.deliver = deliver
        self.idle_timeout_s = idle
        self.cond = threading.Condition()
        self.in_flight: tuple[Any, int] | None = None
        self.waiting: tuple[Any, int] | None = None
        self.closed = False
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.thread_alive = False
        self.submitted = self.processed = self.delivered = self.dropped = self.failed = 0

    def fail(self, exc: BaseException, what: str, timestamp_ms: int) -> None:
        """Log ``exc`` with its traceback and keep it as the pending error unless one is already pending."""
        _LOG.error("%s at timestamp %d ms", what, timestamp_ms, exc_info=(type(exc), exc, exc.__traceback__))
        with self.cond:
            if self.error is None:
                self.error = exc

    def abandon(self) -> None:
        """Finalizer of an unclosed worker: stop accepting, let the thread drain and exit without joining it."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def _abandon(state_ref: weakref.ReferenceType[_State]) -> None:
    """Finalizer of an unclosed worker; nothing to do when its state is gone (then no thread was running)."""
    state = state_ref()
    if state is not None:
        state.abandon()


def _run(state: _State) -> None:
    """Worker thread: process and deliver admitted items in order; exit when closed and empty, or idle too long."""
    while True:
        with state.cond:
            while state.in_flight is None:
                idle_too_long = not state.closed and not state.cond.wait(state.idle_timeout_s)
                if state.in_flight is None and (state.closed or idle_too_long):
                    state.thread_alive = False
                    return
            item, timestamp_ms = state.in_flight
        processed = delivered = False
        try:
            result = state.process(item)
            processed = True
            state.deliver(result, item, timestamp_ms)
            delivered = True
        except BaseException as exc:
            state.fail(exc, "Error in callback" if processed else "Error in async operation", timestamp_ms)
        item = result = None
        with state.cond:
            state.processed += processed
            state.delivered += delivered
            state.failed += not delivered
            state.in_flight, state.waiting = state.waiting, None
            state.cond.notify_all()


class LiveStreamWorker(Generic[ItemT, ResultT]):
    """LIVE_STREAM execution with MediaPipe's FlowLimiter (max_in_flight=1, max_in_queue=1) on one worker thread.

    ``submit`` never blocks: an item is admitted at once when nothing is in flight, else it takes the single
    waiting slot, replacing (dropping) the item there. The thread runs ``process(item)`` then
    ``deliver(result, item, timestamp_ms)`` for each admitted item, in timestamp order.
    """

    def __init__(
        self,
        process: Callable[[ItemT], ResultT],
        deliver: Callable[[ResultT, ItemT, int], None],
        *,
        on_drop: Callable[[int], None] | None = None,
        idle_timeout_s: float = 0.5,
    ) -> None:
        """``on_drop(timestamp_ms)`` runs on the caller's thread for each dropped item; the thread starts on the
        first submit and exits after ``idle_timeout_s`` without work (restarted by the next submit)."""
        if not idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be positive, got {idle_timeout_s!r}")
        self._state = _State(process, deliver, idle_timeout_s)
        self._on_drop = on_drop
        self._guard = TimestampGuard()
        # The finalizer holds the state weakly: a strong reference from the finalizer registry (a GC root) would keep
        # ``process``/``deliver`` and whatever they reference (typically this worker's owner) alive forever.
        self._finalizer = weakref.finalize(self, _abandon, weakref.ref(self._state))
        self._finalizer.atexit = False

    @property
    def closed(self) -> bool:
        """True once close() has been called."""
        return self._state.closed

    @property
    def stats(self) -> WorkerStats:
        """A consistent snapshot of the counters."""
        s = self._state
        with s.cond:
            outstanding = (s.in_flight is not None) + (s.waiting is not None)
            return WorkerStats(s.submitted, s.processed, s.delivered, s.dropped, s.failed, outstanding)

    @property
    def running(self) -> bool:
        """True while the worker thread is alive (it may still call ``process``/``deliver``)."""
        thread = self._state.thread
        return thread is not None and thread.is_alive()

    def on_worker_thread(self) -> bool:
        """True when called from the worker thread, i.e. from inside ``process`` or ``deliver``."""
        return self._state.thread is threading.current_thread()

    def raise_pending_error(self) -> None:
        """Raise (and clear) the first error from ``process`` or ``deliver`` not yet raised; no-op when none."""
        with self._state.cond:
            error, self._state.error = self._state.error, None
        if error is not None:
            raise error

    def submit(self, item: ItemT, timestamp_ms: int) -> None:
        """Queue ``item`` for processing without waiting for it.

        Checks in order: closed (WorkerClosedError, a ValueError), timestamp (TypeError/ValueError, as
        TimestampGuard), pending error (raised and cleared; the item is then not accepted and its timestamp not
        used, so the same call can be retried). Then admits the item, possibly dropping the waiting one.
        """
        s = self._state
        dropped: int | None = None
        retired: threading.Thread | None = None
        with s.cond:  # checks and admission under one lock: concurrent submitters cannot reorder timestamps
            if s.closed:
                raise WorkerClosedError("The live stream worker is closed; submit() is not allowed after close().")
            timestamp_ms = self._guard.check(timestamp_ms)
            error, s.error = s.error, None
            if error is not None:
                raise error
            self._guard.accept(timestamp_ms)
            s.submitted += 1
            if s.in_flight is None:
                s.in_flight = (item, timestamp_ms)
                if not s.thread_alive:
                    retired = s.thread
                    self._start_thread()
                s.cond.notify_all()
            else:
                if s.waiting is not None:
                    dropped = s.waiting[1]
                    s.dropped += 1
                s.waiting = (item, timestamp_ms)
        if retired is not None and retired is not threading.current_thread():
            retired.join()
        if dropped is not None and self._on_drop is not None:
            self._on_drop(dropped)

    def _start_thread(self) -> None:
        """Start a fresh worker thread; called with the lock held and an item in flight."""
        s = self._state
        thread = threading.Thread(target=_run, args=(s,), name="segkit-live-stream", daemon=False)
        try:
            thread.start()
        except BaseException:
            s.in_flight = None
            s.submitted -= 1
            raise
        s.thread, s.thread_alive = thread, True

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop accepting items, finish the work, join the thread, then raise the pending error if any.

        ``drain=True`` processes and delivers the in-flight and the waiting item; ``drain=False`` drops the waiting
        one (reported to ``on_drop``), the in-flight item still completes. Idempotent: a later call only joins and
        raises errors not yet raised. TimeoutError when the thread does not end within ``timeout`` seconds.
        From the worker thread itself (inside ``process``/``deliver``) it only marks the worker closed and returns:
        no join and no error raised; the thread drains and exits after the callback returns.
        """
        s = self._state
        dropped: int | None = None
        with s.cond:
            s.closed = True
            if not drain and s.waiting is not None:
                dropped = s.waiting[1]
                s.waiting = None
                s.dropped += 1
            s.cond.notify_all()
            thread = s.thread
        self._finalizer.detach()
        on_worker_thread = thread is threading.current_thread()
        try:
            if dropped is not None and self._on_drop is not None:
                self._on_drop(dropped)
        finally:
            if thread is not None and not on_worker_thread:
                thread.join(timeout)
        if on_worker_thread:
            return
        if thread is not None and thread.is_alive():
            raise TimeoutError(f"The live stream worker did not finish within {timeout} s.")
        self.raise_pending_error()

    def __enter__(self) -> LiveStreamWorker[ItemT, ResultT]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
