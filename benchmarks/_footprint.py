"""Footprint of segkit vs MediaPipe: import time, peak RSS of a process that segments one image, installed size.

Run as a script (``python _footprint.py child LIB MODEL IMAGE.npy``) it is the child process that imports one
library, segments one image and prints its figures as JSON.
"""

from __future__ import annotations

import importlib
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LIBS = ("segkit", "mediapipe")
IMPORTS = {
    "segkit": "import segkit",
    "mediapipe": "import mediapipe; from mediapipe.tasks.python import vision",
}
ROOT_DISTS = {"segkit": "segkit", "mediapipe": "mediapipe"}


def _peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM), in KiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(lib: str, model: str, image_path: str) -> None:
    """Imports ``lib``, creates a both-masks segmenter, segments one image, prints timings and peak RSS."""
    t0 = time.perf_counter()
    # the same names from either library (mediapipe is untyped, so the module is Any)
    api: Any = importlib.import_module("segkit" if lib == "segkit" else "mediapipe.tasks.python.vision")
    core: Any = importlib.import_module("segkit" if lib == "segkit" else "mediapipe.tasks.python")
    image_api: Any = importlib.import_module(
        "segkit" if lib == "segkit" else "mediapipe.tasks.python.vision.core.image"
    )
    BaseOptions, Image, ImageFormat = core.BaseOptions, image_api.Image, image_api.ImageFormat
    ImageSegmenter, ImageSegmenterOptions = api.ImageSegmenter, api.ImageSegmenterOptions
    t1 = time.perf_counter()
    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=model), output_confidence_masks=True, output_category_mask=True
    )
    seg = ImageSegmenter.create_from_options(options)
    t2 = time.perf_counter()
    import numpy as np

    result = seg.segment(Image(image_format=ImageFormat.SRGB, data=np.load(image_path)))
    masks = [m.numpy_view() for m in result.confidence_masks] + [result.category_mask.numpy_view()]
    t3 = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "create_s": t2 - t1,
                "segment_s": t3 - t2,
                "first_mask_s": t3 - t0,
                "peak_rss_mb": _peak_rss_kb() / 1024,
                "masks": len(masks),
            }
        )
    )
    seg.close()


def _run_json(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Runs a child that prints one JSON line last; RuntimeError with its stderr tail on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"child exited {proc.returncode}: {last[:200]}")
    row: dict[str, Any] = json.loads(lines[-1])
    return row


def import_times(repeats: int, timeout: float = 120) -> dict[str, list[float]]:
    """Seconds to import each library, measured inside fresh interpreters, the libraries alternating."""
    out: dict[str, list[float]] = {lib: [] for lib in LIBS}
    for _ in range(repeats):
        for lib in LIBS:
            code = (
                "import time, json; t0 = time.perf_counter(); "
                + IMPORTS[lib]
                + "; print(json.dumps({'s': time.perf_counter() - t0}))"
            )
            out[lib].append(_run_json([sys.executable, "-c", code], timeout)["s"])
    return out


def peak_rss(model: Path, image_npy: Path, timeout: float = 120) -> dict[str, dict[str, Any]]:
    """Per library, the figures of a fresh process that segments one image with ``model`` (or its ``error``)."""
    out: dict[str, dict[str, Any]] = {}
    for lib in LIBS:
        cmd = [sys.executable, __file__, "child", lib, str(model), str(image_npy)]
        try:
            out[lib] = _run_json(cmd, timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            out[lib] = {"error": str(exc)}
    return out


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(text: str) -> str | None:
    """The distribution a requirement names, or None when its marker excludes it (extras, other platforms)."""
    try:
        from packaging.requirements import Requirement

        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            return None
        return req.name
    except ImportError:
        name, _, marker = text.partition(";")
        if "extra" in marker:
            return None
        return re.split(r"[\s<>=!~\[(]", name.strip(), maxsplit=1)[0]


def _dist_bytes(dist: Any) -> tuple[int, int]:
    """(bytes, files) of an installed distribution; an editable install counts its package source tree."""
    seen: set[Path] = set()
    total = 0
    for f in dist.files or []:
        path = Path(dist.locate_file(f)).resolve()
        if path not in seen and path.is_file():
            seen.add(path)
            total += path.stat().st_size
    direct = dist.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        import importlib.util

        for top in (dist.read_text("top_level.txt") or dist.metadata["Name"]).split():
            spec = importlib.util.find_spec(top.replace("-", "_"))
            if spec and spec.submodule_search_locations:
                for root in spec.submodule_search_locations:
                    for path in Path(root).rglob("*"):
                        if path.is_file() and "__pycache__" not in path.parts and path.resolve() not in seen:
                            seen.add(path.resolve())
                            total += path.stat().st_size
    return total, len(seen)


def closure(root: str) -> dict[str, int]:
    """Bytes of each distribution in ``root``'s installed dependency closure (extras excluded)."""
    from importlib import metadata

    sizes: dict[str, int] = {}
    stack = [root]
    while stack:
        name = _canonical(stack.pop())
        if name in sizes:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            sizes[name] = 0
            continue
        sizes[name] = _dist_bytes(dist)[0]
        stack.extend(r for r in map(_requirement, dist.requires or []) if r)
    return sizes


def installed_sizes() -> dict[str, Any]:
    """Installed bytes of each library with its dependency closure, the part they share, and what is exclusive."""
    sets = {lib: closure(ROOT_DISTS[lib]) for lib in LIBS}
    shared = set(sets["segkit"]) & set(sets["mediapipe"])
    out: dict[str, Any] = {"shared_dists": sorted(shared)}
    for lib, sizes in sets.items():
        out[lib] = {
            "total_bytes": sum(sizes.values()),
            "exclusive_bytes": sum(v for k, v in sizes.items() if k not in shared),
            "dists": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        }
    return out


def median(values: list[float]) -> float:
    """The median, NaN when empty."""
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "child":
    _child(*sys.argv[2:])
