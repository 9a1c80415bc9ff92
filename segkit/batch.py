"""The batch engine: one segmenter + effect mapped over many files or arrays, on one process or all cores.

A :class:`Task` says what to compute (model, command, options); a :class:`FileJob` says which file goes in and
which files come out; a :class:`Worker` holds ONE segmenter for a task and turns jobs into :class:`FileOutcome`s.
:func:`run_files` runs jobs on a pool of worker processes (only paths cross process boundaries: each worker
decodes, segments, applies the effect and encodes its own files); :func:`map_images` is the library form that
yields the outputs for paths or arrays in order (workers are spawned processes: with ``workers`` > 1, a script
needs the usual ``if __name__ == "__main__":`` guard)::

    from segkit import batch, models

    task = batch.Task(model=str(models.path("selfie_segmenter")), command="blur", strength=20.0)
    jobs = (batch.FileJob(p, (Path("out") / p.name,)) for p in Path("photos").glob("*.jpg"))
    for outcome in batch.run_files(task, jobs, workers=4, overwrite=False):
        print(outcome.job.source, outcome.status, outcome.error)

    for (blurred,) in batch.map_images(task, [rgb1, rgb2]):   # numpy uint8 (H, W, 3) in, outputs out, in order
        ...

Every file is written to a temporary file in its target folder and renamed into place when complete, so an
interrupted run never leaves a partial output and a rerun skips what is finished (unless ``overwrite``).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import io
import itertools
import multiprocessing
import os
import pickle
import platform
import re
import secrets
import signal
import stat
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias, get_args

import numpy as np

from segkit._common import available_cores, temporary_prefix
from segkit.video import VideoOptions

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from PIL import Image as PILImage

    from segkit import ImageSegmenter, ImageSegmenterOptions, ImageSegmenterResult

__all__ = [
    "ALPHA_SUFFIXES",
    "COMMANDS",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Command",
    "FileJob",
    "FileOutcome",
    "MaskOutput",
    "MissingExtraError",
    "SetupError",
    "Task",
    "UnknownCategoryError",
    "VideoProgress",
    "Worker",
    "atomic_write",
    "choose_outputs",
    "decode_image",
    "default_workers",
    "describe_error",
    "encode_image",
    "image_format",
    "load_background",
    "map_images",
    "mask_outputs",
    "model_labels",
    "parse_color",
    "remove_partials",
    "resolve_categories",
    "run_files",
    "temporary_prefix",
    "write_bytes",
]

Command = Literal["segment", "blur", "replace", "cutout", "recolor", "overlay"]
COMMANDS: tuple[Command, ...] = ("segment", "blur", "replace", "cutout", "recolor", "overlay")
Refine = Literal["none", "feather", "guided"]
MaskKind = Literal["category", "confidence", "alpha"]
Status = Literal["done", "skipped", "failed"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm"})
ALPHA_SUFFIXES = frozenset({".png", ".webp", ".tif", ".tiff"})
_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".gif": "GIF",
}
_DEFAULT_STRENGTH = {"blur": 15.0, "recolor": 0.8}
_TEMP_SUFFIX = ".segkit-part"
_IN_FLIGHT_PER_WORKER = 2
_EARLY_DEATHS = 3  # workers dying before any answer this often means they cannot start at all


# --- what to compute ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskOutput:
    """One mask file ``segment`` writes: the category mask, one class's confidence, or the subject's 8-bit alpha.

    ``name`` is the file-name part that tells the outputs apart (``photo.<name>.png``).
    """

    kind: MaskKind
    index: int = -1
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.kind if self.kind != "confidence" else f"confidence_{self.index:02d}")


@dataclass(frozen=True)
class Task:
    """Everything a worker needs to build its segmenter and apply the command; picklable, so it crosses processes.

    ``model`` is a .tflite path (resolve registry names with ``segkit.models.path`` before building the task).
    ``categories`` are the subject's class indices (:func:`resolve_categories` turns labels into them); None means
    the model's own subject (the person, the hair, everything but background). ``masks`` lists the files
    ``segment`` writes, in the order of :attr:`FileJob.targets`. ``strength`` None means the command's default
    (blur sigma 15 px, recolor 0.8). ``background`` is a color or an image file; ``smooth`` is the weight of the
    newest mask for videos (None: off). ``num_threads``, ``gpu``, ``gpu_fallback`` and ``normalization`` are the
    segmenter's options. ``preset`` and ``crf`` are a video's encoder settings (None: ``segkit.video.VideoOptions``'
    defaults, x264 superfast at CRF 21).
    """

    model: str
    command: Command = "segment"
    masks: tuple[MaskOutput, ...] = (MaskOutput("alpha"),)
    categories: tuple[int, ...] | None = None
    refine: Refine = "none"
    refine_radius: int = 4
    smooth: float | None = None
    strength: float | None = None
    background: str | None = None
    color: str | None = None
    alpha: float = 0.5
    legend: bool = True
    num_threads: int | None = None
    gpu: bool = False
    gpu_fallback: bool = False
    normalization: tuple[float, float] | None = None
    jpeg_quality: int = 95
    preset: str | None = None
    crf: int | None = None

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise ValueError(f"command must be one of {', '.join(COMMANDS)}, got {self.command!r}")
        for name in ("background", "color"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str (a color such as '#00b140' or an image file), got {value!r}")
        if self.refine not in get_args(Refine):
            raise ValueError(f"refine must be one of {', '.join(get_args(Refine))}, got {self.refine!r}")
        radius = self.refine_radius
        if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= 256:
            raise ValueError(f"refine_radius must be an int in 0..256 (pixels), got {radius!r}")
        if self.smooth is not None and not 0 < self.smooth <= 1:
            raise ValueError(f"smooth must be None or a weight in (0, 1], got {self.smooth!r}")
        if self.command == "segment" and not self.masks:
            raise ValueError("a segment task needs at least one mask output")
        if self.command == "replace" and not self.background:
            raise ValueError("a replace task needs a background (a color or an image file)")
        if self.command == "recolor" and not self.color:
            raise ValueError("a recolor task needs a color")
        if self.color is not None:
            parse_color(self.color, "color")
        self.video_options()  # ValueError for a bad preset or crf now, not on each video
        if self.background is not None and not Path(self.background).is_file():
            try:
                parse_color(self.background, "background")
            except ValueError as e:
                raise ValueError(f"{e} (or an existing image file)") from None

    def video_options(self) -> VideoOptions:
        """The encoder settings for this task's videos."""
        return VideoOptions(
            preset=VideoOptions.preset if self.preset is None else self.preset,
            crf=VideoOptions.crf if self.crf is None else self.crf,
        )

    @property
    def outputs(self) -> int:
        """How many files one input image produces (one per mask for ``segment``, else one)."""
        return len(self.masks) if self.command == "segment" else 1


@dataclass(frozen=True)
class FileJob:
    """One input file and every file it writes (``segment``: one per ``Task.masks``, in order; effects: one).

    Paths may be given as ``str`` or any path-like, and one target alone; they are kept as ``Path`` objects. No
    targets: the caller takes the output itself (``Worker.process_array``; the command line's standard output).
    """

    source: Path
    targets: tuple[Path, ...]

    def __post_init__(self) -> None:
        targets: object = self.targets
        if isinstance(targets, (str, os.PathLike)):
            targets = (targets,)
        if not isinstance(targets, (tuple, list)):
            raise TypeError(f"FileJob targets must be a tuple of paths, got {self.targets!r}")
        object.__setattr__(self, "source", Path(self.source))
        object.__setattr__(self, "targets", tuple(Path(t) for t in targets))


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one job: ``done``, ``skipped`` (every output existed) or ``failed`` (``error`` says why)."""

    job: FileJob
    status: Status
    error: str = ""
    seconds: float = 0.0


class SetupError(RuntimeError):
    """The worker could not build its segmenter or effect (every job would fail the same way): stop the run."""


class MissingExtraError(SetupError):
    """An optional dependency a job needs is not installed (e.g. PyAV for videos); the message says what to install."""


# --- planning helpers shared by the CLI and other engines -------------------------------------------------------------


def model_labels(model: str | os.PathLike[str]) -> tuple[str, ...]:
    """The labels of a model's output channels, from its metadata; the channel numbers when it has none.

    Reads the file once, without opening an interpreter (planning runs in the parent process).
    """
    from segkit import metadata

    info = metadata.read_model_info(Path(model).read_bytes())
    if info.labels:
        return tuple(info.labels)
    channels = info.outputs[0].shape[-1] if info.outputs and info.outputs[0].shape else 1
    return tuple(str(i) for i in range(channels))


class UnknownCategoryError(ValueError):
    """A category that is not a class of the model; the message lists the model's labels."""


def resolve_categories(spec: Sequence[str], labels: Sequence[str]) -> tuple[int, ...]:
    """Class indices from label names (any case) or decimal indices; UnknownCategoryError naming the bad item."""
    lowered = [label.lower() for label in labels]
    indices: list[int] = []
    for item in (s.strip() for s in spec):
        if re.fullmatch(r"[0-9]{1,3}", item) and int(item) < len(labels):
            index = int(item)
        elif item.lower() in lowered:
            index = lowered.index(item.lower())
        else:
            known = ", ".join(labels)
            raise UnknownCategoryError(f"category {item!r} is not a class of this model; its labels: {known}")
        if index not in indices:
            indices.append(index)
    if not indices:
        raise UnknownCategoryError(f"no category given; this model's labels: {', '.join(labels)}")
    return tuple(indices)


def mask_outputs(kind: Literal["category", "confidence", "both", "alpha"], labels: Sequence[str],
                 categories: Sequence[int] | None = None) -> tuple[MaskOutput, ...]:  # fmt: skip
    """The mask files ``segment --masks KIND`` writes: confidence masks for ``categories`` (default: every class)."""
    chosen = range(len(labels)) if categories is None else categories
    confidence = tuple(MaskOutput("confidence", i, f"confidence_{i:02d}_{_safe(labels[i])}") for i in chosen)
    if kind == "alpha":
        return (MaskOutput("alpha"),)
    if kind == "category":
        return (MaskOutput("category"),)
    if kind == "confidence":
        return confidence
    return (MaskOutput("category"), *confidence)


def choose_outputs(
    model: str | os.PathLike[str],
    masks: Literal["category", "confidence", "both", "alpha"] = "alpha",
    categories: Sequence[str | int] | None = None,
) -> tuple[tuple[MaskOutput, ...], tuple[int, ...] | None]:
    """``(Task.masks, Task.categories)`` for a user's choices, checked against the model's labels.

    ``categories`` (label names or indices) is the subject for ``alpha`` and the effects, and picks the classes
    written for ``confidence``/``both``. UnknownCategoryError names a category that is not a class of the model;
    ValueError / OSError when the model file cannot be read.
    """
    labels = model_labels(model)
    chosen = None if categories is None else resolve_categories([str(c) for c in categories], labels)
    return mask_outputs(masks, labels, chosen if masks in ("confidence", "both") else None), chosen


def _safe(label: str) -> str:
    """A label made safe for a file name."""
    return re.sub(r"[^\w.-]+", "_", label).strip("_") or "class"


def image_format(name: str) -> str:
    """Pillow's format name for a file suffix or a ``--format`` value (``png``, ``.jpg``, ``webp``, ...)."""
    key = name.lower() if name.startswith(".") else "." + name.lower()
    try:
        return _FORMATS[key]
    except KeyError:
        known = ", ".join(sorted({s.lstrip(".") for s in _FORMATS}))
        raise ValueError(f"unknown image format {name!r}; use one of {known}") from None


# --- reading and writing ------------------------------------------------------------------------------------------


def decode_image(source: Path | bytes, *, alpha: bool = False) -> np.ndarray:
    """An image file (or its bytes) as a new, writable, C-contiguous uint8 RGB array with the EXIF rotation applied.

    The size is checked against segkit's pixel budget (``segkit.image.max_pixels``) before anything is decoded;
    16-bit gray is rounded to 8 bits; float and Lab pixels, which have no faithful 8-bit RGB form, are refused
    rather than turned black. ValueError naming the file for all of these and for anything Pillow cannot decode
    (an empty input says so). ``alpha``: an image with transparency (an alpha band, or a palette or color key
    marked transparent) comes back as uint8 RGBA instead, so that ``cutout`` can keep it.
    """
    from PIL import Image as PILImage
    from PIL import ImageOps

    from segkit.image import check_pixels

    name = "standard input" if isinstance(source, bytes) else str(source)
    try:
        with PILImage.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            check_pixels(im.width, im.height, "the image")
            ImageOps.exif_transpose(im, in_place=True)  # in place: no copy of an image that needs no turn
            if alpha and _has_transparency(im):
                return np.array(im if im.mode == "RGBA" else im.convert("RGBA"))
            return rgb8(im)
    except (OSError, ValueError, SyntaxError, NotImplementedError, PILImage.DecompressionBombError) as e:
        reason = "it is empty" if _is_empty(source) else str(e) or type(e).__name__
        raise ValueError(f"cannot read image {name}: {reason}") from None


def _is_empty(source: Path | bytes) -> bool:
    """Whether the input is empty bytes or an empty regular file (clearer than Pillow's 'cannot identify')."""
    if isinstance(source, bytes):
        return not source
    try:
        return source.is_file() and source.stat().st_size == 0
    except OSError:
        return False


def _has_transparency(image: PILImage.Image) -> bool:
    """Whether an 8-bit image carries transparency: an alpha band, or a palette or color key marked transparent."""
    if image.mode.startswith(("I", "F")) or image.mode == "LAB":
        return False
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def rgb8(image: PILImage.Image) -> np.ndarray:
    """A decoded Pillow image as a new, writable uint8 RGB array (numpy's view of Pillow's bytes would be read-only),
    never clipping what 8 bits cannot hold: 16-bit gray is rounded to 8 bits; ValueError (its message starting
    "its ...") for float, Lab and integer pixels beyond 16 bits."""
    if image.mode in ("F", "LAB"):
        raise ValueError(f"its {image.mode} pixels (float or Lab) have no faithful 8-bit RGB form; convert it first")
    if image.mode.startswith("I"):
        values = np.asarray(image).astype(np.int64)
        if values.size and (int(values.min()) < 0 or int(values.max()) > 0xFFFF):
            low, high = int(values.min()), int(values.max())
            raise ValueError(f"its {image.mode} gray values {low}..{high} lie outside 0..65535 (16 bits)")
        gray = ((values + 128) // 257).astype(np.uint8)  # 16 bits rounded to 8
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    return np.array(image if image.mode == "RGB" else image.convert("RGB"))


def encode_image(array: np.ndarray, fmt: str, *, jpeg_quality: int = 95) -> bytes:
    """The array encoded as ``fmt`` (a Pillow format name from :func:`image_format`); masks stay lossless in WEBP."""
    from PIL import Image as PILImage

    image = PILImage.fromarray(np.ascontiguousarray(array))
    buffer = io.BytesIO()
    if fmt == "JPEG":
        (image if image.mode == "RGB" else image.convert("RGB")).save(buffer, "JPEG", quality=jpeg_quality)
    elif fmt == "WEBP" and image.mode == "L":
        image.save(buffer, "WEBP", lossless=True)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


@contextlib.contextmanager
def atomic_write(target: Path) -> Iterator[Path]:
    """A temporary path in ``target``'s folder, renamed onto ``target`` only if the block finishes.

    On any exception (or KeyboardInterrupt / SystemExit) the temporary file is removed and ``target`` is untouched.
    A new file gets the mode ``open()`` gives (the umask applies); a replaced file keeps its mode. An OSError
    about the folder (a file in its place, no permission) names the folder, not the hidden temporary file.
    """
    _make_folder(target.parent)
    temp = _new_temporary(target)
    try:
        yield temp
        with contextlib.suppress(OSError):
            os.chmod(temp, stat.S_IMODE(target.stat().st_mode))
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _make_folder(folder: Path) -> None:
    """Creates ``folder`` and its parents; an OSError that says what is in the way (a file, no permission)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # exist_ok covers folders only: this is a file (or a link to one)
        raise NotADirectoryError(f"cannot write into {folder}: it is a file, not a folder") from None
    except OSError as e:
        raise type(e)(f"cannot create the folder {folder}: {e.strerror or e}") from None


def _new_temporary(target: Path) -> Path:
    """A new empty hidden file beside ``target`` (``<temporary_prefix>.<random>.segkit-part``), created exclusively."""
    while True:
        temp = target.with_name(f"{temporary_prefix(target)}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        except OSError as e:
            raise type(e)(f"cannot write into {target.parent}: {e.strerror or e}") from None
        return temp


def write_bytes(target: Path, data: bytes) -> None:
    """Writes ``data`` to ``target`` atomically (see :func:`atomic_write`)."""
    with atomic_write(target) as temp:
        temp.write_bytes(data)


def remove_partials(target: Path) -> None:
    """Removes temporary files left for ``target`` after its writer was killed (:func:`atomic_write`'s, and
    ``segkit.video``'s ``<temporary_prefix>.*.partial<suffix>``)."""
    folder, prefix = glob.escape(str(target.parent)), temporary_prefix(target)
    patterns = (f"{prefix}.*{_TEMP_SUFFIX}", f"{prefix}.*.partial{glob.escape(target.suffix)}")
    for leftover in (path for pattern in patterns for path in glob.glob(os.path.join(folder, pattern))):
        with contextlib.suppress(OSError):
            os.unlink(leftover)


# --- one worker: one segmenter ----------------------------------------------------------------------------------------


class Worker:
    """Holds ONE image segmenter for a task (opened on the first image; videos get a VIDEO-mode one each).

    ``process_file`` never raises for a per-file problem (it returns a failed outcome); it raises
    :class:`SetupError` when the segmenter or the effect's inputs cannot be built at all. ``dedicated``: this
    process runs nothing but this worker (a pool worker, a Ray actor, the command line), so process-wide settings
    are tuned for it: the effects' row split takes ``task.num_threads`` threads too (the workers together do not
    oversubscribe the cores), and Pillow and malloc keep freed image memory for the next image.
    """

    def __init__(self, task: Task, *, video_progress: VideoProgress | None = None, dedicated: bool = False) -> None:
        if dedicated:
            _reuse_image_memory()
            _reuse_heap_memory()
            if task.num_threads is not None:
                from segkit import effects

                effects.set_num_threads(task.num_threads)
        self.task = task
        self._video_progress = video_progress
        self._segmenter: ImageSegmenter | None = None
        self._background: np.ndarray | tuple[int, int, int] | None = None

    # -- arrays --

    def process_array(self, rgb: np.ndarray) -> tuple[np.ndarray, ...]:
        """The outputs for one uint8 RGB image (one per ``Task.masks`` for ``segment``, else the effect's image).

        A uint8 RGBA image is segmented on its RGB; ``cutout`` multiplies its alpha into the subject's (hidden
        pixels stay hidden), the other commands ignore it.
        """
        pixels = rgb if rgb.ndim != 3 or rgb.shape[2] != 4 else np.ascontiguousarray(rgb[:, :, :3])
        segmenter = self._image_segmenter()
        return self._render(pixels, segmenter.segment(pixels), segmenter, None, rgb)

    def read(self, source: Path | bytes) -> np.ndarray:
        """An input image decoded for this task (:func:`decode_image`; RGBA with its transparency for ``cutout``)."""
        return decode_image(source, alpha=self.task.command == "cutout")

    def _render(
        self,
        rgb: np.ndarray,
        result: ImageSegmenterResult,
        segmenter: ImageSegmenter,
        smoother: Smoother | None,
        original: np.ndarray | None = None,
    ) -> tuple[np.ndarray, ...]:
        """The command's outputs for one image (or frame) and its segmentation result (``original``: the image with
        its alpha, for ``cutout``)."""
        from segkit import effects

        task = self.task
        if task.command == "segment":
            return tuple(self._mask(result, segmenter, output) for output in task.masks)
        if task.command == "overlay":
            category = _category_view(result)
            names = [d or label for d, label in zip(segmenter.display_names, segmenter.labels, strict=False)]
            return (effects.overlay(rgb, category, alpha=task.alpha, labels=names if task.legend else None),)
        alpha = self._alpha(rgb, result, segmenter, smoother)
        strength = task.strength if task.strength is not None else _DEFAULT_STRENGTH.get(task.command, 0.0)
        if task.command == "blur":
            return (effects.blur_background(rgb, alpha, strength=strength),)
        if task.command == "replace":
            return (effects.replace_background(rgb, alpha, self._replacement()),)
        if task.command == "cutout":
            return (effects.cutout(rgb if original is None else original, alpha),)
        return (effects.recolor(rgb, alpha, self.task.color or "", strength=strength),)

    def _alpha(
        self, rgb: np.ndarray, result: ImageSegmenterResult, segmenter: ImageSegmenter, smoother: Smoother | None
    ) -> np.ndarray:
        """The subject's float alpha (``segkit.effects.subject_mask``), refined and smoothed as the task says."""
        from segkit import effects

        alpha = _subject(result, segmenter, self.task.categories)
        if self.task.refine != "none":
            alpha = effects.refine_mask(alpha, rgb, radius=self.task.refine_radius, method=self.task.refine)
        return smoother(alpha) if smoother is not None else alpha

    def _mask(self, result: ImageSegmenterResult, segmenter: ImageSegmenter, output: MaskOutput) -> np.ndarray:
        """One ``segment`` output as an 8-bit (H, W) image."""
        if output.kind == "category":
            return _category_view(result)
        categories = self.task.categories if output.kind == "alpha" else (output.index,)
        return _to_u8(_subject(result, segmenter, categories))

    def _replacement(self) -> np.ndarray | tuple[int, int, int]:
        """The replace command's background: the image file decoded once, or the color."""
        if self._background is None:
            self._background = load_background(self.task.background or "")
        return self._background

    # -- segmenters --

    def _options(self, video: bool, lanes: int = 1) -> ImageSegmenterOptions:
        """The segmenter options the task asks for (only the masks the command needs: each costs time); a video's
        segmenter is one of ``lanes`` running side by side."""
        from segkit import BaseOptions, ImageSegmenterOptions, RunningMode

        task = self.task
        kinds = {m.kind for m in task.masks} if task.command == "segment" else set()
        base = BaseOptions(
            model_asset_path=task.model,
            delegate=BaseOptions.Delegate.GPU if task.gpu else None,
            gpu_fallback=task.gpu_fallback,
        )
        return ImageSegmenterOptions(
            base_options=base,
            running_mode=RunningMode.VIDEO if video else RunningMode.IMAGE,
            output_confidence_masks=task.command not in ("segment", "overlay") or any(k != "category" for k in kinds),
            output_category_mask=task.command == "overlay" or "category" in kinds,
            num_threads=task.num_threads if task.num_threads is not None or not video else _video_threads(lanes),
            normalization=task.normalization,
        )

    def _create(self, video: bool, lanes: int = 1) -> ImageSegmenter:
        """A new segmenter for the task; SetupError with the model and the reason when it cannot be built."""
        from segkit import ImageSegmenter
        from segkit.runtime.gpu import GpuUnavailableError

        try:
            return ImageSegmenter.create_from_options(self._options(video, lanes))
        except GpuUnavailableError as e:  # its own advice names BaseOptions, which a Task user does not write
            raise SetupError(
                f"cannot load model {self.task.model}: segkit could not start the GPU: {e.reason}. To fix it: {e.fix};"
                " or run on the CPU (leave out --gpu; Task(gpu=False)), or fall back to the CPU with a warning"
                " (--gpu-fallback; Task(gpu_fallback=True))"
            ) from None
        except (ValueError, RuntimeError, OSError, TypeError) as e:
            raise SetupError(f"cannot load model {self.task.model}: {describe_error(e)}") from None

    def _image_segmenter(self) -> ImageSegmenter:
        if self._segmenter is None:
            self._segmenter = self._create(video=False)
        return self._segmenter

    # -- files --

    def process_file(self, job: FileJob, *, overwrite: bool) -> FileOutcome:
        """Decodes, segments, applies the command and writes every missing target (all of them with ``overwrite``).

        A job whose targets all exist is ``skipped``; any per-file exception gives a ``failed`` outcome, and so
        does a target that is a folder or the source file itself (writing it would destroy the input).
        """
        start = time.perf_counter()
        try:
            todo = _targets_to_write(job, overwrite)
            if not todo:
                return FileOutcome(job, "skipped")
            if job.source.suffix.lower() in VIDEO_SUFFIXES:
                self._process_video(job)
            else:
                self._process_image(job, todo)
        except SetupError:
            raise
        except ImportError as e:  # segkit.video without PyAV: every video would fail the same way
            raise MissingExtraError(str(e)) from None
        except Exception as e:  # every per-file failure is reported, and the run goes on with the next file
            return FileOutcome(job, "failed", describe_error(e), time.perf_counter() - start)
        return FileOutcome(job, "done", "", time.perf_counter() - start)

    def _process_image(self, job: FileJob, todo: Sequence[int]) -> None:
        if len(job.targets) != self.task.outputs:
            raise ValueError(f"the job has {len(job.targets)} targets but the task writes {self.task.outputs} files")
        outputs = self.process_array(self.read(job.source))
        for i in todo:
            target = job.targets[i]
            data = encode_image(outputs[i], image_format(target.suffix or ".png"), jpeg_quality=self.task.jpeg_quality)
            write_bytes(target, data)

    def _process_video(self, job: FileJob) -> None:
        """Transcodes a video through a fresh VIDEO-mode segmenter (segkit.video writes the target atomically)."""
        from segkit import effects

        try:
            from segkit import video
        except ImportError as e:
            raise MissingExtraError(str(e)) from None

        if len(job.targets) != 1:
            raise ValueError("a video is written to one file: give segment a single mask (--masks alpha or category)")
        smoother = effects.TemporalSmoother(weight=self.task.smooth) if self.task.smooth is not None else None
        with contextlib.ExitStack() as stack:
            lanes = _video_lanes(self.task)
            segmenters = [stack.enter_context(self._create(video=True, lanes=lanes)) for _ in range(lanes)]

            def finish(frame: np.ndarray, result: ImageSegmenterResult) -> np.ndarray:
                return _as_rgb(self._render(frame, result, segmenters[0], smoother)[0])

            # Segmentation in helper threads (a lane each: the CLI's segmenters keep no state between frames), the
            # effect here: frame n's effect overlaps the next frames' inference. The pipeline's threads keep the
            # cores busy, so the effect runs on this one alone.
            with effects.thread_limit(1):
                video.transcode(
                    job.source,
                    job.targets[0],
                    [segmenter.segment_for_video for segmenter in segmenters],
                    finish=finish,
                    progress=self._video_progress,
                    options=self.task.video_options(),
                )

    def close(self) -> None:
        """Frees the segmenter (the worker can be used again: it reopens on the next image)."""
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None


def _targets_to_write(job: FileJob, overwrite: bool) -> list[int]:
    """The indexes of ``job``'s targets to write: the missing ones, or every one with ``overwrite``.

    ValueError for a target that is a folder (it would otherwise count as an existing output and be skipped) or
    the source file itself (reached through ``--out``, a link or a hard link: it would replace its own input).
    """
    todo: list[int] = []
    source: tuple[int, int] | None = None
    for i, target in enumerate(job.targets):
        try:
            found = target.stat()
        except OSError:  # missing (or unreachable, which the write then reports)
            todo.append(i)
            continue
        if stat.S_ISDIR(found.st_mode):
            raise ValueError(f"cannot write {target}: a folder is in its place")
        if source is None:
            with contextlib.suppress(OSError):
                own = job.source.stat()
                source = (own.st_dev, own.st_ino)
        if source == (found.st_dev, found.st_ino):
            raise ValueError(f"refusing to write {target}: it is the input file itself")
        if overwrite:
            todo.append(i)
    return todo


def _finished(job: FileJob) -> bool:
    """Whether every target of ``job`` is already written (what a rerun skips); False when it must be reported."""
    try:
        return not _targets_to_write(job, overwrite=False)
    except ValueError:
        return False


Smoother = Callable[[np.ndarray], np.ndarray]
VideoProgress = Callable[[int, "int | None"], None]
"""Called after each video frame with (frames done, frames in the header or None)."""


def _subject(result: ImageSegmenterResult, segmenter: ImageSegmenter, categories: Sequence[int] | None) -> np.ndarray:
    """The subject's float32 (H, W) alpha in [0, 1], by the library's one rule (``effects.subject_mask``)."""
    from segkit import effects

    return effects.subject_mask(
        result, categories=None if categories is None else list(categories), segmenter=segmenter
    )


def _category_view(result: ImageSegmenterResult) -> np.ndarray:
    """MediaPipe's category mask as a (H, W) uint8 array."""
    mask = result.category_mask
    if mask is None:
        raise RuntimeError("the segmenter returned no category mask")
    view = np.asarray(mask.numpy_view())
    return np.ascontiguousarray(view.reshape(view.shape[:2]))


def _to_u8(alpha: np.ndarray) -> np.ndarray:
    """A float alpha in [0, 1] as 8-bit (0..255, rounded)."""
    out: np.ndarray = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """An output image as uint8 RGB for a video frame (gray masks replicated, alpha dropped)."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def load_background(value: str) -> np.ndarray | tuple[int, int, int]:
    """``replace``'s background: an existing image file decoded to RGB, else a color ('#00b140', 'white', 'r,g,b')."""
    if Path(value).is_file():
        try:
            return decode_image(Path(value))
        except ValueError as e:
            raise SetupError(f"the background: {e}") from None
    return parse_color(value, "background")


def parse_color(value: str, name: str) -> tuple[int, int, int]:
    """A color from a Pillow color string or 'r,g,b'; ValueError naming the option otherwise."""
    from segkit import effects

    if re.fullmatch(r"\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*", value):
        return effects.parse_color(tuple(int(v) for v in value.split(",")), name)
    return effects.parse_color(value, name)


def describe_error(error: BaseException) -> str:
    """One line for a failed file: the message, or the exception's type when the message is empty."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, (ValueError, OSError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- the pool -------------------------------------------------------------------------------------------------------


def default_workers() -> int:
    """The number of cores this process may use (CPU affinity counted): one worker each by default."""
    return available_cores()


def _video_lanes(task: Task) -> int:
    """VIDEO-mode segmenters for one video on the CPU, each segmenting every other frame (segkit.video's lanes): 2
    where there are 2 cores, as inference is the slowest stage for the larger models (720p on 2 cores: recolor
    28.2-29.4 -> 30.6-33.5 fps, overlay 39.9-41.6 -> 41.7-44.4, blur unchanged), 1 on a single core. A task with
    its own ``num_threads``, or on the GPU (a second delegate would hold its own device memory), keeps one."""
    return 2 if task.num_threads is None and not task.gpu and default_workers() >= 2 else 1


def _video_threads(lanes: int = 1) -> int:
    """Interpreter threads for each of a video's segmenters: inference runs beside the effect stage (segkit.video's
    stages), so the lanes together take half the cores (on 2 cores, 1 thread: recolor 720p 32-33 -> 35-36 fps
    against 2, measured with one lane)."""
    return max(1, default_workers() // (2 * lanes))


def _threads_per_worker(task: Task, workers: int) -> Task:
    """The task with ``num_threads`` chosen so that the workers together do not oversubscribe the cores."""
    if task.num_threads is not None or workers <= 1:
        return task
    return replace(task, num_threads=max(1, default_workers() // workers))


@dataclass(frozen=True)
class _FileRequest:
    job: FileJob
    overwrite: bool


@dataclass(frozen=True)
class _ArrayRequest:
    image: np.ndarray | Path


_Request: TypeAlias = "_FileRequest | _ArrayRequest"


@dataclass(frozen=True)
class _Failure:
    """A worker's exception, sent back to the parent (``fatal``: the worker cannot go on); ``error`` is the exception
    itself where it survives pickling, so that ``map_images`` raises what one worker would."""

    message: str
    fatal: bool
    error: Exception | None = None


_Answer: TypeAlias = "FileOutcome | tuple[np.ndarray, ...] | _Failure"


def _serve(request: _Request, worker: Worker) -> _Answer:
    """Runs one request in a worker process; exceptions come back as a _Failure."""
    try:
        if isinstance(request, _FileRequest):
            return worker.process_file(request.job, overwrite=request.overwrite)
        image = request.image
        return worker.process_array(worker.read(image) if isinstance(image, Path) else image)
    except SetupError as e:
        return _Failure(str(e), fatal=True)
    except Exception as e:  # the parent re-raises it (map_images) or reports it
        return _Failure(describe_error(e), fatal=False, error=_portable(e))


def _portable(error: Exception) -> Exception | None:
    """``error`` as it will arrive in the parent process (its type and arguments, not its traceback); None when it
    does not pickle or comes back as something else."""
    try:
        copy = pickle.loads(pickle.dumps(error))
    except Exception:  # an exception class taking other arguments, or holding an unpicklable value
        return None
    return copy if type(copy) is type(error) and str(copy) == str(error) else None


_CACHED_IMAGE_BLOCKS = 16


def _reuse_image_memory() -> None:
    """Lets Pillow keep up to 16 freed image blocks for the next image (its documented ``PILLOW_BLOCKS_MAX``, 0 by
    default; a value the user set is kept). Fresh memory page-faults in on every image: at 640x480 that is ~1,000
    faults and ~1 ms of system time per image, a tenth of the whole job."""
    if "PILLOW_BLOCKS_MAX" not in os.environ:
        from PIL import Image as PILImage

        # What Pillow does with the variable at import; its C module is not re-exported in the type stubs.
        PILImage.core.set_blocks_max(_CACHED_IMAGE_BLOCKS)  # type: ignore[attr-defined]


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_HEAP_BLOCK_BYTES = 32 << 20  # glibc's largest mmap threshold on 64-bit systems: a 4K RGBA frame is under it
_HEAP_KEPT_BYTES = 256 << 20


def _reuse_heap_memory() -> bool:
    """Lets glibc's malloc keep freed memory for the next image. By default it maps each block above a threshold
    that starts at 128 KB afresh and unmaps it on free, and trims the heap's top, so every image's buffers
    page-fault in again: ~5,000 faults and ~10 ms of system time per 720p image, half the job (batch's
    ``--workers 1`` measured). Fixing both thresholds (``mallopt``, what ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` set at start-up, which win when given) keeps up to 256 MB for reuse. glibc only;
    True when it was applied."""
    if platform.libc_ver()[0] != "glibc" or {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _HEAP_BLOCK_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _HEAP_KEPT_BYTES))


def _stop(signum: int, frame: object) -> None:
    """SIGTERM in a worker: unwind (removing temporary files) and exit."""
    raise SystemExit(128 + signum)


def _worker_main(task: Task, requests: Connection) -> None:
    """A worker process: builds its Worker once, then answers requests until the parent closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides what stops
    signal.signal(signal.SIGTERM, _stop)
    worker = Worker(task, dedicated=True)
    try:
        while True:
            try:
                request = requests.recv()
            except EOFError:
                return
            if request is None:
                return
            requests.send(_serve(request, worker))
    finally:
        worker.close()


@dataclass
class _Slot:
    """One worker process, its pipe, and the requests it holds (oldest first) with their sequence numbers."""

    process: BaseProcess
    conn: Connection
    held: deque[tuple[int, _Request]] = field(default_factory=deque)
    answered: int = 0


class _Pool:
    """Up to ``workers`` processes fed through pipes, at most ``depth`` requests each; a dead worker is replaced.

    Processes start as requests arrive (two jobs never start sixteen workers); a request goes to an idle worker,
    else to a new one, else to the least loaded.
    """

    def __init__(self, task: Task, workers: int, depth: int) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._task = task
        self._workers = workers
        self._depth = depth
        self._slots: list[_Slot] = []
        self._retry: deque[tuple[int, _Request]] = deque()
        self._early_deaths = 0

    def _start(self) -> _Slot:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(self._task, child), daemon=True)
        process.start()
        child.close()
        return _Slot(process, parent)

    def run(self, requests: Iterator[_Request]) -> Iterator[tuple[int, _Request, _Answer]]:
        """Sends every request (lazily, bounded) and yields (sequence number, request, answer) as answers arrive."""
        numbered = enumerate(requests)
        exhausted = False
        while True:
            exhausted = self._feed(numbered, exhausted)
            busy = [slot for slot in self._slots if slot.held]
            if not busy:
                if exhausted and not self._retry:
                    return
                continue
            ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy])
            for slot in busy:
                yield from self._collect(slot, ready)

    def _feed(self, numbered: Iterator[tuple[int, _Request]], exhausted: bool) -> bool:
        """Hands out requests (retries first) while a worker has room; True once the requests are exhausted."""
        while self._has_room():
            if self._retry:
                item = self._retry.popleft()
            elif exhausted:
                return True
            else:
                try:
                    item = next(numbered)
                except StopIteration:
                    return True
            slot = self._free_slot()
            slot.held.append(item)
            with contextlib.suppress(OSError):  # it just died: its sentinel reports that next
                slot.conn.send(item[1])
        return exhausted

    def _has_room(self) -> bool:
        """Whether a request could be handed out now (to a running worker or a new one)."""
        return len(self._slots) < self._workers or any(len(slot.held) < self._depth for slot in self._slots)

    def _free_slot(self) -> _Slot:
        """An idle worker (a fresh one if it died while idle), else a new one, else the least loaded (``_has_room``)."""
        for slot in self._slots:
            if not slot.held:
                if not slot.process.is_alive():
                    self._replace(slot)  # killed from outside while idle
                return slot
        if len(self._slots) < self._workers:
            self._slots.append(self._start())
            return self._slots[-1]
        return min(self._slots, key=lambda slot: len(slot.held))

    def _collect(self, slot: _Slot, ready: Sequence[object]) -> Iterator[tuple[int, _Request, _Answer]]:
        """Answers from one worker; if it died, its oldest request fails and the rest are retried on a new one."""
        try:
            while slot.held and slot.conn in ready and slot.conn.poll():
                answer = slot.conn.recv()
                number, request = slot.held.popleft()
                slot.answered += 1
                yield number, request, answer
        except (EOFError, OSError):
            pass
        if slot.held and not slot.process.is_alive():
            slot.process.join()
            number, request = slot.held.popleft()
            code = slot.process.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
            self._early_deaths += slot.answered == 0
            if self._early_deaths >= _EARLY_DEATHS:
                raise SetupError(f"worker processes keep dying before their first answer ({how})")
            self._retry.extend(slot.held)
            self._replace(slot)
            yield number, request, _Failure(f"the worker process died ({how})", fatal=False)

    def _replace(self, slot: _Slot) -> None:
        slot.conn.close()
        fresh = self._start()
        slot.process, slot.conn, slot.held = fresh.process, fresh.conn, deque()

    def close(self) -> None:
        """Asks every worker to finish and waits for it."""
        for slot in self._slots:
            with contextlib.suppress(OSError, BrokenPipeError):
                slot.conn.send(None)
        for slot in self._slots:
            slot.process.join(timeout=10)
            if slot.process.is_alive():
                slot.process.terminate()
                slot.process.join()
            slot.conn.close()

    def terminate(self) -> list[_Request]:
        """Stops every worker now (SIGTERM, then SIGKILL); returns the requests they were holding."""
        held = [request for slot in self._slots for _, request in slot.held] + [r for _, r in self._retry]
        for slot in self._slots:
            if slot.process.is_alive():
                slot.process.terminate()
        for slot in self._slots:
            slot.process.join(timeout=5)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()
        return held


@contextlib.contextmanager
def _pool(task: Task, workers: int, depth: int) -> Iterator[_Pool]:
    """A pool that is closed normally, or terminated (partial files removed) when the run is interrupted."""
    pool = _Pool(task, workers, depth)
    finished = False
    try:
        yield pool
        finished = True
    finally:
        if finished:
            pool.close()
        else:
            for request in pool.terminate():
                if isinstance(request, _FileRequest):
                    for target in request.job.targets:
                        remove_partials(target)


# --- the engine -----------------------------------------------------------------------------------------------------


def run_files(
    task: Task,
    jobs: Iterable[FileJob],
    *,
    workers: int | None = None,
    overwrite: bool = False,
    video_progress: VideoProgress | None = None,
    dedicated: bool = False,
) -> Generator[FileOutcome, None, None]:
    """Runs every job and yields its outcome as it finishes (completion order with several workers).

    ``workers`` None means one per core; 1 runs in this process. Jobs are read lazily, at most two per worker in
    flight, so memory stays flat however many there are. Each worker process builds its own segmenter once, with
    ``num_threads`` = cores // workers unless the task sets it. A :class:`SetupError` (the model cannot be loaded)
    stops the run; closing the iterator early, or Ctrl-C, stops the workers and removes partial files.
    ``video_progress`` is called after each video frame when the run is in this process (``workers`` 1).
    ``dedicated``: this process runs nothing else (the command line), so a run in it tunes it as a pool worker's.
    """
    count = default_workers() if workers is None else workers
    if count < 1:
        raise ValueError(f"workers must be >= 1, got {count}")
    if count == 1:
        yield from _run_here(task, jobs, overwrite, video_progress, dedicated)
        return
    pending = iter(jobs)
    for first in pending:  # a rerun's finished jobs come first: skip them before starting any process
        if overwrite or not _finished(first):
            break
        yield FileOutcome(first, "skipped")
    else:
        return
    requests = (_FileRequest(job, overwrite) for job in itertools.chain([first], pending))
    with _pool(_threads_per_worker(task, count), count, _IN_FLIGHT_PER_WORKER) as pool:
        for _, request, answer in pool.run(requests):
            if isinstance(answer, _Failure) and answer.fatal:
                raise SetupError(answer.message)
            if isinstance(answer, _Failure) and isinstance(request, _FileRequest):
                yield FileOutcome(request.job, "failed", answer.message)
            elif isinstance(answer, FileOutcome):
                yield answer


def _run_here(
    task: Task, jobs: Iterable[FileJob], overwrite: bool, video_progress: VideoProgress | None, dedicated: bool
) -> Iterator[FileOutcome]:
    """The single-process engine: one Worker in this process."""
    worker = Worker(task, video_progress=video_progress, dedicated=dedicated)
    try:
        for job in jobs:
            yield worker.process_file(job, overwrite=overwrite)
    finally:
        worker.close()


def map_images(
    task: Task, images: Iterable[np.ndarray | str | os.PathLike[str]], *, workers: int = 1
) -> Generator[tuple[np.ndarray, ...], None, None]:
    """The task's outputs for each image (a uint8 RGB array or an image file path), in input order.

    With ``workers`` > 1 the images are spread over worker processes (arrays are pickled across: pass paths for
    big images); an exception from any image is raised here (the workers are stopped), of the type and with the
    message one worker gives (RuntimeError with its text where it cannot cross processes).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    items = (image if isinstance(image, np.ndarray) else Path(image) for image in images)
    if workers == 1:
        worker = Worker(task)
        try:
            for item in items:
                yield worker.process_array(worker.read(item) if isinstance(item, Path) else item)
        finally:
            worker.close()
        return
    yield from _map_in_pool(_threads_per_worker(task, workers), items, workers)


def _map_in_pool(task: Task, items: Iterator[np.ndarray | Path], workers: int) -> Iterator[tuple[np.ndarray, ...]]:
    """``map_images`` on a pool: answers reordered to input order (the window bounds the reorder buffer)."""
    waiting: dict[int, tuple[np.ndarray, ...]] = {}
    following = 0
    # One array request in flight per worker: a big request and a big answer can never block each other.
    with _pool(task, workers, 1) as pool:
        for number, _, answer in pool.run(_ArrayRequest(item) for item in items):
            if isinstance(answer, _Failure) and answer.error is not None:
                raise answer.error
            if isinstance(answer, _Failure):
                raise (SetupError if answer.fatal else RuntimeError)(answer.message)
            if isinstance(answer, tuple):
                waiting[number] = answer
            while following in waiting:
                yield waiting.pop(following)
                following += 1
