"""A tiny persistent helper pool: the calling thread plus up to one worker splits a large pass in two.

Large numpy calls release the GIL, so two threads working on disjoint parts of the output overlap their
arithmetic. Every split is by output rows (or channels): each element is computed by exactly the same
operations whichever thread runs it, so results are identical for any thread count.

The worker is a ``ThreadPoolExecutor`` thread, started on first use, joined by ``close()``. It holds no
reference to its owner: an owner dropped without ``close()`` frees the executor, which wakes the worker to
exit, and ``concurrent.futures`` wakes it at interpreter exit too (it never blocks shutdown).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as _wait

from segkit._common import available_cores

# Threads a pass is split across at most (measured on 2 cores; more threads contend for the GIL between calls).
MAX_THREADS = 2


def default_threads() -> int:
    """``min(MAX_THREADS, cores this process may run on)``."""
    return min(MAX_THREADS, available_cores())


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """``range(n)`` as ``parts`` consecutive ``(start, end)`` runs of near-equal length (empty runs dropped)."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


class Helpers:
    """``threads - 1`` lazily started worker threads that run parts of a job alongside the caller."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None

    def run(self, jobs: Sequence[Callable[[], object]]) -> None:
        """Run every job, the first on the calling thread and the rest on the workers; return when all are done.

        The first exception raised (the caller's first) propagates, after every job has finished, so no worker
        still writes to the caller's buffers once this returns.
        """
        if len(jobs) < 2 or self.threads < 2:
            for job in jobs:
                job()
            return
        futures: list[Future[object]] = []
        try:
            executor = self._executor
            if executor is None:
                executor = self._executor = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="segkit-post")
            try:
                for job in jobs[1:]:
                    futures.append(executor.submit(_Once(job)))
            except RuntimeError:  # the interpreter is shutting down: run the rest here
                for job in jobs[1 + len(futures) :]:
                    job()
            jobs[0]()
        finally:
            _wait(futures)
        for f in futures:
            f.result()

    def close(self) -> None:
        """Join the workers (a later ``run`` starts them again)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


class _Once:
    """A job that lets go of itself when it has run, before its future is marked done (the caller may rely on
    nothing else referring to its arrays once ``run`` returns)."""

    __slots__ = ("job",)

    def __init__(self, job: Callable[[], object]) -> None:
        self.job: Callable[[], object] | None = job

    def __call__(self) -> None:
        job, self.job = self.job, None
        assert job is not None
        job()
