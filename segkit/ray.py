"""segkit on Ray: a callable class for Ray Data's ``Dataset.map_batches``, and the engine behind ``--engine ray``.

:class:`Segment` plugs segkit into Ray Data the way Ray's batch-inference guides do: Ray builds one instance per
actor (options as constructor kwargs, the model loaded once), then calls it with batches of images as
``ray.data.read_images`` produces them; it adds mask or effect columns. Ray schedules the actors, retries failed
tasks, reads and writes the data (local folders, S3, GCS, ...)::

    import ray
    from segkit.ray import Segment

    ds = ray.data.read_images("s3://bucket/photos/", mode="RGB", include_paths=True)
    ds = ds.map_batches(
        Segment,
        fn_constructor_kwargs={"model": "selfie_segmenter", "effect": "blur", "strength": 20.0},
        compute=ray.data.ActorPoolStrategy(size=8),  # 8 actors
        num_cpus=1,  # per actor; the segmenter uses that many threads
        batch_size=16,
    )
    ds.drop_columns(["image"]).write_images("s3://bucket/blurred/", column="output", file_format="jpeg")

:func:`run_files` is the command line's ``--engine ray``: the same :class:`segkit.batch.FileJob` s as the local
pool, each processed by :meth:`segkit.batch.Worker.process_file` inside a Ray actor, so the files written are the
same, bit for bit. Needs the extra: ``pip install "segkit[ray]"``.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from segkit import batch, models
from segkit._common import is_index

try:
    import ray
    import ray.data
    import ray.exceptions
except ImportError as _error:  # the message says what to install; the CLI turns it into exit status 3
    raise ImportError(f'segkit.ray needs Ray Data: pip install "segkit[ray]" ({_error})') from _error

__all__ = ["Effect", "Masks", "RayRunError", "Segment", "run_files"]

Effect = Literal["blur", "replace", "cutout", "recolor", "overlay"]
Masks = Literal["alpha", "category", "confidence", "both"]

# Files per actor call for --engine ray: each call costs Ray a task (~10 ms of scheduling and object store), so
# large folders go in batches of up to 64 files (4 files per call measured 30% slower than 64 on 2 cores); small
# ones in at least 8 calls per actor, so the actors stay evenly loaded and the progress bar moves.
_FILES_PER_BATCH = (4, 64)
_CALLS_PER_ACTOR = 8
# Times Ray reruns a batch whose actor died (a crash or a lost node) before its files are reported failed.
_BATCH_RETRIES = 2


class RayRunError(batch.SetupError):
    """Ray could not run the job at all (no cluster at the address, the cluster lost): the run stops."""


class Segment:
    """A ``Dataset.map_batches`` callable class: segments each image of a batch and adds its mask or effect columns.

    Built once per Ray actor. ``model`` is a registry name (fetched into the node's cache if missing) or a .tflite
    path readable on every node. With ``effect`` None, it adds one uint8 (H, W) column per mask (``masks``):
    ``"alpha"`` (the subject, 0..255), ``"category"`` (MediaPipe's category mask), and for ``"confidence"`` one
    column per class, named ``confidence_<index>_<label>``; ``"both"`` = category and confidence. With an effect it
    adds ``"output"``: the uint8 image the ``segkit <effect>`` command writes (RGBA for ``cutout``).
    ``categories`` (label names or indices) picks the subject or the confidence classes; ``strength``,
    ``background``, ``color``, ``refine``, ``refine_radius``, ``alpha`` and ``legend`` are the effect's options,
    ``gpu``, ``gpu_fallback`` and ``normalization`` the segmenter's. ``num_threads`` None uses the CPUs Ray
    assigned to the actor (``num_cpus`` of ``map_batches``).

    The images are read from ``image_column``: uint8 (H, W, 3) arrays, in one (N, H, W, 3) array or an object
    array of differently sized ones, as ``read_images(..., mode="RGB")`` gives them; gray (H, W) images are
    replicated to RGB; RGBA images are segmented on their RGB, and a cutout keeps their alpha (as the command line
    does). Every input column is passed through.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "selfie_segmenter",
        effect: Effect | None = None,
        *,
        masks: Masks = "alpha",
        categories: Sequence[str | int] | None = None,
        image_column: str = "image",
        strength: float | None = None,
        background: str | None = None,
        color: str | None = None,
        refine: Literal["none", "feather", "guided"] = "none",
        refine_radius: int = 4,
        alpha: float = 0.5,
        legend: bool = True,
        num_threads: int | None = None,
        gpu: bool = False,
        gpu_fallback: bool = False,
        normalization: tuple[float, float] | None = None,
    ) -> None:
        if effect is not None and effect not in get_args(Effect):
            raise ValueError(f"effect must be None or one of {', '.join(get_args(Effect))}, got {effect!r}")
        path = str(models.resolve(model))
        outputs, chosen = batch.choose_outputs(path, masks, categories)
        task = batch.Task(
            model=path,
            command=effect or "segment",
            masks=outputs,
            categories=chosen,
            refine=refine,
            refine_radius=refine_radius,
            strength=strength,
            background=background,
            color=color,
            alpha=alpha,
            legend=legend,
            num_threads=num_threads if num_threads is not None else _assigned_cpus(),
            gpu=gpu,
            gpu_fallback=gpu_fallback,
            normalization=normalization,
        )
        self.image_column = image_column
        self.columns: tuple[str, ...] = ("output",) if effect is not None else tuple(m.name for m in outputs)
        self._worker = batch.Worker(task, dedicated=True)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batch (Ray's numpy format: column name -> array) with the new columns added, row for row."""
        if self.image_column not in rows:
            raise KeyError(f"the batch has no column {self.image_column!r} (its columns: {', '.join(rows)})")
        results = [self._worker.process_array(_rgb(image, i)) for i, image in enumerate(rows[self.image_column])]
        added = {name: _column([r[k] for r in results]) for k, name in enumerate(self.columns)}
        return {**rows, **added}


def _assigned_cpus() -> int | None:
    """The CPUs Ray assigned to the current actor (rounded, at least 1); None outside a Ray actor."""
    if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
        return None
    resources = ray.get_runtime_context().get_assigned_resources()  # type: ignore[no-untyped-call]  # unannotated in Ray
    cpus = resources.get("CPU")
    return max(1, round(cpus)) if cpus else None


def _rgb(image: Any, row: int) -> np.ndarray:
    """One image of a batch as uint8 (H, W, 3), or (H, W, 4) as given (``Worker.process_array`` segments its RGB and
    a cutout keeps its alpha); ValueError naming the row and the shape for anything else."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"image {row} must be uint8, got {array.dtype} (read_images gives uint8)")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return array
    raise ValueError(f"image {row} has shape {array.shape}, not (H, W, 3): read the images with mode='RGB'")


def _column(values: list[np.ndarray]) -> np.ndarray:
    """Arrays of one shape stacked into one array; differently shaped ones as an object array (Ray's ragged form)."""
    if values and all(v.shape == values[0].shape for v in values):
        return np.stack(values)
    column = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        column[i] = value
    return column


# --- the command line's --engine ray --------------------------------------------------------------------------------


class _FileActor:
    """The Ray actor of :func:`run_files`: one :class:`segkit.batch.Worker` turning file jobs into outcome rows."""

    def __init__(self, task: batch.Task, overwrite: bool) -> None:
        self._worker = batch.Worker(task, dedicated=True)
        self._overwrite = overwrite
        self._setup_error = ""

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Processes the batch's jobs; a SetupError (the model cannot load) marks every row fatal."""
        status: list[str] = []
        errors: list[str] = []
        seconds: list[float] = []
        fatal: list[bool] = []
        for source, targets in zip(rows["source"], rows["targets"], strict=True):
            outcome = self._process(batch.FileJob(Path(source), tuple(Path(t) for t in targets)))
            status.append(outcome.status)
            errors.append(outcome.error)
            seconds.append(outcome.seconds)
            fatal.append(bool(self._setup_error))
        return {
            "index": rows["index"],
            "status": np.array(status),
            "error": np.array(errors),
            "seconds": np.array(seconds, dtype=np.float64),
            "fatal": np.array(fatal),
        }

    def _process(self, job: batch.FileJob) -> batch.FileOutcome:
        """One job's outcome; after a SetupError every job fails with its message (the driver stops the run)."""
        if not self._setup_error:
            try:
                return self._worker.process_file(job, overwrite=self._overwrite)
            except batch.SetupError as e:
                self._setup_error = str(e) or type(e).__name__
        return batch.FileOutcome(job, "failed", self._setup_error)


@contextmanager
def _session(address: str | None, cpus: int) -> Iterator[bool]:
    """Ray for one run: the running one if this process already called ``ray.init``, else a new connection to
    ``address`` or a local Ray with ``cpus`` CPUs, quiet (no dashboard, no worker logs, errors only), shut down after.

    Yields whether it started a local Ray (then the actors share this machine's cores).
    """
    started = not ray.is_initialized()
    if started:
        if address is not None:
            _check_reachable(address)
        try:
            ray.init(
                address=address,
                num_cpus=cpus if address is None else None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise RayRunError(f"cannot start {where}: {_first_line(e)}") from None
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.print_on_execution_start, context.max_errored_blocks
    data_logger = logging.getLogger("ray.data")
    saved_level = data_logger.level
    context.enable_progress_bars = False  # segkit's own bar shows the outcomes
    context.print_on_execution_start = False
    context.max_errored_blocks = -1  # a batch Ray gave up on is reported as failed files; the run goes on
    data_logger.setLevel(logging.CRITICAL)  # such a batch is reported per file, not as Ray's traceback
    try:
        yield started and address is None
    finally:
        context.enable_progress_bars, context.print_on_execution_start, context.max_errored_blocks = saved
        data_logger.setLevel(saved_level)
        if started:
            ray.shutdown()


def _check_reachable(address: str) -> None:
    """RayRunError at once when nothing listens at a ``host:port`` or ``ray://host:port`` address (Ray itself would
    retry for minutes); ``"auto"`` and other forms are left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not is_index(port):
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise RayRunError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def run_files(
    task: batch.Task,
    jobs: Iterable[batch.FileJob],
    *,
    address: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
) -> Iterator[batch.FileOutcome]:
    """Runs every job on Ray actors and yields its outcome as it finishes (completion order).

    Each actor holds one :class:`segkit.batch.Worker` (one segmenter) and writes its files itself, atomically, so
    the outputs equal the local engine's. ``address`` None starts a local Ray with ``workers`` CPUs and as many
    actors (default: one per core) unless this process already runs Ray; an address (``"auto"``,
    ``"ray://head:10001"``) joins that cluster, whose nodes must all see the job's paths, with ``workers`` actors
    (default: grown from one to one per CPU of the cluster). The files of a batch whose actor died three times are
    run again one per call, and a file that still kills its worker is reported failed; the run goes on. A
    :class:`segkit.batch.SetupError` (the model cannot be loaded; :class:`RayRunError`: no Ray at the address, the
    cluster lost) stops it. Stopping early (Ctrl-C, closing the iterator) removes the partial files of the jobs not
    finished. The jobs are listed up front (Ray Data needs the whole list): about 200 bytes of driver memory each.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    planned = list(jobs)
    if not planned:
        return
    cpus = workers if workers is not None else batch.default_workers()
    finished: set[int] = set()
    try:
        with _session(address, cpus) as local:
            actors = cpus if local else workers
            threads = task.num_threads
            if threads is None:  # local: share the cores as the local pool does; a cluster: one thread per actor CPU
                threads = max(1, batch.default_workers() // cpus) if local else 1
            yield from _run(replace(task, num_threads=threads), planned, actors, overwrite, finished)
    finally:
        if len(finished) < len(planned):
            for index, job in enumerate(planned):
                if index not in finished:
                    for target in job.targets:
                        batch.remove_partials(target)


def _run(
    task: batch.Task, jobs: list[batch.FileJob], actors: int | None, overwrite: bool, finished: set[int]
) -> Iterator[batch.FileOutcome]:
    """The jobs mapped over ``actors`` actors (None: Ray grows the pool to what the cluster's CPUs allow), outcomes
    rebuilt from the rows that come back. The files of a batch Ray gave up on (its actor died three times) get a
    second pass, one file per call, so only the file that kills its worker is reported failed."""
    reach = actors or _cluster_cpus()  # the actors there are or may be
    fewest, most = _FILES_PER_BATCH
    per_batch = max(fewest, min(most, len(jobs) // (reach * _CALLS_PER_ACTOR)))
    yield from _pass(task, jobs, list(range(len(jobs))), actors, overwrite, finished, per_batch)
    lost = [index for index in range(len(jobs)) if index not in finished]
    if lost:
        yield from _pass(task, jobs, lost, min(reach, len(lost)), overwrite, finished, 1)
    for index in range(len(jobs)):
        if index not in finished:
            for target in jobs[index].targets:
                batch.remove_partials(target)
            finished.add(index)
            yield batch.FileOutcome(jobs[index], "failed", _LOST)


_LOST = f"no result from Ray: the file's call failed {_BATCH_RETRIES + 1} times: its worker process died"


def _pass(
    task: batch.Task,
    jobs: list[batch.FileJob],
    indices: list[int],
    actors: int | None,
    overwrite: bool,
    finished: set[int],
    per_batch: int,
) -> Iterator[batch.FileOutcome]:
    """One dataset of the jobs at ``indices``, ``per_batch`` files per actor call; adds the indices done to
    ``finished``."""
    # One call at a time per actor in the one-file pass: a crash then fails no other file's call queued there.
    in_flight = 1 if per_batch == 1 else None
    if actors is None:
        compute = ray.data.ActorPoolStrategy(min_size=1, max_tasks_in_flight_per_actor=in_flight)
    else:
        compute = ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=in_flight)
    items = [{"index": i, "source": str(jobs[i].source), "targets": [str(t) for t in jobs[i].targets]} for i in indices]
    with warnings.catch_warnings():
        # Ray 2.60 deprecates extra remote args (gone in 2.64, hence the extra's pin) but has no other way to bound
        # the retries: its default, retrying forever, would never end a run with a file that kills its worker.
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated", DeprecationWarning)
        dataset = ray.data.from_items(items).map_batches(
            _FileActor,
            fn_constructor_kwargs={"task": task, "overwrite": overwrite},
            compute=compute,
            num_cpus=1,
            batch_size=per_batch,
            max_task_retries=_BATCH_RETRIES,
        )
    try:
        for row in dataset.iter_rows():
            index = int(row["index"])
            if row["fatal"]:
                raise batch.SetupError(str(row["error"]))
            finished.add(index)
            yield batch.FileOutcome(jobs[index], _status(row["status"]), str(row["error"]), float(row["seconds"]))
    except ray.exceptions.RayError as e:
        raise RayRunError(f"the Ray job failed: {_first_line(e)}") from None


def _cluster_cpus() -> int:
    """The CPUs of the Ray cluster now (at least 1): how many actors a growing pool may reach."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]  # unannotated in Ray


def _first_line(error: BaseException) -> str:
    """The first line of an exception's message (Ray's carry whole tracebacks), or its type."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _status(value: object) -> Literal["done", "skipped", "failed"]:
    """An outcome row's status, checked."""
    statuses: tuple[Literal["done", "skipped", "failed"], ...] = ("done", "skipped", "failed")
    for status in statuses:
        if value == status:
            return status
    raise RuntimeError(f"unexpected outcome status {value!r} from a Ray actor")
