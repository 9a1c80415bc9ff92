"""Smaller holes of issue 11: model paths, thread counts, empty messages, dropped live segmenters, 1xN images,
and the fuzz harness's bounded CI slice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import segkit
from segkit import runtime
from segkit.runtime import loader
from segkit.runtime.base import check_num_threads
from tests.conftest import REPO, model_dir, model_path


def _options(**kwargs: Any) -> segkit.ImageSegmenterOptions:
    base = segkit.BaseOptions(model_asset_path=str(model_path("selfie_segmenter.tflite")))
    return segkit.ImageSegmenterOptions(base_options=base, **kwargs)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "/"])
def test_model_path_must_be_a_regular_file(path: str) -> None:
    with pytest.raises(ValueError, match=f"model file {path} is not a regular file"):
        segkit.ImageSegmenter.create_from_options(
            segkit.ImageSegmenterOptions(base_options=segkit.BaseOptions(model_asset_path=path))
        )


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer that never writes: a read would block forever
    try:
        with pytest.raises(ValueError, match="is not a regular file"):
            runtime.read_model_file(fifo)
    finally:
        os.close(writer)


def test_model_file_size_is_bounded(tmp_path: Path) -> None:
    huge = tmp_path / "huge.tflite"
    with huge.open("wb") as f:
        f.truncate(loader.MAX_MODEL_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ValueError, match=rf"has {loader.MAX_MODEL_BYTES + 1} bytes, above {loader.MAX_MODEL_BYTES}"):
        runtime.read_model_file(huge)
    with pytest.raises(FileNotFoundError, match=r"^Unable to open file at /no/such\.tflite$"):
        runtime.read_model_file("/no/such.tflite")


@pytest.mark.parametrize("threads", [0, -1, 257, 100_000, 2.0, True, "4"])
def test_num_threads_out_of_range(threads: Any) -> None:
    with pytest.raises(ValueError, match=r"num_threads must be an int in 1\.\.256 or None"):
        segkit.ImageSegmenter.create_from_options(_options(num_threads=threads))


def test_num_threads_in_range() -> None:
    assert check_num_threads(256) == 256 and check_num_threads(1) == 1
    assert check_num_threads(None) >= 1
    with segkit.ImageSegmenter.create_from_options(_options(num_threads=1)) as s:
        assert s.segment(np.zeros((8, 8, 3), np.uint8)).confidence_masks is not None


class _Silent:
    """An Interpreter class whose failures carry no message."""

    def __init__(self, **kwargs: Any) -> None:
        raise RuntimeError("")


def test_no_error_message_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_litert_interpreter", lambda: _Silent)
    with pytest.raises(ValueError, match=r"^ai-edge-litert could not load the model: RuntimeError$"):
        runtime.open_runtime(model_path("selfie_segmenter.tflite").read_bytes(), backend="litert")


DROPPED = """
import resource, sys
import numpy as np
import segkit
base = segkit.BaseOptions(model_asset_path=sys.argv[1])
image = np.zeros((32, 32, 3), np.uint8)
for k in range(int(sys.argv[2])):
    s = segkit.ImageSegmenter.create_from_options(segkit.ImageSegmenterOptions(
        base_options=base, running_mode=segkit.RunningMode.LIVE_STREAM, result_callback=lambda *a: None,
        num_threads=1))
    s.segment_async(image, 0)
    del s
    if k == 4:
        warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(warm, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_dropped_live_segmenters_are_freed_at_once() -> None:
    """Unclosed LIVE_STREAM segmenters dropped in a loop: each is freed once its frame is delivered (an idle
    worker thread holds it weakly), instead of piling up until their threads time out (1 GB for 200 before)."""
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DROPPED), str(model_path("selfie_segmenter.tflite")), "100"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    warm_kb, peak_kb = (int(v) for v in run.stdout.split())
    assert peak_kb - warm_kb < 100_000, f"peak RSS grew by {(peak_kb - warm_kb) // 1024} MB over 95 segmenters"


def _category_seconds(width: int, height: int) -> float:
    with segkit.ImageSegmenter.create_from_options(
        _options(output_confidence_masks=False, output_category_mask=True, num_threads=1)
    ) as s:
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
        s.segment(image[:2, :2])
        start = time.perf_counter()
        mask = s.segment(image).category_mask
        assert mask is not None and mask.width == width and mask.height == height
        return time.perf_counter() - start


@pytest.mark.slow
def test_one_pixel_wide_and_high_extremes_cost_in_proportion() -> None:
    """2 million pixels as 1 row or 1 column: bounded like any 2-megapixel mask (26.7 s for 80 million before,
    from per-64-column Python work)."""
    wide, tall = _category_seconds(2_000_000, 1), _category_seconds(1, 2_000_000)
    assert wide < 3.0 and tall < 3.0, (wide, tall)


@pytest.mark.slow
def test_fuzz_slice(tmp_path: Path) -> None:
    """A fixed-seed slice of scripts/fuzz.py (models, images, arrays): no signal, hang, blow-up or empty message."""
    env = {**os.environ, "SEGKIT_MODEL_DIR": str(model_dir())}
    for kind, count in (("models", 600), ("images", 200), ("arrays", 100)):
        log = tmp_path / f"{kind}.jsonl"
        run = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "fuzz.py"), "--kind", kind, "--count", str(count), "--seed",
             "11", "--log", str(log), "--timeout", "60"],
            capture_output=True, text=True, timeout=600, env=env,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr[-2000:]
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert len(records) == count and {r["case"] for r in records} == set(range(count))
        assert not [r for r in records if r["outcome"].startswith(("signal", "exit", "timeout")) or r["empty"]]
        if kind == "models":
            assert {r["outcome"] for r in records} >= {"ok", "ValueError"}, "mutants both pass and fail"
    resumed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fuzz.py"), "--kind", "arrays", "--count", "100", "--seed", "11",
         "--log", str(tmp_path / "arrays.jsonl")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert resumed.returncode == 0 and "100 cases;" in resumed.stdout, "a rerun resumes: nothing is run twice"


def test_masks_that_would_not_fit_in_memory_are_refused_before_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    import segkit.image as image_module

    monkeypatch.setattr(image_module, "_memory_bytes", lambda: 8 << 20)  # a machine with 8 MiB: 4 MiB for masks
    image = np.zeros((1000, 1000, 3), np.uint8)  # 4 MB of confidence mask + 1 MB of category mask
    refused = r"masks of a 1000x1000 image \(1 confidence mask\(s\) and a category mask\) need"
    both = _options(output_category_mask=True, num_threads=1)
    with segkit.ImageSegmenter.create_from_options(both) as s, pytest.raises(ValueError, match=refused):
        s.segment(image)
    with segkit.ImageSegmenter.create_from_options(
        _options(output_confidence_masks=False, output_category_mask=True, num_threads=1)
    ) as s:
        mask = s.segment(image).category_mask
        assert mask is not None and mask.width == 1000
