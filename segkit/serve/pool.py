"""Bounded inference: per model, ``workers`` segmenters on a thread pool and a short, bounded waiting line.

A segmenter is not shared between threads here (each worker slot owns one), so requests for one model run in
parallel up to ``workers``; up to ``queue`` more wait for a free slot; anything beyond is refused at once with
503 + Retry-After, before its body is read. Nothing waits without bound, and the inference never runs on the
event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions, models
from segkit.serve import ops
from segkit.serve.config import local_models
from segkit.serve.images import ApiError

T = TypeVar("T")
RETRY_AFTER_S = "1"


@dataclass(frozen=True)
class ModelDescription:
    """What ``GET /v1/models`` says about one served model."""

    name: str
    labels: tuple[str, ...]
    display_names: tuple[str, ...]
    input_height: int
    input_width: int
    input_channels: int
    path: str


def resolve_model(name: str) -> Path:
    """The file of a registry name or .tflite path; FileNotFoundError / ConnectionError / ValueError say why not."""
    return models.resolve(name)


def new_segmenter(
    path: Path, threads: int, normalization: tuple[float, float] | None = None, **options: object
) -> ImageSegmenter:
    """A segmenter for the model at ``path`` with both masks (the category mask feeds the legend); ``normalization``
    for a model whose file lacks it (the registry's legacy entries)."""
    return ImageSegmenter.create_from_options(
        ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            output_category_mask=True,
            num_threads=threads,
            normalization=normalization,
            **options,  # type: ignore[arg-type]
        )
    )


class _Slot:
    """One worker's segmenter, created on first use on the worker thread."""

    def __init__(
        self,
        path: Path,
        threads: int,
        normalization: tuple[float, float] | None,
        segmenter: ImageSegmenter | None = None,
    ) -> None:
        self._path = path
        self._threads = threads
        self._normalization = normalization
        self.segmenter = segmenter

    def get(self) -> ImageSegmenter:
        if self.segmenter is None:
            self.segmenter = new_segmenter(self._path, self._threads, self._normalization)
        return self.segmenter


class ModelWorkers:
    """One model's slots and its admission counter (touched only on the event loop)."""

    def __init__(
        self,
        name: str,
        path: Path,
        workers: int,
        queue: int,
        threads: int,
        normalization: tuple[float, float] | None = None,
    ) -> None:
        self.normalization = normalization  # for the live sessions' own segmenters
        first = new_segmenter(path, threads, normalization)
        shape = first.model_info.inputs[0].shape
        self.description = ModelDescription(
            name=name,
            labels=tuple(first.labels),
            display_names=tuple(first.display_names),
            input_height=int(shape[1]),
            input_width=int(shape[2]),
            input_channels=int(shape[3]) if len(shape) > 3 else 1,
            path=str(path),
        )
        self.names = ops.display_labels(first)  # the category names shown in legends
        self.limit = workers + queue
        self.workers = workers
        self.in_flight = 0
        self._slots = [_Slot(path, threads, normalization, first)]
        self._slots += [_Slot(path, threads, normalization) for _ in range(workers - 1)]
        self._free: asyncio.Queue[_Slot | None] | None = None  # None: the server is shutting down
        self.stopping = False

    def stop_waiting(self) -> None:
        """The server is shutting down: requests waiting for a worker, and any new one, get 503 at once (on the
        loop); running ones finish."""
        self.stopping = True
        self._queue().put_nowait(None)  # each waiter that takes it puts it back for the next one

    def _queue(self) -> asyncio.Queue[_Slot | None]:
        # Created lazily: an asyncio.Queue belongs to the loop that first uses it (uvicorn's, not the creator's).
        if self._free is None:
            self._free = asyncio.Queue()
            for slot in self._slots:
                self._free.put_nowait(slot)
        return self._free

    @contextmanager
    def admit(self) -> Iterator[None]:
        """A place in this model's line, or ApiError 503 + Retry-After when ``workers + queue`` are taken."""
        if self.stopping:
            raise ApiError(503, "the server is shutting down", {"Retry-After": RETRY_AFTER_S})
        if self.in_flight >= self.limit:
            raise ApiError(
                503,
                f"model {self.description.name!r} is busy ({self.in_flight} requests in flight); retry shortly",
                {"Retry-After": RETRY_AFTER_S},
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def run(self, executor: ThreadPoolExecutor, fn: Callable[[ImageSegmenter], T], deadline: float) -> T:
        """``fn(segmenter)`` on a free slot's thread; 503 if no slot frees up before ``deadline``, 504 if too slow.

        A timed-out call keeps its slot until the thread finishes (the segmenter is busy until then).
        """
        free = self._queue()
        loop = asyncio.get_running_loop()
        try:
            slot = await asyncio.wait_for(free.get(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise ApiError(
                503, f"no worker of model {self.description.name!r} became free in time", {"Retry-After": "1"}
            ) from None
        if slot is None:
            free.put_nowait(None)
            raise ApiError(503, "the server is shutting down", {"Retry-After": RETRY_AFTER_S})
        taken = slot  # for the lambdas (mypy does not narrow ``slot`` inside them)
        future = loop.run_in_executor(executor, lambda: fn(taken.get()))
        future.add_done_callback(lambda _: free.put_nowait(taken))
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise ApiError(504, "processing took longer than the server's per-request timeout") from None

    def close(self) -> None:
        for slot in self._slots:
            if slot.segmenter is not None:
                slot.segmenter.close()
                slot.segmenter = None


class Pool:
    """Every served model's workers and the one thread pool they share (sized to the total of their slots)."""

    def __init__(self, names: tuple[str, ...], workers: int, queue: int, threads: int) -> None:
        """Loads ``names``; with none given, every local registry model the segmenter can run (others skipped)."""
        self.models: dict[str, ModelWorkers] = {}
        self.skipped: dict[str, str] = {}  # default models that did not load, and why
        try:
            for name in names or local_models():
                path = resolve_model(name)
                registered = name in models.names() and not Path(name).is_file()  # a file wins, as in resolve
                key = name if registered or path.suffix != ".tflite" else path.stem
                try:
                    self.models[key] = ModelWorkers(key, path, workers, queue, threads, models.normalization(name))
                except Exception as e:  # a default model this segmenter cannot run (e.g. a legacy solution model)
                    if names:
                        raise
                    self.skipped[key] = str(e)
            if not self.models:
                found = "; ".join(f"{k}: {v}" for k, v in self.skipped.items()) or "none found locally"
                raise FileNotFoundError(f"no model to serve ({found}); name one with --models")
        except BaseException:
            self.close()
            raise
        self.executor = ThreadPoolExecutor(max_workers=workers * len(self.models), thread_name_prefix="segkit-serve")
        self._lock = threading.Lock()

    def stop_waiting(self) -> None:
        """Shutting down: every model's waiting and new requests get 503 (call on the event loop)."""
        for workers in self.models.values():
            workers.stop_waiting()

    def get(self, name: str) -> ModelWorkers:
        """The workers of model ``name``; ApiError 404 listing the served models otherwise."""
        try:
            return self.models[name]
        except KeyError:
            served = ", ".join(self.models)
            raise ApiError(404, f"model {ops.shown(name)} is not served here; served models: {served}") from None

    def close(self) -> None:
        """Waits for running calls, then frees every segmenter."""
        executor = getattr(self, "executor", None)
        if executor is not None:
            executor.shutdown(wait=True)
        for workers in self.models.values():
            workers.close()
