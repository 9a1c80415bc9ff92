"""The command line's grammar: the argument parser, bounded number types, and the typed options built from it."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal

import segkit
from segkit.batch import COMMANDS, Command, Refine
from segkit.video import PRESETS, VideoOptions

DEFAULT_MODELS: dict[Command, str] = {
    "segment": "selfie_segmenter",
    "blur": "selfie_segmenter",
    "replace": "selfie_segmenter",
    "cutout": "selfie_segmenter",
    "recolor": "hair_segmenter",
    "overlay": "deeplab_v3",
}
MasksChoice = Literal["alpha", "category", "confidence", "both"]
Engine = Literal["local", "ray"]

EXIT_CODES = (
    "exit status: 0 ok, 1 some inputs failed, 2 usage error, 3 missing optional dependency or model unavailable,"
    " 130 interrupted"
)


class UsageError(Exception):
    """A problem with the command line itself (exit status 2)."""


@dataclass(frozen=True)
class RunOptions:
    """Everything a model-running command was asked to do, typed (built once from the parsed arguments)."""

    command: Command
    inputs: tuple[str, ...]
    model: str
    out: str | None = None
    format: str | None = None
    overwrite: bool = False
    quiet: bool = False
    workers: int | None = None
    engine: Engine = "local"
    ray_address: str | None = None
    masks: MasksChoice = "alpha"
    categories: tuple[str, ...] | None = None
    refine: Refine = "none"
    refine_radius: int = 4
    smooth: float | None = None
    strength: float | None = None
    background: str | None = None
    color: str | None = None
    alpha: float = 0.5
    legend: bool = True
    threads: int | None = None
    gpu: bool = False
    gpu_fallback: bool = False
    normalization: tuple[float, float] | None = None
    preset: str | None = None
    crf: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        """The options of a parsed command line (options a command does not have keep their defaults)."""
        given = vars(args)
        values = {f.name: given[f.name] for f in fields(cls) if given.get(f.name) is not None}
        values["inputs"] = tuple(values["inputs"])
        return cls(**values)


# --- value types: finite, bounded, with messages that name the value ------------------------------------------------


def bounded(low: float, high: float, *, integer: bool = False, open_low: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (or (low, high]); 'inf', 'nan' and huge values refused."""
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind} in {interval}") from None
        if not math.isfinite(value) or value < low or value > high or (open_low and value == low):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: use a value in {interval}")
        return value

    return parse


def normalization(text: str) -> tuple[float, float]:
    """``MEAN,STD`` as two finite floats (STD > 0), e.g. ``127.5,127.5`` for a model scaled to [-1, 1]."""
    parts = text.split(",")
    try:
        mean, std = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        mean, std = math.nan, math.nan
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0 or abs(mean) > 1e6 or std > 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not MEAN,STD (two finite numbers, STD > 0), e.g. 127.5,127.5")
    return mean, std


def name_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of names or indices, empty items dropped."""
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    if not items:
        raise argparse.ArgumentTypeError("give at least one label name or index")
    return items


# --- the parser -----------------------------------------------------------------------------------------------------


def _add_inputs(parser: argparse.ArgumentParser, command: Command) -> None:
    """Inputs, model, outputs and run control, shared by every command that runs a model."""
    default = DEFAULT_MODELS[command]
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive), videos, or - for standard input"
    )
    parser.add_argument(
        "--model", "-m", default=default, help=f"registry name or .tflite path (default: {default}; 'segkit models')"
    )
    parser.add_argument(
        "--out", "-o", metavar="PATH",
        help="a file (has an image or video extension), a folder (exists or ends with /), or - for standard output; "
        "default: next to each input",
    )  # fmt: skip
    parser.add_argument(
        "--format", "-f", type=str.lower, metavar="EXT",
        help="image format when no extension says it: png, jpg, webp, bmp, tiff, gif (standard output, folders)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary, errors only")
    run = parser.add_argument_group("engine")
    run.add_argument(
        "--workers", "-w", type=bounded(1, 1024, integer=True), metavar="N",
        help="worker processes for folders (default: one per core; 1 keeps a single process)",
    )  # fmt: skip
    run.add_argument("--engine", choices=("local", "ray"), default="local", help="local processes or a Ray cluster")
    run.add_argument("--ray-address", metavar="ADDR", help="Ray cluster address (default: start a local Ray)")
    model = parser.add_argument_group("segmenter")
    model.add_argument(
        "--threads", type=bounded(1, 256, integer=True), metavar="N",
        help="interpreter threads per segmenter (default: the cores, divided among the workers; half for a video)",
    )  # fmt: skip
    model.add_argument("--gpu", action="store_true", help="run the model on LiteRT's GPU accelerator")
    model.add_argument("--gpu-fallback", action="store_true", help="with --gpu: fall back to the CPU if none starts")
    model.add_argument(
        "--normalization", type=normalization, metavar="MEAN,STD",
        help="input normalization for float models without metadata, e.g. 127.5,127.5",
    )  # fmt: skip


def _add_mask_options(parser: argparse.ArgumentParser, subject: str) -> None:
    """Options choosing and shaping the subject's soft mask."""
    parser.add_argument(
        "--categories", "--category", "-c", type=name_list, metavar="NAMES",
        help=f"the subject's label names or indices, comma-separated (default: {subject})",
    )  # fmt: skip
    parser.add_argument(
        "--refine", choices=("none", "feather", "guided"), default="none",
        help="mask refinement: feather (soft edges) or guided (snap to image edges) (default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--refine-radius", type=bounded(0, 256, integer=True), default=4, metavar="PX",
        help="refinement radius in pixels, 0..256 (default: 4)",
    )  # fmt: skip
    parser.add_argument(
        "--smooth", type=bounded(0, 1, open_low=True), metavar="W",
        help="videos: temporal smoothing, W = weight of the newest mask in (0, 1] (default: off)",
    )  # fmt: skip


_HELP: dict[Command, str] = {
    "segment": "write masks as PNGs (default: the subject's 8-bit alpha, white = subject)",
    "blur": "blur the background, keep the subject sharp",
    "replace": "replace the background with a color or an image",
    "cutout": "write the subject on a transparent background (PNG)",
    "recolor": "recolor the masked region (hair) keeping its shading",
    "overlay": "tint each category with a palette color",
}


def _add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], command: Command) -> None:
    """One model-running subcommand with its own options."""
    p = sub.add_parser(
        command,
        help=_HELP[command],
        description=_HELP[command],
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_inputs(p, command)
    subject = "hair" if command == "recolor" else "the person, or everything but background"
    if command == "segment":
        p.add_argument(
            "--masks", choices=("alpha", "category", "confidence", "both"), default="alpha",
            help="alpha: the subject white on black; category: MediaPipe's category mask (class indices; the selfie "
            "models mark the person 0); confidence: one 8-bit file per class; both: category + confidence "
            "(default: alpha)",
        )  # fmt: skip
        p.add_argument(
            "--categories", "--category", "-c", type=name_list, metavar="NAMES",
            help=f"alpha: the subject's classes (default: {subject}); confidence: which classes (default: all)",
        )  # fmt: skip
    elif command != "overlay":
        _add_mask_options(p, subject)
    if command == "blur":
        p.add_argument("--strength", type=bounded(0, 1000), default=15.0, help="blur sigma in pixels (default: 15)")
    elif command == "replace":
        p.add_argument(
            "--background", "-b", required=True,
            help="a color ('#00b140', 'white', '0,177,64') or an image file (scaled to cover)",
        )  # fmt: skip
    elif command == "recolor":
        p.add_argument("--color", required=True, help="target color ('#b03060', 'teal', '176,48,96')")
        p.add_argument("--strength", type=bounded(0, 1), default=0.8, help="0..1, how far toward the color (0.8)")
    elif command == "overlay":
        p.add_argument("--alpha", type=bounded(0, 1), default=0.5, help="tint opacity 0..1 (default: 0.5)")
        p.add_argument("--no-legend", dest="legend", action="store_false", help="do not draw the category legend")
    if command != "cutout":
        _add_video_options(p)


def _add_video_options(parser: argparse.ArgumentParser) -> None:
    """The encoder settings of a video output (H.264 in .mp4/.mov/.mkv/.avi, VP9 in .webm)."""
    encoder = parser.add_argument_group("video output")
    encoder.add_argument(
        "--preset", choices=PRESETS, metavar="NAME",
        help=f"H.264 speed preset, {PRESETS[0]} (fastest, largest files) .. {PRESETS[-1]} (default: "
        f"{VideoOptions.preset}: 30 fps at 720p on 2 cores beside the segmentation)",
    )  # fmt: skip
    encoder.add_argument(
        "--crf", type=bounded(0, 51, integer=True), metavar="N",
        help=f"quality, 0 (lossless) .. 51, lower is better and larger (default: {VideoOptions.crf})",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="segkit",
        description="Segment images and videos with MediaPipe's segmentation models, or apply mask effects.",
        epilog=f"example: segkit blur photo.jpg --out photo_blurred.jpg\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", "-V", action="version", version=f"segkit {segkit.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        _add_command(sub, command)
    sub.add_parser("models", help="list the registered models and whether each is available locally")
    p = sub.add_parser("info", help="print a model's metadata")
    p.add_argument("model", metavar="MODEL", help="registry name or .tflite path")
    p = sub.add_parser("download", help="fetch registry models into the cache ahead of time (sha256 verified)")
    p.add_argument("names", nargs="*", metavar="NAME", help="registry names (see 'segkit models')")
    p.add_argument("--all", action="store_true", help="every registered model")
    p.add_argument("--force", action="store_true", help="download again even if a verified copy is cached")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    sub.add_parser("serve", help="run the HTTP API and Try-it page ('segkit serve --help'; needs segkit[serve])")
    for subparser in sub.choices.values():
        subparser.set_defaults(subparser=subparser)
    return parser
