"""segkit vs MediaPipe 1.2.2 ImageSegmenter: latency, segkit's stage breakdown, memory, import time, install size.

For each model x input size x mask configuration, both libraries segment the same real photo interleaved
(segkit, MediaPipe, segkit, ...) after warm-up; the table shows median, p10 and p90 and the segkit/MediaPipe ratio
computed pair by pair. Timing never fails the run: the exit status is non-zero only when a configuration raises
or segkit's masks disagree with MediaPipe's beyond the hard floor (category agreement < 99.9 % or confidence
max |diff| > 1e-3). ``--quick`` is the CI smoke test: two pairs per configuration, no subprocess footprint.

    .venv/bin/python benchmarks/bench.py [--models M ...] [--sizes 640x480 1280x720] [--threads 2]
        [--rounds 40] [--delegate cpu|gpu] [--pin [CPUS]] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import os
import platform
import sys
import tempfile
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _footprint
import numpy as np
from _report import breakdown_table, fmt, footprint_report, targets, timing_table
from _runners import CONFIGS, MediaPipeLib, SegkitLib, agreement, breakdown, make_input, resolve_model

DEFAULT_MODELS = ("selfie_segmenter", "selfie_segmenter_landscape", "hair_segmenter", "deeplabv3")
MP_THREADS_NOTE = "MediaPipe's thread count cannot be set from its Python API (it runs its own graph executor)."


def _split(values: list[str]) -> list[str]:
    """Accepts both ``a b`` and ``a,b``."""
    return [v for item in values for v in item.split(",") if v]


def _size(text: str) -> tuple[int, int]:
    """``WxH`` as (width, height)."""
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        help="model names in $SEGKIT_MODEL_DIR (or paths); default: the four shared models",
    )
    p.add_argument("--sizes", nargs="+", default=["640x480", "1280x720"], help="input sizes WxH")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), help="mask configurations: conf, cat, both")
    p.add_argument("--threads", type=int, default=2, help="segkit's num_threads (default 2)")
    p.add_argument("--rounds", type=int, default=40, help="interleaved segkit/MediaPipe pairs per configuration")
    p.add_argument("--warmup", type=int, default=5, help="untimed pairs before the rounds")
    p.add_argument("--breakdown-runs", type=int, default=None, help="hooked segkit runs for the stage breakdown")
    p.add_argument(
        "--delegate",
        choices=("cpu", "gpu"),
        default="cpu",
        help="segkit's accelerator; MediaPipe cannot run on this machine's GPU (column n/a)",
    )
    p.add_argument("--gpu-precision", choices=("fp16", "fp32"), default="fp16", help="segkit GPU precision")
    p.add_argument(
        "--pin",
        nargs="?",
        const="0",
        default=None,
        metavar="CPUS",
        help="pin this process (both libraries) to CPUS, e.g. 0 or 0,1 (default when given: 0)",
    )
    p.add_argument("--import-repeats", type=int, default=5, help="fresh processes per library for import time")
    p.add_argument("--no-footprint", action="store_true", help="skip the import-time and peak-RSS subprocesses")
    p.add_argument("--json", metavar="FILE", help="write every raw figure to FILE")
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke test: 2 pairs per configuration, agreement checked, no subprocess footprint",
    )
    args = p.parse_args(argv)
    args.models = _split(args.models)
    args.sizes = [_size(s) for s in _split(args.sizes)]
    args.configs = _split(args.configs)
    unknown = set(args.configs) - set(CONFIGS)
    if unknown:
        p.error(f"unknown configuration(s) {sorted(unknown)}; choose from {list(CONFIGS)}")
    if args.quick:
        args.rounds, args.warmup, args.no_footprint = 2, 1, True
        args.breakdown_runs = args.breakdown_runs or 1
    if args.breakdown_runs is None:
        args.breakdown_runs = max(5, args.rounds // 2)
    return args


def pin(cpus: str) -> set[int]:
    """Pins every thread of this process (and the threads it starts later) to ``cpus``, as ``taskset -c`` does."""
    wanted = {int(c) for c in cpus.split(",")}
    for tid in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(tid), wanted)
    return wanted


def stats(values: list[float], scale: float = 1e3) -> dict[str, float]:
    """Median, p10 and p90 of ``values`` times ``scale`` (seconds to ms by default; NaN when empty)."""
    if not values:
        return {"median": float("nan"), "p10": float("nan"), "p90": float("nan")}
    v = np.asarray(values) * scale
    return {"median": float(np.median(v)), "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90))}


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def run_config(sk: SegkitLib | None, mp: MediaPipeLib | None, args: argparse.Namespace) -> dict[str, Any]:
    """Agreement, warm-up, interleaved rounds and segkit's stage breakdown for one configuration.

    A library that raises is dropped from the rest of the configuration (its error is recorded); the other
    one goes on being timed alone. With segkit on the GPU, MediaPipe (CPU) is only the agreement reference.
    """
    row: dict[str, Any] = {"errors": {}, "times": {"segkit": [], "mediapipe": []}, "agreement": None}
    libs = [lib for lib in (sk, mp) if lib is not None]

    def attempt(lib: Any, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:  # reported in the table; the exit status says it failed
            row["errors"][lib.name] = _error(exc)
            row.setdefault("tracebacks", {})[lib.name] = traceback.format_exc()
            libs.remove(lib)
            return None

    masks = {lib.name: attempt(lib, lib.masks) for lib in list(libs)}
    if sk in libs and mp in libs:
        agree = agreement(masks["segkit"], masks["mediapipe"])
        row["agreement"] = vars(agree) | {"ok": agree.ok()}
    if args.delegate == "gpu" and mp in libs:
        libs.remove(mp)
    for _ in range(args.warmup):
        for lib in list(libs):
            attempt(lib, lib.call)
    gc.collect()
    for _ in range(args.rounds):
        for lib in list(libs):
            t = attempt(lib, lib.call)
            if t is not None:
                row["times"][lib.name].append(t)
    if sk in libs:
        b = attempt(sk, lambda: breakdown(sk, args.breakdown_runs))
        if b is not None:
            row["breakdown"] = {"total": b.total, "raw_invoke": b.raw_invoke, "stages": b.stages}
    return row


def _create(make: Any) -> tuple[Any, str | None]:
    """(segmenter, None), or (None, the error) when creation raises."""
    try:
        return make(), None
    except Exception as exc:
        return None, _error(exc)


def bench_model(
    model: Path, inputs: dict[tuple[int, int], tuple[np.ndarray, str]], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every size x configuration of one model; the segmenters are created once per configuration."""
    libs: dict[str, tuple[Any, str | None, Any, str | None]] = {}
    for config in args.configs:
        conf, cat = CONFIGS[config]
        sk = _create(functools.partial(SegkitLib, model, conf, cat, args.threads, args.delegate, args.gpu_precision))
        mp = _create(functools.partial(MediaPipeLib, model, conf, cat))
        libs[config] = sk + mp
    rows = []
    for (w, h), (pixels, _) in inputs.items():
        for config in args.configs:
            sk, sk_err, mp, mp_err = libs[config]
            for lib in (sk, mp):
                if lib is not None:
                    lib.set_image(pixels)
            row = run_config(sk, mp, args)
            row.update(
                model=model.stem,
                size=f"{w}x{h}",
                config=config,
                accelerator=sk.seg.accelerator if sk is not None else None,
            )
            row["errors"].update({k: v for k, v in (("segkit", sk_err), ("mediapipe", mp_err)) if v})
            summarize(row)
            rows.append(row)
            s = row["summary"]
            print(
                f"  {row['model']} {row['size']} {config}: segkit {fmt(s['segkit']['access']['median'])} ms, "
                f"MediaPipe {fmt(s['mediapipe']['access']['median'])} ms"
                + (f"  errors: {row['errors']}" if row["errors"] else ""),
                flush=True,
            )
    for sk, _, mp, _ in libs.values():
        for lib in (sk, mp):
            if lib is not None:
                lib.close()
    return rows


def failed(row: dict[str, Any], args: argparse.Namespace) -> bool:
    """A CPU configuration that raised or whose masks disagree beyond the hard floor (GPU rows only report)."""
    if args.delegate != "cpu":
        return False
    return bool(row["errors"]) or (row["agreement"] is not None and not row["agreement"]["ok"])


def summarize(row: dict[str, Any]) -> None:
    """Adds medians and percentiles (ms) and the pair-by-pair ratios to a row."""
    summary: dict[str, Any] = {}
    for lib, runs in row["times"].items():
        summary[lib] = {kind: stats([r[i] for r in runs]) for i, kind in enumerate(("call", "access", "cpu"))}
    sk, mp = row["times"]["segkit"], row["times"]["mediapipe"]
    pairs = min(len(sk), len(mp))
    summary["ratio"] = stats([sk[i][1] / mp[i][1] for i in range(pairs)], scale=1)
    summary["ratio_call_only"] = stats([sk[i][0] / mp[i][0] for i in range(pairs)], scale=1)
    b = row.get("breakdown")
    if b:
        summary["stages"] = {s: stats(v)["median"] for s, v in b["stages"].items()}
        summary["total"] = stats(b["total"])["median"]
        summary["raw_invoke"] = stats(b["raw_invoke"])["median"]
        over = [t - r for t, r in zip(b["total"], b["raw_invoke"], strict=True)]
        summary["overhead_ms"] = stats(over)["median"]
        summary["overhead_pct"] = stats([o / r for o, r in zip(over, b["raw_invoke"], strict=True)], scale=100)[
            "median"
        ]
    row["summary"] = summary


def measure_footprint(args: argparse.Namespace, models: list[Path]) -> dict[str, Any]:
    """Installed sizes always; import times and peak RSS (640x480, both masks) unless skipped."""
    fp: dict[str, Any] = {"installed": _footprint.installed_sizes()}
    if args.no_footprint:
        return fp
    fp["import_s"] = _footprint.import_times(args.import_repeats)
    pixels, _ = make_input(640, 480)
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "input.npy"
        np.save(npy, pixels)
        fp["rss"] = {}
        for model in models:
            fp["rss"][model.stem] = _footprint.peak_rss(model, npy)
    return fp


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("segkit", "mediapipe", "ai-edge-litert", "numpy", "pillow"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def run_meta(args: argparse.Namespace, pinned: list[int] | None) -> dict[str, Any]:
    """The machine, versions, load and set-up of this run."""
    return {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "versions": _versions(),
        "loadavg_start": os.getloadavg(),
        "threads": args.threads,
        "pinned": pinned,
        "delegate": args.delegate,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "quick": args.quick,
        "times_fields": ["call_s", "access_s", "cpu_s"],
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
    }


def print_header(args: argparse.Namespace, meta: dict[str, Any]) -> None:
    """What ran where, so that a table can be judged later."""
    print(
        f"segkit benchmark {meta['started']} on {meta['host']}: {meta['cpus']} CPUs, affinity {meta['affinity']}, "
        f"load average {meta['loadavg_start'][0]:.2f} at start"
    )
    print(f"versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}")
    print(f"segkit num_threads={args.threads}, delegate={args.delegate}; {MP_THREADS_NOTE}")
    print(
        f"{args.warmup} warm-up pairs, then {args.rounds} interleaved pairs (segkit, MediaPipe) per configuration; "
        f"times are segment() + numpy_view() of every mask unless marked no-access",
        flush=True,
    )
    if args.delegate == "gpu":
        print(
            "MediaPipe column n/a: MediaPipe 1.2.2 refuses this machine's GPU ('GPU emulation detected, but not "
            "supported'); agreement is segkit GPU vs MediaPipe CPU, reported only (GPU rows never fail the run)"
        )
    if meta["malloc_env"]:
        print(f"note: malloc environment set: {meta['malloc_env']}")


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; 0 unless a configuration raised or the masks disagree beyond the hard floor."""
    args = parse_args(argv)
    pinned = sorted(pin(args.pin)) if args.pin else None
    meta = run_meta(args, pinned)
    print_header(args, meta)
    rows: list[dict[str, Any]] = []
    inputs = {size: make_input(*size) for size in args.sizes}
    for w, h in args.sizes:
        print(f"input {w}x{h}: {inputs[(w, h)][1]}")
    models = [resolve_model(m) for m in args.models]
    for model in models:
        rows += bench_model(model, inputs, args)
    fp = measure_footprint(args, models)
    fatal = any(failed(r, args) for r in rows) or any(
        "error" in x for res in fp.get("rss", {}).values() for x in res.values()
    )
    meta["loadavg_end"] = os.getloadavg()
    print(
        f"\nLatency, ms (load average {meta['loadavg_start'][0]:.2f} at start, {meta['loadavg_end'][0]:.2f} "
        f"at end; ratio = median of per-pair segkit/MediaPipe, with numpy_view() access)"
    )
    print(timing_table(rows))
    print(
        "\nsegkit stage breakdown, ms medians (hooked runs; raw invoke = _runtime.run(tensor) alone, right after "
        "each run; overhead = total - raw invoke)"
    )
    print(breakdown_table(rows))
    print("\nFootprint")
    print(footprint_report(fp))
    print("\nTargets (timing never fails the run)")
    print("\n".join(targets(rows, fp, args.threads == 2 and not args.pin and args.delegate == "cpu")))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows, "footprint": fp}, indent=1))
        print(f"\nraw figures written to {args.json}")
    if fatal:
        print("\nFAILED: a configuration raised or segkit's masks disagree with MediaPipe's beyond the hard floor")
    return 1 if fatal else 0


if __name__ == "__main__":
    sys.exit(main())
