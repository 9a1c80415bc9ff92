"""The ``segkit`` command line: segment images, folders and videos, or apply a mask effect to them.

Thin by design: argument parsing, input/output planning and loops. The pixel work lives in ``segkit.effects`` and
the segmentation in the public API, both imported lazily so that ``segkit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm"})
ALPHA_SUFFIXES = frozenset({".png", ".webp", ".tif", ".tiff"})
_CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".avi": "avi", ".mkv": "matroska", ".webm": "webm"}
DEFAULT_MODELS = {
    "segment": "selfie_segmenter",
    "blur": "selfie_segmenter",
    "replace": "selfie_segmenter",
    "cutout": "selfie_segmenter",
    "recolor": "hair_segmenter",
    "overlay": "deeplab_v3",
}
_VIDEO_HINT = "install the video extra: pip install 'segkit[video]'"


class UsageError(Exception):
    """A problem with the command line itself (exit status 2)."""


class InputError(Exception):
    """A problem with one input or output file (exit status 1; folder runs go on with the next file)."""


@dataclass(frozen=True)
class Job:
    """One input file and where its result goes (for ``segment``: the path stem its mask files start with)."""

    source: Path
    target: Path

    @property
    def is_video(self) -> bool:
        return self.source.suffix.lower() in VIDEO_SUFFIXES


# --- argument parsing -----------------------------------------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser, command: str) -> None:
    """Options shared by the commands that run a model over inputs."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive) or videos")
    parser.add_argument(
        "--model", "-m", default=DEFAULT_MODELS[command],
        help=f"registry name or .tflite path (default: {DEFAULT_MODELS[command]}; see 'segkit models')",
    )  # fmt: skip
    parser.add_argument(
        "--out", "-o", type=Path,
        help="output file (one input) or folder (several inputs or a folder; the input tree is mirrored); "
        "default: next to each input",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars or messages, errors only")


def _add_mask_options(parser: argparse.ArgumentParser, default_category: str) -> None:
    """Options choosing and shaping the soft mask an effect uses."""
    parser.add_argument(
        "--category", "-c", default=None,
        help=f"label name(s) or index(es) of the subject, comma-separated (default: {default_category})",
    )  # fmt: skip
    parser.add_argument(
        "--refine", choices=("none", "feather", "guided"), default="none",
        help="mask refinement: feather (soft edges) or guided (snap to image edges) (default: none)",
    )  # fmt: skip
    parser.add_argument("--refine-radius", type=int, default=4, metavar="PX", help="refinement radius (default: 4)")
    parser.add_argument(
        "--smooth", type=float, default=None, metavar="W",
        help="videos: temporal smoothing, W = weight of the newest mask in (0, 1] (default: off)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="segkit",
        description="Segment images and videos with MediaPipe's segmentation models, or apply mask effects.",
        epilog="Example: segkit blur photo.jpg --out photo_blurred.jpg",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("segment", help="write category and confidence masks as PNGs")
    _add_common(p, "segment")

    p = sub.add_parser("blur", help="blur the background, keep the subject sharp")
    _add_common(p, "blur")
    _add_mask_options(p, "the person / non-background")
    p.add_argument("--strength", type=float, default=15.0, help="blur sigma in pixels (default: 15)")

    p = sub.add_parser("replace", help="replace the background with a color or an image")
    _add_common(p, "replace")
    _add_mask_options(p, "the person / non-background")
    p.add_argument(
        "--background", "-b", required=True,
        help="a color ('#00b140', 'white', '0,177,64') or an image file (scaled to cover)",
    )  # fmt: skip

    p = sub.add_parser("cutout", help="write the subject on a transparent background (PNG)")
    _add_common(p, "cutout")
    _add_mask_options(p, "the person / non-background")

    p = sub.add_parser("recolor", help="recolor the masked region (hair) keeping its shading")
    _add_common(p, "recolor")
    _add_mask_options(p, "hair")
    p.add_argument("--color", required=True, help="target color ('#b03060', 'teal', '176,48,96')")
    p.add_argument("--strength", type=float, default=0.8, help="0..1, how far to move toward the color (default 0.8)")

    p = sub.add_parser("overlay", help="tint each category with a palette color")
    _add_common(p, "overlay")
    p.add_argument("--alpha", type=float, default=0.5, help="tint opacity 0..1 (default: 0.5)")
    p.add_argument("--no-legend", dest="legend", action="store_false", help="do not draw the category legend")

    sub.add_parser("models", help="list the registered models and whether each is available locally")
    p = sub.add_parser("info", help="print a model's metadata")
    p.add_argument("model", metavar="MODEL", help="registry name or .tflite path")
    for name, subparser in sub.choices.items():
        subparser.set_defaults(subparser=subparser)
    return parser


# --- planning inputs and outputs ------------------------------------------------------------------------------------


def _output_suffix(source: Path, command: str) -> str:
    """The file suffix of an effect's output for ``source`` (videos stay videos; cutouts need an alpha channel)."""
    suffix = source.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return suffix if suffix in (".mp4", ".mov", ".mkv", ".webm") else ".mp4"
    if command == "cutout" and suffix not in ALPHA_SUFFIXES:
        return ".png"
    return suffix if suffix in IMAGE_SUFFIXES else ".png"


def _target(relative: Path, root: Path, command: str) -> Path:
    """Where the result for ``relative`` goes under the output folder ``root``."""
    if command == "segment":
        return root / relative.with_suffix("")
    return root / relative.with_suffix(_output_suffix(relative, command))


def _scan(folder: Path, skip: Path | None) -> list[Path]:
    """Image and video files under ``folder``, sorted, leaving out hidden files and the output folder ``skip``."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            found.append(path)
    return found


def plan(inputs: Sequence[Path], out: Path | None, command: str) -> list[Job]:
    """Pairs every input file with its output path; UsageError for missing inputs or clashing outputs."""
    for source in inputs:
        if not source.exists():
            raise UsageError(f"input not found: {source}")
    single_file = len(inputs) == 1 and inputs[0].is_file()
    out_file = out if out is not None and out.suffix and not out.is_dir() and command != "segment" else None
    jobs: list[Job] = []
    if single_file and out_file is not None:
        jobs.append(Job(inputs[0], out_file))
    elif out_file is not None:
        raise UsageError(f"--out {out} looks like a file, but there are several inputs: give a folder")
    else:
        skip = out.resolve() if out is not None else None
        for source in inputs:
            if source.is_file():
                root = out if out is not None else source.parent
                if out is None and command != "segment":
                    name = f"{source.stem}.{command}{_output_suffix(source, command)}"
                    jobs.append(Job(source, source.with_name(name)))
                else:
                    jobs.append(Job(source, _target(Path(source.name), root, command)))
                continue
            if out is None:
                root = source.parent / f"{source.resolve().name}_{command}"
            else:
                root = out if len(inputs) == 1 else out / source.resolve().name
            jobs.extend(Job(f, _target(f.relative_to(source), root, command)) for f in _scan(source, skip))
    clash = [target for target, n in Counter(job.target for job in jobs).items() if n > 1]
    if clash:
        raise UsageError(f"several inputs would write the same output: {', '.join(map(str, sorted(clash)))}")
    if command == "cutout":
        for job in jobs:
            if job.is_video:
                raise UsageError(
                    f"cutout cannot write a transparent video ({job.source}); "
                    "use 'segkit replace --background \"#00b140\"' for a green screen"
                )
            if job.target.suffix.lower() not in ALPHA_SUFFIXES:
                raise UsageError(f"cutout writes transparency: {job.target} must be .png, .webp or .tiff")
    return jobs


def _outputs(job: Job, command: str, labels: Sequence[str] | None = None) -> list[Path]:
    """Every file ``job`` writes (``segment`` writes several; the confidence files need the labels)."""
    if command != "segment":
        return [job.target]
    if job.is_video:
        return [job.target.with_name(job.target.name + ".category" + _output_suffix(job.source, command))]
    files = [job.target.with_name(job.target.name + s) for s in (".category.png", ".category_raw.png")]
    for index, label in enumerate(labels or ()):
        files.append(job.target.with_name(f"{job.target.name}.confidence_{index:02d}_{_safe(label)}.png"))
    return files


def _safe(label: str) -> str:
    """A label made safe for a file name."""
    return re.sub(r"[^\w.-]+", "_", label).strip("_") or "class"


# --- masks from results ---------------------------------------------------------------------------------------------


def _probabilities(result: Any) -> list[np.ndarray]:
    """The confidence masks as (H, W) float32 probabilities (softmax across them when they are raw logits)."""
    import numpy as np

    masks = [np.asarray(m.numpy_view(), np.float32).reshape(m.numpy_view().shape[:2]) for m in result.confidence_masks]
    stacked = np.stack(masks)
    if stacked.min() < -1e-3 or stacked.max() > 1 + 1e-3:
        if len(masks) == 1:
            return [(1.0 / (1.0 + np.exp(-masks[0]))).astype(np.float32)]
        exp = np.exp(stacked - stacked.max(axis=0, keepdims=True))
        stacked = exp / exp.sum(axis=0, keepdims=True)
        return list(stacked)
    return masks


def _categories(result: Any, labels: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The category mask as (H, W) uint8 indices into the returned labels.

    MediaPipe marks the subject of a one-class model (selfie) with 0 and the rest with 255; that becomes
    0 = background, 1 = the label.
    """
    import numpy as np

    view = result.category_mask.numpy_view()
    category = np.asarray(view).reshape(view.shape[:2])
    if len(labels) == 1:
        return (category == 0).astype(np.uint8), ["background", labels[0]]
    return category, list(labels)


def _pick_indices(spec: str | None, labels: Sequence[str], command: str) -> list[int] | None:
    """Indices of the subject classes from ``--category``; None means 'everything but background'."""
    lowered = [label.lower() for label in labels]
    if spec is None:
        if len(labels) == 1:
            return [0]
        for preferred in (("hair",) if command == "recolor" else ()) + ("person",):
            if preferred in lowered:
                return [lowered.index(preferred)]
        return None if lowered[0] == "background" else [0]
    indices = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if item.isdigit() and int(item) < len(labels):
            indices.append(int(item))
        elif item.lower() in lowered:
            indices.append(lowered.index(item.lower()))
        else:
            raise UsageError(f"--category {item!r} is not a class of this model; its labels: {', '.join(labels)}")
    if not indices:
        raise UsageError(f"--category is empty; this model's labels: {', '.join(labels)}")
    return indices


# --- the effect run on every frame ----------------------------------------------------------------------------------


class Processor:
    """Turns a segmentation result into the output pixels of one command, with the options given."""

    def __init__(self, args: argparse.Namespace, labels: Sequence[str], display_names: Sequence[str]) -> None:
        self.args = args
        self.command: str = args.command
        self.labels = list(labels)
        # A category without a display name in the locale (MediaPipe gives "") is shown by its label.
        self.display_names = [name or label for name, label in zip(display_names, self.labels)] or self.labels
        self.indices = _pick_indices(getattr(args, "category", None), labels, self.command)
        self.background: Any = _load_background(args.background) if self.command == "replace" else None

    def new_smoother(self) -> Any:
        """A fresh temporal smoother for one video, or None when ``--smooth`` is off."""
        from segkit.effects import TemporalSmoother

        smooth = getattr(self.args, "smooth", None)
        return None if smooth is None else TemporalSmoother(weight=smooth)

    def alpha(self, image: np.ndarray, result: Any, smoother: Any = None) -> np.ndarray:
        """The subject's soft mask: the chosen classes' probabilities, refined and smoothed as asked."""
        import numpy as np

        from segkit import effects

        probs = _probabilities(result)
        if self.indices is None:
            alpha = 1.0 - probs[0]
        else:
            alpha = np.clip(np.sum([probs[i] for i in self.indices], axis=0), 0.0, 1.0).astype(np.float32)
        if self.args.refine != "none":
            alpha = effects.refine_mask(alpha, image, radius=self.args.refine_radius, method=self.args.refine)
        return smoother(alpha) if smoother is not None else alpha

    def __call__(self, image: np.ndarray, result: Any, smoother: Any = None) -> np.ndarray:
        """The output image for one input image (or video frame)."""
        from segkit import effects

        a = self.args
        if self.command == "overlay":
            category, labels = _categories(result, self.display_names)
            return effects.overlay(image, category, alpha=a.alpha, labels=labels if a.legend else None)
        if self.command == "segment":
            return _scaled_category(result, self.labels, rgb=True)
        alpha = self.alpha(image, result, smoother)
        if self.command == "blur":
            return effects.blur_background(image, alpha, strength=a.strength)
        if self.command == "replace":
            return effects.replace_background(image, alpha, self.background)
        if self.command == "cutout":
            return effects.cutout(image, alpha)
        return effects.recolor(image, alpha, a.color, strength=a.strength)


def _scaled_category(result: Any, labels: Sequence[str], rgb: bool = False) -> np.ndarray:
    """The category mask stretched over 0..255 so the classes are visible (MediaPipe's 0/255 selfie mask as is)."""
    import numpy as np

    view = result.category_mask.numpy_view()
    category = np.asarray(view).reshape(view.shape[:2])
    scale = 1 if len(labels) <= 1 else 255 // (len(labels) - 1)
    scaled = (category.astype(np.uint16) * scale).clip(0, 255).astype(np.uint8)
    return np.repeat(scaled[:, :, None], 3, axis=2) if rgb else scaled


def _load_background(value: str) -> Any:
    """``--background`` as an RGB array (an existing image file) or a color."""
    return _read_image(Path(value)) if Path(value).is_file() else _parse_color(value, "--background")


def _parse_color(value: str, option: str) -> tuple[int, int, int]:
    """A color option ('#rrggbb', a name, or 'r,g,b') as (r, g, b); UsageError naming the option otherwise."""
    from segkit import effects

    try:
        if re.fullmatch(r"\s*\d+\s*,\s*\d+\s*,\s*\d+\s*", value):
            return effects.parse_color(tuple(int(v) for v in value.split(",")), option)
        return effects.parse_color(value, option)
    except ValueError as e:
        hint = " (or an existing image file)" if option == "--background" else ""
        raise UsageError(f"{e}{hint}") from None


# --- reading and writing --------------------------------------------------------------------------------------------


def _read_image(path: Path) -> np.ndarray:
    """An image file as a uint8 RGB array, EXIF rotation applied; InputError naming the file and why otherwise."""
    import numpy as np
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    try:
        with PILImage.open(path) as im:
            return np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
    except UnidentifiedImageError:
        raise InputError(f"cannot read image {path}: not an image format Pillow recognizes") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise InputError(f"cannot read image {path}: {e}") from None


def _write_image(array: np.ndarray, path: Path) -> None:
    """Saves an array with Pillow (JPEG at quality 95), creating folders; InputError when it cannot."""
    from PIL import Image as PILImage

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        image = PILImage.fromarray(array)
        if path.suffix.lower() in (".jpg", ".jpeg"):
            image.convert("RGB").save(path, quality=95)
        else:
            image.save(path)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot write {path}: {e}") from None


# --- progress -------------------------------------------------------------------------------------------------------


class _NoProgress:
    """Stands in for a tqdm bar when it is off or tqdm is missing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int | None, unit: str, quiet: bool, desc: str | None = None, leave: bool = True) -> Any:
    """A tqdm bar on stderr, or a no-op when ``quiet`` or tqdm is not installed."""
    if quiet:
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoProgress()
    return tqdm(total=total, unit=unit, desc=desc, leave=leave, file=sys.stderr, dynamic_ncols=True)


# --- models ---------------------------------------------------------------------------------------------------------


def _resolve_model(name_or_path: str) -> Path:
    """The model file for ``--model``; UsageError (with the known names) for an unknown name."""
    from segkit import models

    try:
        return models.resolve(name_or_path)
    except ValueError as e:
        message = str(e)
        if "known" not in message:
            message += f"; known models: {', '.join(models.names())}"
        raise UsageError(message) from None


@contextmanager
def _segmenter(model: Path, video: bool) -> Iterator[Any]:
    """An ImageSegmenter in IMAGE or VIDEO mode with both kinds of masks; InputError if the model will not load."""
    from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions, RunningMode

    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model)),
        running_mode=RunningMode.VIDEO if video else RunningMode.IMAGE,
        output_confidence_masks=True,
        output_category_mask=True,
        display_names_locale="en",
    )
    try:
        segmenter = ImageSegmenter.create_from_options(options)
    except (ValueError, RuntimeError, OSError) as e:
        raise InputError(f"cannot load model {model}: {e}") from None
    with segmenter:
        yield segmenter


# --- video ----------------------------------------------------------------------------------------------------------


def _import_av() -> Any:
    """PyAV, or InputError saying how to install it."""
    try:
        import av
    except ImportError:
        raise InputError(f"videos need PyAV; {_VIDEO_HINT}") from None
    return av


def _video_codec(av: Any, suffix: str) -> str:
    """The encoder for a container: VP9 for .webm, else H.264 (libx264) when this PyAV build has it, else MPEG-4."""
    candidates = ("libvpx-vp9", "libvpx") if suffix == ".webm" else ("libx264", "h264", "mpeg4")
    for name in candidates:
        try:
            av.codec.Codec(name, "w")
        except Exception:
            continue
        return name
    raise InputError(f"this PyAV build has no encoder for {suffix} videos (tried {', '.join(candidates)})")


def process_video(
    job: Job,
    output: Path,
    model: Path,
    processor: Processor,
    quiet: bool,
) -> None:
    """Segments a video frame by frame in VIDEO mode and writes the processed frames at the same rate and size.

    Timestamps given to the segmenter are the frames' presentation times in ms (forced strictly increasing); the
    audio stream, if any, is copied unchanged. The file is written under a temporary name and renamed when done.
    """
    av = _import_av()
    suffix = output.suffix.lower()
    try:
        source = av.open(str(job.source))
    except (av.FFmpegError, OSError) as e:
        raise InputError(f"cannot decode video {job.source}: {e}") from None
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
    try:
        with source:
            if not source.streams.video:
                raise InputError(f"cannot decode video {job.source}: it has no video stream")
            video_in = source.streams.video[0]
            audio_in = source.streams.audio[0] if source.streams.audio else None
            rate = video_in.average_rate or video_in.guessed_rate or Fraction(30)
            output.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(partial), "w", format=_CONTAINER_FORMATS.get(suffix, "mp4")) as sink:
                _transcode(av, source, sink, video_in, audio_in, rate, job, suffix, model, processor, quiet)
        os.replace(partial, output)
    except av.FFmpegError as e:
        raise InputError(f"cannot decode video {job.source}: {e}") from None
    finally:
        partial.unlink(missing_ok=True)


def _transcode(
    av: Any, source: Any, sink: Any, video_in: Any, audio_in: Any, rate: Fraction, job: Job, suffix: str,
    model: Path, processor: Processor, quiet: bool,
) -> None:  # fmt: skip
    """The demux-decode-segment-encode-mux loop of ``process_video``."""
    codec = _video_codec(av, suffix)
    width, height = video_in.codec_context.width, video_in.codec_context.height
    video_out = sink.add_stream(codec, rate=rate)
    video_out.width, video_out.height = width, height
    odd = width % 2 or height % 2
    video_out.pix_fmt = "yuv444p" if odd and codec == "libx264" else "yuv420p"
    audio_out = None
    if audio_in is not None:
        try:
            audio_out = sink.add_stream_from_template(audio_in)
        except (av.FFmpegError, ValueError) as e:
            if not quiet:
                print(f"segkit: warning: {job.source}: audio not copied ({e})", file=sys.stderr)
    smoother = processor.new_smoother()
    bar = _progress(video_in.frames or None, "frame", quiet, desc=job.source.name, leave=False)
    last_ms, index = -1, 0
    streams = [video_in] + ([audio_in] if audio_out is not None else [])
    try:
        with _segmenter(model, video=True) as segmenter:
            for packet in source.demux(streams):
                if packet.stream is not video_in:
                    if packet.dts is not None:
                        packet.stream = audio_out
                        sink.mux(packet)
                    continue
                for frame in packet.decode():
                    seconds = frame.time if frame.time is not None else index / rate
                    last_ms = max(int(round(float(seconds) * 1000)), last_ms + 1)
                    pixels = frame.to_ndarray(format="rgb24")
                    result = segmenter.segment_for_video(pixels, last_ms)
                    out = av.VideoFrame.from_ndarray(processor(pixels, result, smoother)[:, :, :3], format="rgb24")
                    out.pts = index
                    out.time_base = Fraction(1) / rate
                    sink.mux(video_out.encode(out))
                    index += 1
                    bar.update(1)
            sink.mux(video_out.encode(None))
    finally:
        bar.close()
    if index == 0:
        raise InputError(f"cannot decode video {job.source}: no frames decoded")


# --- commands -------------------------------------------------------------------------------------------------------


def _run_images_and_videos(args: argparse.Namespace) -> int:
    """Runs one effect (or ``segment``) over every input; returns the exit status."""
    jobs = plan([Path(p) for p in args.inputs], args.out, args.command)
    if not jobs:
        raise UsageError("no image or video files found in the inputs")
    if args.command == "recolor":
        args.color = _parse_color(args.color, "--color")
    if args.command == "replace" and not Path(args.background).is_file():
        _parse_color(args.background, "--background")
    model = _resolve_model(args.model)
    with _segmenter(model, video=False) as segmenter:
        labels = list(segmenter.labels)
        display_names = list(getattr(segmenter, "display_names", None) or labels)
        processor = Processor(args, labels, display_names)
        existing = [p for job in jobs for p in _outputs(job, args.command, labels) if p.exists()]
        if existing and not args.overwrite:
            shown = ", ".join(map(str, existing[:5])) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
            raise InputError(f"output exists: {shown} (use --overwrite to replace)")
        if args.command == "segment" and not args.quiet:
            print(f"labels: {', '.join(labels)}")
        failures = 0
        bar = _progress(len(jobs), "file", args.quiet or len(jobs) == 1)
        for job in jobs:
            try:
                if job.is_video:
                    process_video(job, _outputs(job, args.command)[0], model, processor, args.quiet)
                else:
                    _process_image(job, segmenter, processor, labels)
            except InputError as e:
                failures += 1
                print(f"segkit: error: {e}", file=sys.stderr)
            bar.update(1)
        bar.close()
    if failures and len(jobs) > 1:
        print(f"segkit: {failures} of {len(jobs)} inputs failed", file=sys.stderr)
    return 1 if failures else 0


def _process_image(job: Job, segmenter: Any, processor: Processor, labels: Sequence[str]) -> None:
    """Segments one image file and writes its output file(s)."""
    import numpy as np

    pixels = _read_image(job.source)
    result = segmenter.segment(pixels)
    if processor.command != "segment":
        _write_image(processor(pixels, result), job.target)
        return
    category_png, raw_png, *confidence_pngs = _outputs(job, "segment", labels)
    _write_image(_scaled_category(result, labels), category_png)
    view = result.category_mask.numpy_view()
    _write_image(np.ascontiguousarray(np.asarray(view).reshape(view.shape[:2])), raw_png)
    for probability, path in zip(_probabilities(result), confidence_pngs):
        _write_image(np.rint(np.clip(probability, 0, 1) * 255).astype(np.uint8), path)


def _run_models(args: argparse.Namespace) -> int:
    """Lists the registry: name, local file (or 'not cached') and description."""
    from segkit import models

    for name in models.names():
        local = models.cached(name)
        entry = models.info(name)
        where = str(local) if local is not None else "not cached (downloaded on first use)"
        print(f"{name:28} {where}\n{'':28} {getattr(entry, 'description', '')}")
    return 0


def _run_info(args: argparse.Namespace) -> int:
    """Prints the metadata of one model."""
    from segkit import metadata

    model = _resolve_model(args.model)
    try:
        info = metadata.read_model_info(model.read_bytes())
    except (ValueError, OSError) as e:
        raise InputError(f"cannot read model {model}: {e}") from None
    print(f"file: {model}")
    print(metadata.describe(info))
    return 0


def _check_numbers(args: argparse.Namespace) -> None:
    """UsageError for numeric options out of range (argparse only checks their type)."""
    ranges = {
        "strength": (0.0, 1.0) if args.command == "recolor" else (0.0, float("inf")),
        "alpha": (0.0, 1.0),
        "refine_radius": (0, 1000),
        "smooth": (1e-6, 1.0),
    }
    for name, (low, high) in ranges.items():
        value = getattr(args, name, None)
        if value is not None and not low <= value <= high:
            limits = f"in [{low:g}, {high:g}]" if high != float("inf") else f">= {low:g}"
            raise UsageError(f"--{name.replace('_', '-')} must be {limits}, got {value:g}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segkit`` console script; returns the exit status (0 ok, 1 failed, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {"models": _run_models, "info": _run_info}
    try:
        _check_numbers(args)
        return commands.get(args.command, _run_images_and_videos)(args)
    except UsageError as e:
        args.subparser.error(str(e))
    except InputError as e:
        print(f"segkit: error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("segkit: interrupted", file=sys.stderr)
        return 130
    return 1
