"""Where each input's outputs go: the ``--out`` rules, output names, and a lazy walk of input folders.

``--out`` never guesses: a path with an image or video extension is a file, an existing folder or a path ending in
``/`` is a folder, ``-`` is standard output, anything else is a usage error that says which to write. Folders are
walked lazily, one directory listing at a time, so a million files are never listed or stat-ed up front.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from segkit.batch import ALPHA_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, Command, FileJob, MaskOutput, image_format
from segkit.cli.parsing import UsageError

STDIO = "-"
_MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES
_VIDEO_OUT = {".mp4": ".mp4", ".mov": ".mov", ".mkv": ".mkv", ".webm": ".webm", ".avi": ".mp4"}


@dataclass(frozen=True)
class Destination:
    """What ``--out`` names: outputs beside each input, one file, a folder, or standard output."""

    kind: Literal["beside", "file", "folder", "stdout"]
    path: Path | None = None


def destination(out: str | None) -> Destination:
    """``--out`` read by the rules in the module docstring; UsageError for an ambiguous path."""
    if out is None:
        return Destination("beside")
    if out == STDIO:
        return Destination("stdout")
    path = Path(out)
    if out.endswith(("/", os.sep)) or path.is_dir():
        return Destination("folder", path)
    if path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        return Destination("file", path)
    raise UsageError(
        f"--out {out!r} is neither a folder nor a file name with an image or video extension: "
        f"write '{out}/' for a folder or e.g. '{out}.png' for a file"
    )


@dataclass(frozen=True)
class PlanFailure:
    """An input that cannot become a job (an unreadable folder, a clash, a video cutout), reported as failed."""

    path: Path
    error: str


_LOSSY_SUFFIXES = (".jpg", ".jpeg")  # masks in WebP are written losslessly (batch.encode_image)


@dataclass(frozen=True)
class Naming:
    """How output files are named for a command: effects keep the input's kind, ``segment`` adds the mask's name."""

    command: Command
    masks: tuple[MaskOutput, ...]
    format: str | None = None

    def suffix(self, source: Path) -> str:
        """The output suffix for ``source``: videos stay videos, cutouts need alpha, ``--format`` wins for images."""
        suffix = source.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return _VIDEO_OUT[suffix]
        if self.format is not None:
            return self.format
        if self.command == "segment" or (self.command == "cutout" and suffix not in ALPHA_SUFFIXES):
            return ".png"
        return suffix if suffix in IMAGE_SUFFIXES else ".png"

    def beside(self, source: Path) -> tuple[Path, ...]:
        """Targets next to the input: ``photo.blur.jpg``, ``photo.alpha.png``."""
        return self.under(source.parent, Path(source.name), tag=self.command)

    def under(self, root: Path, relative: Path, tag: str | None = None) -> tuple[Path, ...]:
        """Targets for ``relative`` under the output folder ``root`` (the input tree mirrored)."""
        folder, stem, suffix = root / relative.parent, relative.stem, self.suffix(relative)
        if self.command == "segment":
            return tuple(folder / f"{stem}.{mask.name}{suffix}" for mask in self.masks)
        return (folder / (f"{stem}.{tag}{suffix}" if tag else f"{stem}{suffix}"),)

    def check_file(self, source: Path, target: Path) -> None:
        """UsageError when one input cannot become the single file ``target``."""
        if self.command == "segment" and len(self.masks) != 1:
            raise UsageError(f"--masks writes {len(self.masks)} files per image: give --out a folder (ending in /)")
        image_out = target.suffix.lower() in IMAGE_SUFFIXES
        if self.format is not None and image_out and image_format(target.suffix) != image_format(self.format):
            raise UsageError(f"--format {self.format.lstrip('.')} contradicts --out {target}: give one of them")
        video_in = source.suffix.lower() in VIDEO_SUFFIXES
        if video_in != (target.suffix.lower() in VIDEO_SUFFIXES):
            kinds = ("a video", "an image") if video_in else ("an image", "a video")
            raise UsageError(f"{source} is {kinds[0]} but --out {target} is {kinds[1]} file")
        if self.command == "cutout":
            check_cutout(source, target)
        self._check_category_format(target.suffix.lower(), f"--out {target}")

    def check_format(self) -> None:
        """UsageError for a ``--format`` this command cannot write: a cutout needs a format with an alpha channel
        (GIF's one transparent palette entry is not one), as ``--out FILE`` does (:func:`check_cutout`)."""
        if self.format is None:
            return
        fmt = self.format.lstrip(".")
        if self.command == "cutout" and self.format not in ALPHA_SUFFIXES:
            raise UsageError(f"cutout writes transparency: --format {fmt} cannot hold it; use png, webp or tiff")
        self._check_category_format(self.format, f"--format {fmt}")

    def _check_category_format(self, suffix: str, given: str) -> None:
        """UsageError for a category mask in JPEG: its values are class indices, which lossy coding would change."""
        if self.command == "segment" and suffix in _LOSSY_SUFFIXES and any(m.kind == "category" for m in self.masks):
            raise UsageError(
                f"{given}: a category mask holds class indices, which JPEG would change; use png or webp (lossless)"
            )

    def problem(self, source: Path) -> str | None:
        """Why ``source`` cannot be processed by this command (found while walking a folder), or None."""
        if self.command == "cutout" and source.suffix.lower() in VIDEO_SUFFIXES:
            return _CUTOUT_VIDEO
        if self.command == "segment" and len(self.masks) != 1 and source.suffix.lower() in VIDEO_SUFFIXES:
            return "a video is written to one file: use --masks alpha or --masks category for videos"
        return None


_CUTOUT_VIDEO = (
    "cutout cannot write a transparent video; use 'segkit replace --background \"#00b140\"' for a green screen"
)


def check_cutout(source: Path, target: Path) -> None:
    """UsageError for a cutout that cannot carry transparency."""
    if source.suffix.lower() in VIDEO_SUFFIXES:
        raise UsageError(f"{source}: {_CUTOUT_VIDEO}")
    if target.suffix.lower() not in ALPHA_SUFFIXES:
        raise UsageError(f"cutout writes transparency: {target} must be .png, .webp or .tiff")


def format_suffix(fmt: str | None) -> str | None:
    """``--format`` as a file suffix ('.png'); UsageError for an unknown format."""
    if fmt is None:
        return None
    try:
        image_format(fmt)
    except ValueError as e:
        raise UsageError(f"--format: {e}") from None
    return "." + fmt.lower().lstrip(".")


# --- the plan -------------------------------------------------------------------------------------------------------


Planned = FileJob | PlanFailure


def plan(inputs: Sequence[Path], dest: Destination, naming: Naming) -> Iterator[Planned]:
    """Every input paired with its targets; usage errors are raised now, folders are walked as the run consumes."""
    for source in inputs:
        if not source.exists():
            raise UsageError(f"input not found: {source}")
        problem = naming.problem(source) if source.is_file() else None
        if problem is not None:
            raise UsageError(f"{source}: {problem}")
    if dest.kind in ("file", "stdout"):
        return iter([_single(inputs, dest, naming)])
    roots = _folder_roots(inputs, dest, naming)
    if dest.path is not None:
        for source in (s for s in inputs if s.is_file()):
            _check_not_itself(source, naming.under(dest.path, Path(source.name)))
    return _jobs(inputs, roots, naming, dest)


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file or folder (through ``..``, symbolic or hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_not_itself(source: Path, targets: Sequence[Path]) -> None:
    """UsageError when an output of ``source`` would be ``source`` itself: writing it would destroy the input."""
    for target in targets:
        if _same_file(source, target):
            raise UsageError(f"the output {target} is the input {source} itself: give --out another file or folder")


def _single(inputs: Sequence[Path], dest: Destination, naming: Naming) -> FileJob:
    """The one job of a run whose ``--out`` is a file (or standard output, handled by the caller)."""
    where = "- (standard output) carries one image" if dest.path is None else f"{dest.path} is one file"
    if len(inputs) != 1 or not inputs[0].is_file():
        raise UsageError(f"--out {where}, but the inputs are several files or a folder: give a folder")
    source = inputs[0]
    if dest.path is None:
        if source.suffix.lower() in VIDEO_SUFFIXES:
            raise UsageError("--out - writes one image to standard output; videos need a file or folder")
        return FileJob(source, ())
    naming.check_file(source, dest.path)
    _check_not_itself(source, (dest.path,))
    return FileJob(source, (dest.path,))


def _folder_roots(inputs: Sequence[Path], dest: Destination, naming: Naming) -> dict[Path, Path]:
    """The output root of each folder input; UsageError when two folders would share one."""
    roots: dict[Path, Path] = {}
    for source in (s for s in inputs if s.is_dir()):
        if dest.path is None:
            root = source.parent / f"{source.resolve().name}_{naming.command}"
        else:
            root = dest.path if len(inputs) == 1 else dest.path / source.resolve().name
        if root in roots.values():
            raise UsageError(f"several input folders would write into {root}: give them different names")
        if _same_file(source, root):
            raise UsageError(
                f"the output folder {root} is the input folder {source} itself: its outputs would replace the inputs;"
                " give --out another folder"
            )
        roots[source] = root
    return roots


def _jobs(inputs: Sequence[Path], roots: dict[Path, Path], naming: Naming, dest: Destination) -> Iterator[Planned]:
    """The jobs of every input in order; single files first-come, folders walked lazily.

    The walks leave out every output folder (``--out``'s, and each folder input's own output root, which may lie
    inside an input: ``segkit blur .`` writes ``./<name>_blur/``), so a rerun never takes old outputs for inputs.
    """
    claimed: dict[Path, Path] = {}
    outputs = [*roots.values(), *([dest.path] if dest.path is not None else [])]
    skip = frozenset(root.resolve() for root in outputs)
    for source in inputs:
        if source in roots:
            yield from _walk(source, roots[source], naming, skip)
            continue
        targets = naming.beside(source) if dest.path is None else naming.under(dest.path, Path(source.name))
        clash = claimed.get(targets[0])
        if clash is not None:
            yield PlanFailure(source, f"would write the same output as {clash}")
            continue
        claimed[targets[0]] = source
        yield FileJob(source, targets)


def _walk(folder: Path, root: Path, naming: Naming, skip: frozenset[Path]) -> Iterator[Planned]:
    """Image and video files under ``folder`` (hidden entries, FIFOs and devices, and the output folders ``skip`` left
    out), depth first.

    One directory is listed at a time and only its media file names are kept; they are sorted by stem, so files
    that could write the same output (``x.jpg`` and ``x.png`` for a cutout) are neighbours and the clash check
    needs only the current stem's targets.
    """
    pending = [Path()]
    while pending:
        relative = pending.pop()
        try:
            files, subfolders = _list(folder / relative, skip)
        except OSError as e:
            yield PlanFailure(folder / relative, f"cannot read folder: {e.strerror or e}")
            continue
        claimed: dict[Path, Path] = {}
        stem = None
        for name in files:
            if Path(name).stem != stem:
                stem, claimed = Path(name).stem, {}
            yield _job(folder, relative / name, root, naming, claimed)
        pending.extend(relative / sub for sub in reversed(subfolders))


def _list(directory: Path, skip: frozenset[Path]) -> tuple[list[str], list[str]]:
    """The media file names (sorted by stem, then name) and the subfolder names (sorted) of one directory."""
    files: list[str] = []
    subfolders: list[str] = []
    skipped_names = {path.name for path in skip}  # a real subfolder resolves to its own name: resolve only those
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if _is_dir(entry):
                if entry.name not in skipped_names or Path(entry.path).resolve() not in skip:
                    subfolders.append(entry.name)
            elif Path(entry.name).suffix.lower() in _MEDIA_SUFFIXES and not _is_special(entry):
                files.append(entry.name)
    files.sort(key=lambda name: (Path(name).stem, name))
    return files, sorted(subfolders)


def _is_special(entry: os.DirEntry[str]) -> bool:
    """A FIFO, socket or device with a media name: a walk leaves it out (reading a FIFO no one writes to would hang
    the run). Named on the command line it is read, as a pipe should be; a broken link stays in, to be reported."""
    try:
        return not stat.S_ISREG(entry.stat().st_mode)
    except OSError:
        return False


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """A real subfolder (symlinked folders are not followed, so a link cycle cannot loop)."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _job(folder: Path, relative: Path, root: Path, naming: Naming, claimed: dict[Path, Path]) -> Planned:
    """The job for one file found in a folder, or why it cannot be one."""
    source = folder / relative
    problem = naming.problem(source)
    if problem is not None:
        return PlanFailure(source, problem)
    targets = naming.under(root, relative)
    clash = claimed.get(targets[0])
    if clash is not None:
        return PlanFailure(source, f"would write the same output as {clash}")
    claimed[targets[0]] = source
    return FileJob(source, targets)
