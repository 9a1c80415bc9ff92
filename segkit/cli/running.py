"""The model-running commands: build the task, plan the jobs, run them on an engine, report progress and a summary."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Protocol, TextIO

from segkit import batch
from segkit.batch import FileJob, FileOutcome, Task
from segkit.cli.parsing import RunOptions, UsageError
from segkit.cli.planning import STDIO, Destination, Naming, PlanFailure, Planned, destination, format_suffix, plan

RAY_HINT = 'the ray engine needs Ray: pip install "segkit[ray]"'
_LISTED_FAILURES = 20


class MissingExtra(Exception):
    """An optional dependency is missing (exit status 3); the message says what to install."""


class ModelProblem(Exception):
    """The model is unavailable or unreadable (exit status 3); the message is one line."""


class Bar(Protocol):
    """The part of a tqdm bar the runs use."""

    total: float | None

    def update(self, n: int = 1) -> object: ...
    def close(self) -> None: ...


class _NoBar:
    """Stands in for a progress bar when it is off or tqdm is missing."""

    total: float | None = None

    def update(self, n: int = 1) -> object:
        return None

    def close(self) -> None:
        return None


def say(line: str) -> None:
    """One line on stderr that does not break a progress bar being drawn there."""
    try:
        from tqdm import tqdm
    except ImportError:
        print(line, file=sys.stderr)
        return
    tqdm.write(line, file=sys.stderr)


def progress_bar(unit: str, enabled: bool, total: int | None = None, desc: str | None = None) -> Bar:
    """A tqdm bar on stderr (with the rate per second), or a no-op when disabled, when stderr is not a terminal (a
    log file would collect the bar's redraws) or when tqdm is not installed."""
    if not enabled or sys.stderr is None or not sys.stderr.isatty():
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    bar: Bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)
    return bar


# --- building the task ----------------------------------------------------------------------------------------------


def resolve_model(name_or_path: str) -> Path:
    """The model file for ``--model``: UsageError for an unknown name, ModelProblem when it cannot be had."""
    from segkit import models

    try:
        return models.resolve(name_or_path)
    except models.ModelUnavailableError as e:
        raise ModelProblem(str(e)) from None
    except ValueError as e:
        candidate = Path(name_or_path)
        if candidate.exists():  # neither a file nor a registry name, yet there: say what it is
            kind = "a folder" if candidate.is_dir() else "not a regular file"
            raise UsageError(
                f"--model {name_or_path} is {kind}: give a .tflite file or a name from 'segkit models'"
            ) from None
        raise UsageError(str(e)) from None


def build_task(options: RunOptions, model: Path) -> Task:
    """The batch task for the options, with categories, mask files and colors checked against the model."""
    from segkit import models

    try:
        masks, categories = batch.choose_outputs(model, options.masks, options.categories)
    except batch.UnknownCategoryError as e:
        raise UsageError(str(e)) from None
    except (ValueError, OSError) as e:
        raise ModelProblem(f"cannot read model {model}: {e}") from None
    if options.background is not None and Path(options.background).is_file():
        _check_background(options.background)
    try:
        return Task(
            model=str(model),
            command=options.command,
            masks=masks,
            categories=categories,
            refine=options.refine,
            refine_radius=options.refine_radius,
            smooth=options.smooth,
            strength=options.strength,
            background=options.background,
            color=options.color,
            alpha=options.alpha,
            legend=options.legend,
            num_threads=options.threads,
            gpu=options.gpu,
            gpu_fallback=options.gpu_fallback,
            normalization=options.normalization or models.normalization(options.model),
            preset=options.preset,
            crf=None if options.crf is None else int(options.crf),
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def _check_background(path: str) -> None:
    """UsageError now for a ``--background`` file that is not an image, rather than a failure of every input."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path):  # the header only: the workers decode it
            pass
    except (OSError, ValueError, SyntaxError) as e:
        raise UsageError(f"--background {path} is not an image: {batch.describe_error(e)}") from None


def run_command(options: RunOptions) -> int:
    """Runs a model-running command end to end; returns the exit status."""
    dest = destination(options.out)
    stdin = options.inputs == (STDIO,)
    if STDIO in options.inputs and not stdin:
        raise UsageError("- (standard input) must be the only input")
    inputs = list(dict.fromkeys(Path(p) for p in options.inputs))  # the same path twice is one input
    missing = [p for p in inputs if not stdin and not p.exists()]
    if missing:
        raise UsageError(f"input not found: {missing[0]}")
    task = build_task(options, resolve_model(options.model))
    naming = Naming(task.command, task.masks, format_suffix(options.format))
    naming.check_format()
    if stdin or dest.kind == "stdout":
        return run_stream(task, None if stdin else inputs, dest, naming, options)
    return run_jobs(task, plan(inputs, dest, naming), options)


# --- one image through pipes ----------------------------------------------------------------------------------------


def run_stream(task: Task, sources: list[Path] | None, dest: Destination, naming: Naming, options: RunOptions) -> int:
    """One image from standard input (``sources`` None) or a file, to standard output or a file
    (``cat a.jpg | segkit cutout - -o -``)."""
    if dest.kind == "folder":
        raise UsageError("standard input has no file name: give --out a file or - for standard output")
    if task.outputs != 1:
        raise UsageError(f"--masks writes {task.outputs} files per image: a pipe carries one; use --masks alpha")
    source = None if sources is None else _single_source(sources, dest, naming)
    if source is None and dest.path is not None:
        naming.check_file(Path("stdin.png"), dest.path)
    _check_pipes(reads=source is None, writes=dest.path is None)
    if dest.path is not None and not options.overwrite and dest.path.exists():
        Summary(skipped=1).report(options.quiet)  # as a file input's existing output is skipped
        return 0
    data = sys.stdin.buffer.read() if source is None else source.read_bytes()
    suffix = dest.path.suffix if dest.path is not None else naming.format or _stream_suffix(task, data)
    worker = batch.Worker(task)
    try:
        (output,) = worker.process_array(worker.read(data if source is None else source))
        encoded = batch.encode_image(output, batch.image_format(suffix), jpeg_quality=task.jpeg_quality)
    except batch.SetupError:
        raise
    except Exception as e:  # one line and exit status 1, as for a file of a folder run
        print(f"segkit: error: {batch.describe_error(e)}", file=sys.stderr)
        return 1
    finally:
        worker.close()
    if dest.path is None:
        return _to_stdout(encoded)
    try:
        batch.write_bytes(dest.path, encoded)
    except OSError as e:
        print(f"segkit: error: {batch.describe_error(e)}", file=sys.stderr)
        return 1
    return 0


def _single_source(sources: list[Path], dest: Destination, naming: Naming) -> Path:
    """The one input of a run to standard output, after the single-file checks (UsageError for several)."""
    (job,) = plan(sources, dest, naming)
    if isinstance(job, PlanFailure):
        raise UsageError(f"{job.path}: {job.error}")
    return job.source


def _check_pipes(*, reads: bool, writes: bool) -> None:
    """UsageError when the standard input to read or the standard output to write is a terminal or closed."""
    if reads:
        _check_pipe(sys.stdin, "- reads image bytes from standard input", "pipe or redirect a file into it")
    if writes:
        _check_pipe(sys.stdout, "--out - writes image bytes", "redirect standard output to a file or a pipe")


def _check_pipe(stream: TextIO | None, what: str, fix: str) -> None:
    """UsageError for a standard stream that is closed (Python's None: ``<&-`` / ``>&-``) or a terminal."""
    if stream is None:
        raise UsageError(f"{what}, but that stream is closed: {fix}")
    if stream.isatty():
        raise UsageError(f"{what}: {fix}")


def _to_stdout(encoded: bytes) -> int:
    """Writes an encoded image to standard output; a reader that went away (``| head``) is exit status 1.

    ``os.write`` in a loop rather than the buffered stream, whose ``write`` reports a reader that leaves mid-image
    only as a short count (and the rest of the image is dropped without an error).
    """
    remaining = memoryview(encoded)
    try:
        sys.stdout.flush()  # anything printed before goes first
        while remaining:
            remaining = remaining[os.write(sys.stdout.fileno(), remaining) :]
    except BrokenPipeError:
        stdout_gone()
        return 1
    return 0


def stdout_gone() -> None:
    """Says that the reader of standard output went away, and points standard output at the null device so that
    Python's own flush at exit cannot raise a second error."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    print("segkit: error: standard output was closed before everything was written", file=sys.stderr)


def _stream_suffix(task: Task, data: bytes) -> str:
    """The output format of a pipe without ``--format``: PNG for masks and cutouts, else the input's own format."""
    from PIL import Image as PILImage

    if task.command in ("segment", "cutout"):
        return ".png"
    with contextlib.suppress(OSError, ValueError), PILImage.open(io.BytesIO(data)) as im:
        known = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tiff", "GIF": ".gif"}
        return known.get(im.format or "", ".png")
    return ".png"


# --- many files -----------------------------------------------------------------------------------------------------


@dataclass
class Summary:
    """Counts of a run and the first failures, for the summary line and the list at the end."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def fail(self, path: Path, error: str) -> None:
        """Counts and prints one failure (one line, naming the file)."""
        self.failed += 1
        if len(self.failures) < _LISTED_FAILURES:
            self.failures.append(str(path))
        say(f"segkit: error: {error if _names(error, path) else f'{path}: {error}'}")

    def add(self, outcome: FileOutcome) -> None:
        """Counts one outcome."""
        if outcome.status == "failed":
            self.fail(outcome.job.source, outcome.error)
        elif outcome.status == "skipped":
            self.skipped += 1
        else:
            self.done += 1

    def report(self, quiet: bool) -> None:
        """The summary line (unless quiet) and the list of failed inputs (always)."""
        seconds = time.perf_counter() - self.started
        if not quiet:
            rate = self.done / seconds if seconds > 0 else 0.0
            line = f"segkit: {self.done} done, {self.skipped} skipped, {self.failed} failed in {seconds:.1f} s"
            hint = " (outputs exist; --overwrite replaces them)" if self.skipped else ""
            print(f"{line} ({rate:.1f} images/s){hint}", file=sys.stderr)
        if self.failed:
            more = f" and {self.failed - len(self.failures)} more" if self.failed > len(self.failures) else ""
            print(f"segkit: failed: {', '.join(self.failures)}{more}", file=sys.stderr)


def _names(error: str, path: Path) -> bool:
    """Whether a failure's message is already about ``path`` (``cannot read image PATH: ...``), so that it needs
    no ``PATH:`` in front; a message that merely mentions it (``... the same output as PATH``) does not count."""
    return re.search(rf"(^|\s){re.escape(str(path))}:", error) is not None


def _jobs_only(planned: Iterable[Planned], summary: Summary) -> Iterator[FileJob]:
    """The jobs of a plan; planning failures (unreadable folders, clashes) are counted as they come."""
    for item in planned:
        if isinstance(item, PlanFailure):
            summary.fail(item.path, item.error)
        else:
            yield item


def run_jobs(task: Task, planned: Iterator[Planned], options: RunOptions) -> int:
    """Runs every planned job on the chosen engine with a progress bar; exit status 1 if any input failed."""
    summary = Summary()
    jobs = _jobs_only(planned, summary)
    head = list(islice(jobs, 2))
    if not head and not summary.failed:
        raise UsageError("no image or video files found in the inputs")
    single = len(head) == 1
    workers = 1 if single else options.workers
    bar = progress_bar("image", not options.quiet and not single)
    video = single and _is_video(head[0])
    frames = progress_bar("frame", not options.quiet and video, desc=head[0].source.name if video else None)
    outcomes = _engine(task, chain(head, jobs), options, workers, frames)
    try:
        for outcome in outcomes:
            summary.add(outcome)
            bar.update(1)
    finally:
        if isinstance(outcomes, Generator):
            outcomes.close()  # an interrupted run stops its workers and removes partial files now
        bar.close()
        frames.close()
    summary.report(options.quiet or (single and summary.skipped == 0))
    return 1 if summary.failed else 0


def _is_video(job: FileJob) -> bool:
    return job.source.suffix.lower() in batch.VIDEO_SUFFIXES


def _engine(
    task: Task, jobs: Iterator[FileJob], options: RunOptions, workers: int | None, frames: Bar
) -> Iterator[FileOutcome]:
    """The outcomes from the local pool or from Ray (``--engine ray``)."""

    def frame_done(done: int, total: int | None) -> None:
        if total is not None and frames.total != total:  # the header's frame count: the bar shows n/total and an ETA
            frames.total = total
        frames.update(1)

    if options.engine == "local":
        return batch.run_files(
            task, jobs, workers=workers, overwrite=options.overwrite, video_progress=frame_done, dedicated=True
        )
    try:
        from segkit import ray as segkit_ray
    except ImportError:
        raise MissingExtra(RAY_HINT) from None
    return segkit_ray.run_files(task, jobs, address=options.ray_address, workers=workers, overwrite=options.overwrite)
