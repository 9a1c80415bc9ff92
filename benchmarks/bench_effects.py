"""segkit's effects against the natural OpenCV/numpy code, and segment + blur against MediaPipe's sample pipeline.

Three parts, each interleaved in this one process (segkit, reference, reference, segkit, ... so drift hits both),
after warm-up; the figures are medians and the ratio is the median of the pair-by-pair ratios:

1. **pipeline**: segkit ``segment()`` (selfie_segmenter, confidence mask) + ``effects.blur_background(image,
   result)`` against mediapipe 1.2.2's published sample: ``segment()`` (category mask) + ``cv2.GaussianBlur(image,
   (55, 55), 0)`` + ``np.where(condition, image, blurred)``. Targets: <= 0.5x at 1280x720, <= 0.7x at 640x480.
2. **effects**: each effect alone on a precomputed result, with its defaults (replace and cutout include the
   edge-color estimate), against a reference written here: blur = ``cv2.GaussianBlur`` sigma 15 + float32 alpha
   blend; replace = float32 alpha blend with a color; cutout = ``np.dstack`` of the 8-bit alpha; recolor =
   ``cv2`` LAB a/b shift toward the color, blended by mask x strength; overlay = palette lookup +
   ``cv2.addWeighted`` + background kept. Targets: <= 0.5x at 1280x720, <= 0.7x at 640x480. Masks: selfie for
   blur/replace/cutout, hair for recolor, DeepLab for overlay. ``--no-estimate`` times replace and cutout with
   ``estimate_colors=False`` instead (what the estimate costs; the targets are for the defaults).
3. **video** (``--video``): ``segkit blur|replace|recolor|overlay clip.mp4``'s own path (``segkit.batch.Worker`` on
   the file: a VIDEO-mode segmenter, the command's defaults, ``segkit.video.transcode``, the process tuned as the
   command line tunes its own, so this part runs last) on a generated 1280x720 pan/zoom clip (default 90 frames):
   throughput in fps (from the 10th frame on; start-up reported apart). Target: >= 30 fps.

Timing never fails the run (exit 0 unless something raises). ``--quick`` is a smoke test: 3 pairs, 20 frames.

    .venv/bin/python benchmarks/bench_effects.py [--sizes 1280x720 640x480] [--rounds 30] [--video] [--frames 90]
        [--effects blur replace cutout recolor overlay] [--no-pipeline] [--no-estimate] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from segkit import (  # noqa: E402  # the repository root is put on the path first
    BaseOptions,
    ImageSegmenter,
    ImageSegmenterOptions,
    ImageSegmenterResult,
    effects,
)

MODEL_DIR = Path(os.environ.get("SEGKIT_MODEL_DIR", REPO.parent / "shared" / "models"))
PHOTO = REPO.parent / "shared" / "testdata" / "astronaut.png"
MODELS = {"selfie": "selfie_segmenter.tflite", "hair": "hair_segmenter.tflite", "deeplab": "deeplabv3.tflite"}
TARGETS = {"1280x720": 0.5, "640x480": 0.7}
EFFECT_NAMES = ("blur", "replace", "cutout", "recolor", "overlay")
VIDEO_TARGET_FPS = 30.0
COLOR = (192, 48, 128)
GREEN = (0, 177, 64)

Timed = Callable[[], object]


def photo(width: int, height: int) -> np.ndarray:
    """The astronaut photo center-cropped to the aspect ratio and resized (bilinear) to width x height."""
    from PIL import Image as PILImage

    with PILImage.open(PHOTO) as im:
        rgb = im.convert("RGB")
    w, h = rgb.size
    crop_w, crop_h = (w, round(w * height / width)) if w * height <= h * width else (round(h * width / height), h)
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    box = (left, top, left + crop_w, top + crop_h)
    return np.ascontiguousarray(np.asarray(rgb.resize((width, height), PILImage.Resampling.BILINEAR, box=box)))


def segkit_segmenter(model: str, *, category: bool = False) -> ImageSegmenter:
    """A segmenter with only the masks its effect reads: the category mask (overlay) or the confidence masks."""
    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(MODEL_DIR / MODELS[model])),
        output_confidence_masks=not category,
        output_category_mask=category,
    )
    return ImageSegmenter.create_from_options(options)


def interleaved(a: Timed, b: Timed, rounds: int, warmup: int) -> dict[str, Any]:
    """Runs a and b alternately (order flipped every pair); medians in ms and the median pair ratio a/b.

    The verdict uses wall time. CPU time (the process's, all threads) is reported beside it: on a loaded machine it
    moves far less than wall time, and shows how many cores each side keeps busy.
    """
    for _ in range(warmup):
        a()
        b()
    wall: dict[str, list[float]] = {"a": [], "b": []}
    cpu: dict[str, list[float]] = {"a": [], "b": []}
    for i in range(rounds):
        for fn, key in ((a, "a"), (b, "b")) if i % 2 == 0 else ((b, "b"), (a, "a")):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[key].append((time.perf_counter() - start) * 1000)
            cpu[key].append((time.process_time() - start_cpu) * 1000)
    ratios = [x / y for x, y in zip(wall["a"], wall["b"], strict=True)]
    return {
        "segkit_ms": statistics.median(wall["a"]),
        "reference_ms": statistics.median(wall["b"]),
        "ratio": statistics.median(ratios),
        "segkit_cpu_ms": statistics.median(cpu["a"]),
        "reference_cpu_ms": statistics.median(cpu["b"]),
        "segkit_times": wall["a"],
        "reference_times": wall["b"],
    }


# --- references: the natural OpenCV / numpy code ----------------------------------------------------------------------


def reference_effects(image: np.ndarray, masks: dict[str, ImageSegmenterResult]) -> dict[str, Timed]:
    """The reference implementation of each effect, reading the same masks as float / category arrays."""
    import cv2

    person = masks["selfie"].confidence_masks[0].numpy_view()
    hair = masks["hair"].confidence_masks[1].numpy_view()
    categories = masks["deeplab"].category_mask.numpy_view()[:, :, 0]
    palette = np.array([c or (0, 0, 0) for c in effects.DEFAULT_PALETTE], np.uint8)
    target_lab = cv2.cvtColor(np.array([[COLOR]], np.uint8), cv2.COLOR_RGB2LAB)[0, 0].astype(np.float32)

    def blur() -> object:
        blurred = cv2.GaussianBlur(image, (0, 0), 15)
        a = person
        return (image.astype(np.float32) * a + blurred.astype(np.float32) * (1 - a)).astype(np.uint8)

    def replace() -> object:
        a = person
        return (image.astype(np.float32) * a + np.array(GREEN, np.float32) * (1 - a)).astype(np.uint8)

    def cutout() -> object:
        return np.dstack([image, (person[:, :, 0] * 255).astype(np.uint8)])

    def recolor() -> object:
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
        w = hair * np.float32(0.8)
        lab[:, :, 1:] += w * (target_lab[1:] - lab[:, :, 1:])
        return cv2.cvtColor(lab.astype(np.uint8), cv2.COLOR_LAB2RGB)

    def overlay() -> object:
        colored = palette[categories]
        mixed = cv2.addWeighted(image, 0.5, colored, 0.5, 0)
        return np.where((categories == 0)[:, :, None], image, mixed)

    return {"blur": blur, "replace": replace, "cutout": cutout, "recolor": recolor, "overlay": overlay}


def segkit_effects(
    image: np.ndarray, masks: dict[str, ImageSegmenterResult], estimate_colors: bool = True
) -> dict[str, Timed]:
    """segkit's effects with their defaults (or without the edge-colour estimate), each given the result itself."""
    return {
        "blur": lambda: effects.blur_background(image, masks["selfie"]),
        "replace": lambda: effects.replace_background(image, masks["selfie"], GREEN, estimate_colors=estimate_colors),
        "cutout": lambda: effects.cutout(image, masks["selfie"], estimate_colors=estimate_colors),
        "recolor": lambda: effects.recolor(image, masks["hair"], COLOR),
        "overlay": lambda: effects.overlay(image, masks["deeplab"]),
    }


# --- the parts ------------------------------------------------------------------------------------------------------


def run_pipeline(size: str, rounds: int, warmup: int) -> dict[str, Any]:
    """segkit segment + blur_background vs MediaPipe's sample (segment + GaussianBlur 55x55 + np.where)."""
    import cv2
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions as MpBaseOptions

    width, height = map(int, size.split("x"))
    image = photo(width, height)
    mp_options = vision.ImageSegmenterOptions(
        base_options=MpBaseOptions(model_asset_path=str(MODEL_DIR / MODELS["selfie"])), output_category_mask=True
    )
    with segkit_segmenter("selfie") as ours, vision.ImageSegmenter.create_from_options(mp_options) as theirs:
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=image)

        def segkit_pipeline() -> object:
            return effects.blur_background(image, ours.segment(image))

        def mediapipe_sample() -> object:
            category_mask = theirs.segment(mp_image).category_mask
            image_data = mp_image.numpy_view()
            blurred = cv2.GaussianBlur(image_data, (55, 55), 0)
            mask = category_mask.numpy_view()
            condition = np.stack((mask.reshape(mask.shape[:2]),) * 3, axis=-1) > 0.2  # 1.2.2's view is (H, W, 1)
            return np.where(condition, image_data, blurred)

        row = interleaved(segkit_pipeline, mediapipe_sample, rounds, warmup)
    return {"part": "pipeline", "size": size, "name": "segment+blur", **row}


def run_effects(
    size: str, names: list[str], rounds: int, warmup: int, estimate_colors: bool = True
) -> list[dict[str, Any]]:
    """Each effect alone (precomputed results) against its reference."""
    width, height = map(int, size.split("x"))
    image = photo(width, height)
    masks = {}
    for model in MODELS:
        with segkit_segmenter(model, category=model == "deeplab") as segmenter:
            masks[model] = segmenter.segment(image)
    ours, theirs = segkit_effects(image, masks, estimate_colors), reference_effects(image, masks)
    plain = () if estimate_colors else ("replace", "cutout")  # marked: the targets are for the defaults
    return [
        {
            "part": "effect",
            "size": size,
            "name": f"{name} plain" if name in plain else name,
            **interleaved(ours[name], theirs[name], rounds, warmup),
        }
        for name in names
    ]


VIDEO_MODELS = {"blur": "selfie", "replace": "selfie", "recolor": "hair", "overlay": "deeplab"}


def run_video(names: list[str], frames: int) -> list[dict[str, Any]]:
    """Transcodes a generated 720p clip with each effect; throughput from the 10th frame, start-up apart."""
    from tests.video_clip import pan_zoom_frames, write_clip

    with tempfile.TemporaryDirectory(prefix="segkit-bench-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, pan_zoom_frames(photo(512, 512), frames, 1280, 720), rate=30)
        return [video_row(name, clip, Path(tmp) / f"{name}.mp4") for name in names if name in VIDEO_MODELS]


def video_row(name: str, clip: Path, target: Path) -> dict[str, Any]:
    """One effect's transcode through the CLI's own path (``segkit.batch.Worker`` on the file, as ``segkit NAME
    clip.mp4`` runs it): steady fps (frame 10 to the end), overall fps and start-up to the first frame."""
    from segkit import batch

    stamps: list[float] = []

    def tick(done: int, total: int | None) -> None:
        stamps.append(time.perf_counter())

    rgb = {"replace": GREEN, "recolor": COLOR}.get(name, (0, 0, 0))
    hex_color = "#" + bytes(rgb).hex()
    task = batch.Task(
        model=str(MODEL_DIR / MODELS[VIDEO_MODELS[name]]), command=cast("batch.Command", name),
        background=hex_color if name == "replace" else None, color=hex_color if name == "recolor" else None,
    )  # fmt: skip
    worker = batch.Worker(task, video_progress=tick, dedicated=True)  # the process tuned as the command line's
    start = time.perf_counter()
    try:
        outcome = worker.process_file(batch.FileJob(clip, (target,)), overwrite=True)
    finally:
        worker.close()
    if outcome.status != "done":
        raise RuntimeError(f"segkit {name} {clip} failed: {outcome.error}")
    skip = min(10, len(stamps) - 2)
    steady = (len(stamps) - 1 - skip) / (stamps[-1] - stamps[skip])
    return {
        "part": "video", "name": name, "frames": len(stamps), "fps": steady,
        "overall_fps": len(stamps) / (stamps[-1] - start), "startup_s": stamps[0] - start,
    }  # fmt: skip


# --- report ---------------------------------------------------------------------------------------------------------


def verdict(row: dict[str, Any]) -> str:
    if row["part"] == "video":
        return "PASS" if row["fps"] >= VIDEO_TARGET_FPS else "MISS"
    return "PASS" if row["ratio"] <= TARGETS.get(row["size"], 0.5) else "MISS"


def print_report(rows: list[dict[str, Any]]) -> None:
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    header = f"{'part':9s} {'size':9s} {'name':13s} {'segkit ms':>10s} {'ref ms':>8s} {'ratio':>7s} {'target':>7s}"
    print(f"{header}  verdict   CPU ms segkit / ref")
    for row in rows:
        if row["part"] == "video":
            continue
        target = TARGETS.get(row["size"], 0.5)
        print(
            f"{row['part']:9s} {row['size']:9s} {row['name']:13s} {row['segkit_ms']:10.2f} {row['reference_ms']:8.2f} "
            f"{row['ratio']:6.2f}x {target:6.2f}x  {verdict(row):7s}   "
            f"{row['segkit_cpu_ms']:.1f} / {row['reference_cpu_ms']:.1f}"
        )
    video_rows = [r for r in rows if r["part"] == "video"]
    if video_rows:
        print(f"\nvideo 1280x720 (target >= {VIDEO_TARGET_FPS:.0f} fps)")
        for row in video_rows:
            print(
                f"  segkit {row['name']:8s} {row['fps']:6.1f} fps steady, {row['overall_fps']:6.1f} fps overall, "
                f"start-up {row['startup_s']:.2f} s, {row['frames']} frames  {verdict(row)}"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=list(TARGETS), help="input sizes WxH")
    p.add_argument("--effects", nargs="+", default=list(EFFECT_NAMES), choices=EFFECT_NAMES)
    p.add_argument("--rounds", type=int, default=30, help="interleaved pairs per row")
    p.add_argument("--warmup", type=int, default=3, help="untimed pairs before the rounds")
    p.add_argument("--video", action="store_true", help="also transcode a generated 720p clip with each effect")
    p.add_argument("--frames", type=int, default=90, help="frames of the generated clip")
    p.add_argument("--no-pipeline", action="store_true", help="skip the MediaPipe sample-pipeline comparison")
    p.add_argument("--json", metavar="FILE", help="write every raw figure to FILE")
    p.add_argument("--quick", action="store_true", help="smoke test: 3 pairs, 1 warm-up, 20 frames")
    p.add_argument(
        "--no-estimate", action="store_true", help="replace and cutout without the edge-colour estimate, for comparison"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.frames = 3, 1, 20
    rows: list[dict[str, Any]] = []
    for size in args.sizes:
        if not args.no_pipeline:
            rows.append(run_pipeline(size, args.rounds, args.warmup))
        rows.extend(run_effects(size, args.effects, args.rounds, args.warmup, not args.no_estimate))
    if args.video:
        rows.extend(run_video(args.effects, args.frames))
    for row in rows:
        row["verdict"] = verdict(row)
    print_report(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "load": os.getloadavg()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
