"""Folder throughput: images/s of ``segkit blur|replace FOLDER`` with 1 and N workers, on a local Ray, and against a
sequential MediaPipe + OpenCV script doing the same job.

```
.venv/bin/python benchmarks/bench_throughput.py            # full: 200 + 20 files (replace: 100 + 10), 3 rounds
.venv/bin/python benchmarks/bench_throughput.py --quick    # smoke run: 12 + 4 files (replace: 6 + 2), 1 round
.venv/bin/python benchmarks/bench_throughput.py --jobs blur --no-ray --rounds 5 --json out.json
```

Jobs (folders generated into a temporary directory from random crops of the photos in ``../shared/testdata``):
``blur`` = background blur of 640x480 JPEGs, ``replace`` = background replaced by a color at 1280x720 (JPEG, half
as many files: 3x the pixels each). The full run takes about 3 minutes on 2 idle cores, most of it start-ups.
Every runner is a fresh process started the way a user would start it: the real ``segkit`` console script
(``segkit blur DIR --out OUT/ --workers N --quiet``, with ``--engine ray`` for Ray) and, for the reference, this file
with ``--reference`` (mediapipe 1.2.2 ImageSegmenter on ``cv2.imread`` pixels, then ``cv2.GaussianBlur(55x55)`` +
``np.where`` for blur, an alpha blend with the color for replace, ``cv2.imwrite``), one file after another.

Start-up (imports, model load, worker or Ray start) is separated from throughput by running each runner on a large
folder (``--files``) and on a small one (``--small``): throughput = (files - small) / (t_large - t_small), start-up =
t_small - small / throughput. Runners and folder sizes are interleaved within each round; times are medians over
the rounds. The outputs of ``--workers 1``, ``--workers N`` and Ray are compared byte for byte (the run exits 1 if
they differ or a runner fails); the targets (``--workers 2`` >= 1.7x ``--workers 1`` and >= 2x MediaPipe + OpenCV,
Ray >= 0.7x the local pool) are reported PASS/MISS and never fail the run. CPU ms per image (user + system of the
runner and its worker processes, large minus small folder, per extra image) shows how many cores each runner keeps
busy: the reference is one process, but MediaPipe's graph and OpenCV run threads of their own. Ray's daemons are not
children of the runner, so its CPU figure misses them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO.parent / "shared" / "testdata"
PHOTOS = ("astronaut.png", "cat.jpg", "cat_large.jpg", "cats_and_dogs.jpg", "segmentation_input_rotation0.jpg")
MODEL = "selfie_segmenter"
REPLACE_COLOR = (0, 177, 64)


@dataclass(frozen=True)
class FolderJob:
    """One benchmark job: the segkit command line, the size of the JPEGs it runs on, and the share of ``--files``
    and ``--small`` it uses (the 1280x720 job has 3x the pixels per file: half the files keep the run short)."""

    name: str
    size: tuple[int, int]
    segkit_args: tuple[str, ...]
    share: float = 1.0

    def counts(self, small: int, large: int) -> tuple[int, int]:
        """The number of files in this job's small and large folders."""
        return max(1, round(small * self.share)), max(2, round(large * self.share))


JOBS = {
    "blur": FolderJob("blur", (640, 480), ("blur",)),
    "replace": FolderJob("replace", (1280, 720), ("replace", "--background", "#00b140"), share=0.5),
}


# --- the MediaPipe + OpenCV reference script ------------------------------------------------------------------------


def reference(job: str, source: Path, out: Path, model: Path) -> None:
    """The sequential MediaPipe + OpenCV version of a job: every JPEG under ``source`` to the same name under ``out``.

    Blur is MediaPipe's sample recipe (GaussianBlur 55x55 where the person probability is below 0.5); replace blends
    the image with the color by the person probability. Both read and write with OpenCV (JPEG quality 95, as segkit).
    """
    import cv2
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model)), output_confidence_masks=True
    )
    color_bgr = np.array(REPLACE_COLOR[::-1], np.float32)
    out.mkdir(parents=True, exist_ok=True)
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        for path in sorted(source.glob("*.jpg")):
            bgr = cv2.imread(str(path))
            if bgr is None:
                raise RuntimeError(f"OpenCV cannot read {path}")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            person = result.confidence_masks[0].numpy_view().reshape(bgr.shape[:2])
            if job == "blur":
                blurred = cv2.GaussianBlur(bgr, (55, 55), 0)
                output = np.where(np.stack((person,) * 3, axis=-1) > 0.5, bgr, blurred)
            else:
                alpha = person[:, :, None]
                output = (bgr * alpha + color_bgr * (1.0 - alpha) + 0.5).astype(np.uint8)
            cv2.imwrite(str(out / path.name), output, [cv2.IMWRITE_JPEG_QUALITY, 95])


# --- inputs ---------------------------------------------------------------------------------------------------------


def make_folder(dest: Path, count: int, size: tuple[int, int], seed: int) -> None:
    """``count`` distinct JPEGs of ``size`` under ``dest``: random crops (at the target aspect) of the test photos."""
    rng = np.random.default_rng(seed)
    width, height = size
    photos = []
    for name in PHOTOS:
        with PILImage.open(TESTDATA / name) as im:
            photos.append(im.convert("RGB"))
    dest.mkdir(parents=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        scale = rng.uniform(0.6, 1.0) * min(photo.width / width, photo.height / height)
        w, h = round(width * scale), round(height * scale)
        x, y = int(rng.integers(0, photo.width - w + 1)), int(rng.integers(0, photo.height - h + 1))
        crop = photo.crop((x, y, x + w, y + h)).resize(size, PILImage.Resampling.BILINEAR)
        crop.save(dest / f"img_{i:05d}.jpg", quality=90)


# --- runners --------------------------------------------------------------------------------------------------------


def runner_commands(job: FolderJob, workers: int, with_ray: bool) -> dict[str, list[str]]:
    """Command-line prefixes (completed by ``SRC --out OUT``) of every runner of ``job``."""
    segkit = [str(Path(sys.executable).with_name("segkit")), *job.segkit_args, "--model", MODEL, "--quiet"]
    commands = {
        "segkit --workers 1": [*segkit, "--workers", "1"],
        f"segkit --workers {workers}": [*segkit, "--workers", str(workers)],
        "mediapipe+opencv": [sys.executable, str(Path(__file__).resolve()), "--reference", job.name],
    }
    if with_ray:
        commands[f"segkit --engine ray --workers {workers}"] = [*segkit, "--engine", "ray", "--workers", str(workers)]
    return commands


def _children_cpu() -> float:
    """CPU seconds (user + system) of every waited-for child process so far, their own children included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(command: list[str], source: Path, out: Path, timeout: float) -> tuple[float, float]:
    """Wall and CPU seconds of one runner over ``source`` into a fresh ``out`` (CPU: the process and its workers;
    Ray's daemons are not its children and are not counted); RuntimeError with its stderr if it fails."""
    shutil.rmtree(out, ignore_errors=True)
    start, start_cpu = time.perf_counter(), _children_cpu()
    full = [*command, str(source), "--out", f"{out}{os.sep}"]  # a trailing separator: --out is a folder
    proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - start_cpu
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return elapsed, cpu


def same_outputs(a: Path, b: Path) -> bool:
    """Whether two output folders hold the same files with the same bytes."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


def measure(job: FolderJob, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Times every runner of ``job`` on the small and large folders, interleaved, for ``args.rounds`` rounds."""
    folders = {"small": work / f"{job.name}_small", "large": work / f"{job.name}_large"}
    small, large = job.counts(args.small, args.files)
    make_folder(folders["small"], small, job.size, seed=1)
    make_folder(folders["large"], large, job.size, seed=2)
    commands = runner_commands(job, args.workers, args.ray)
    times: dict[str, dict[str, list[float]]] = {name: {"small": [], "large": []} for name in commands}
    cpu: dict[str, dict[str, list[float]]] = {name: {"small": [], "large": []} for name in commands}
    order = [(name, size) for name in commands for size in ("small", "large")]
    outs = {(name, size): work / f"{job.name}_out_{i}_{size}" for i, (name, size) in enumerate(order)}
    for round_index in range(args.rounds):
        shift = (round_index * 3) % len(order)
        for name, size in order[shift:] + order[:shift]:
            seconds, cpu_seconds = timed_run(commands[name], folders[size], outs[name, size], args.timeout)
            times[name][size].append(seconds)
            cpu[name][size].append(cpu_seconds)
            print(f"  {job.name} round {round_index + 1}: {name:<36} {size:>5} {seconds:6.2f} s", flush=True)
    baseline = outs["segkit --workers 1", "large"]
    identical = {name: same_outputs(baseline, outs[name, "large"]) for name in commands if name.startswith("segkit ")}
    return {
        "job": job.name,
        "size": f"{job.size[0]}x{job.size[1]}",
        "files": {"small": small, "large": large},
        "commands": {name: " ".join(command) for name, command in commands.items()},
        "times": times,
        "cpu": cpu,
        "rates": {name: rates(t, small, large, cpu[name]) for name, t in times.items()},
        "identical_to_workers_1": identical,
    }


def rates(times: dict[str, list[float]], small: int, large: int, cpu: dict[str, list[float]]) -> dict[str, float]:
    """Throughput (images/s after start-up), start-up seconds and CPU ms per image (after start-up, all cores
    together) from the median small and large folder times."""
    t_small, t_large = statistics.median(times["small"]), statistics.median(times["large"])
    throughput = (large - small) / (t_large - t_small) if t_large > t_small else float("nan")
    cpu_ms = (statistics.median(cpu["large"]) - statistics.median(cpu["small"])) / (large - small) * 1000
    return {
        "cpu_ms_per_image": cpu_ms,
        "t_small": t_small,
        "t_large": t_large,
        "throughput": throughput,
        "startup": t_small - small / throughput,
        "overall": large / t_large,
    }


# --- report ---------------------------------------------------------------------------------------------------------


def _check(label: str, value: float, limit: float) -> str:
    """One target line: PASS or MISS, the measured ratio and the limit (n/a when the timing was too noisy)."""
    if value != value:
        return f"n/a   {label}: the large folder was not slower than the small one (too noisy; use more --files)"
    verdict = "PASS" if value >= limit else "MISS"
    return f"{verdict}  {label}: {value:.2f}x (target >= {limit:.2f}x)"


def _names(workers: int) -> tuple[str, str, str]:
    """The runner names of ``--workers 1``, the pool of N and Ray."""
    return "segkit --workers 1", f"segkit --workers {workers}", f"segkit --engine ray --workers {workers}"


def report(results: list[dict[str, Any]], workers: int) -> list[str]:
    """The table and the PASS/MISS lines."""
    lines = [
        f"{'job':<8} {'size':<9} {'runner':<36} {'images/s':>9} {'start-up s':>10} {'t small':>8} {'t large':>8}"
        f" {'CPU ms/image':>12}",
        "-" * 107,
    ]
    for r in results:
        for name, rate in r["rates"].items():
            lines.append(
                f"{r['job']:<8} {r['size']:<9} {name:<36} {rate['throughput']:9.1f} {rate['startup']:10.2f}"
                f" {rate['t_small']:8.2f} {rate['t_large']:8.2f} {rate['cpu_ms_per_image']:12.1f}"
            )
    lines.append("")
    single, pool, ray = _names(workers)
    for r in results:
        rate = {name: v["throughput"] for name, v in r["rates"].items()}
        tag = f"{r['job']} {r['size']}"
        lines.append(_check(f"{tag} --workers {workers} / --workers 1", rate[pool] / rate[single], 1.7))
        lines.append(
            _check(f"{tag} --workers {workers} / MediaPipe+OpenCV", rate[pool] / rate["mediapipe+opencv"], 2.0)
        )
        if ray in rate:
            lines.append(_check(f"{tag} Ray / local pool (after start-up)", rate[ray] / rate[pool], 0.7))
        for name, same in r["identical_to_workers_1"].items():
            if name != single:
                lines.append(f"{'same' if same else 'DIFFERENT'}  {tag} outputs of {name} vs --workers 1")
    return lines


def _fmt(value: float, spec: str = ".1f", suffix: str = "") -> str:
    """A figure for the table, or n/a when the timing could not give one (NaN)."""
    return "n/a" if value != value else f"{value:{spec}}{suffix}"


def markdown(results: list[dict[str, Any]], workers: int, price: float) -> list[str]:
    """The README / docs/scaling.md table, and the per-core rate and cost of a million images per job."""
    single, pool, _ = _names(workers)
    lines = [
        "| job | runner | images/s after start-up | start-up s | CPU ms per image | vs `--workers 1` "
        "| vs MediaPipe+OpenCV |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rate = {name: v["throughput"] for name, v in r["rates"].items()}
        for name, v in r["rates"].items():
            shown = "MediaPipe + OpenCV script" if name == "mediapipe+opencv" else f"`{name}`"
            versus = [_fmt(v["throughput"] / rate[other], ".2f", "x") for other in (single, "mediapipe+opencv")]
            lines.append(
                f"| {r['job']} {r['size']} | {shown} | {_fmt(v['throughput'])} | {_fmt(v['startup'])} "
                f"| {_fmt(v['cpu_ms_per_image'])} | {versus[0]} | {versus[1]} |"
            )
    lines.append("")
    for r in results:
        per_core = r["rates"][pool]["throughput"] / workers
        core_hours = 1e6 / per_core / 3600 if per_core > 0 else float("nan")
        lines.append(
            f"- {r['job']} {r['size']}: {_fmt(per_core)} images/s per core (`--workers {workers}` / {workers}); "
            f"a million images = {_fmt(core_hours, '.0f')} core-hours = ${_fmt(core_hours * price, '.2f')} "
            f"at ${price}/core-hour"
        )
    return lines


# --- main -----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks the folders and rounds for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 12 + 4 files, 1 round")
    parser.add_argument("--files", type=int, default=200, help="blur's large folder (default 200; replace: half)")
    parser.add_argument("--small", type=int, default=20, help="blur's small folder (default 20; replace: half)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="N for the pool and Ray")
    parser.add_argument("--jobs", default="blur,replace", help="comma-separated: blur, replace")
    parser.add_argument("--no-ray", dest="ray", action="store_false", help="leave out the local Ray runner")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one runner may take")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--markdown", action="store_true", help="also print the table for README / docs/scaling.md")
    parser.add_argument(
        "--price", type=float, default=0.05, metavar="USD",
        help="price of one core-hour for the cost of a million images (default 0.05: an assumption, not a quote)",
    )  # fmt: skip
    parser.add_argument("--reference", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("source", nargs="?", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.small, args.rounds = 12, 4, 1
    if not 0 < args.small < args.files:
        parser.error(f"need 0 < --small < --files, got {args.small} and {args.files}")
    unknown = set(args.jobs.split(",")) - set(JOBS)
    if unknown:
        parser.error(f"unknown job(s) {', '.join(sorted(unknown))}; known: {', '.join(JOBS)}")
    return args


def model_path() -> Path:
    """The selfie model from ``$SEGKIT_MODEL_DIR`` (default ``../shared/models``)."""
    return Path(os.environ.get("SEGKIT_MODEL_DIR", REPO.parent / "shared" / "models")) / f"{MODEL}.tflite"


def main(argv: list[str] | None = None) -> int:
    """Runs the jobs, prints the table and the targets; exit 1 if a runner failed or outputs differ."""
    args = parse_args(argv)
    if args.reference:
        reference(args.reference, args.source, args.out, model_path())
        return 0
    os.environ.setdefault("SEGKIT_MODEL_DIR", str(model_path().parent))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores, load {load:.2f}; "
        f"{args.files} + {args.small} files (replace: half), {args.rounds} round(s), N = {args.workers}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="segkit_throughput_") as tmp:
        try:
            for name in args.jobs.split(","):
                results.append(measure(JOBS[name], args, Path(tmp)))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"runner failed: {e}", file=sys.stderr)
            return 1
    print("\n".join(["", *report(results, args.workers)]))
    if args.markdown:
        print("\n".join(["", *markdown(results, args.workers, args.price)]))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}))
    return 0 if all(all(r["identical_to_workers_1"].values()) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
