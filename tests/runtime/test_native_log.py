"""Quiet by default: LiteRT's native log lines stay off the console unless SEGKIT_LOG_LEVEL asks for them, and real
errors still get through. Checked in fresh processes, as a user's script sees its own stdout and stderr."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from segkit.runtime import native_log
from tests.conftest import REPO, model_path

XNNPACK_INFO = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_SCRIPT = """
import sys
import numpy as np
from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions
delegate = BaseOptions.Delegate.GPU if sys.argv[2] == "gpu" else BaseOptions.Delegate.CPU
options = ImageSegmenterOptions(
    base_options=BaseOptions(model_asset_path=sys.argv[1], delegate=delegate), output_category_mask=True
)
with ImageSegmenter.create_from_options(options) as segmenter:
    result = segmenter.segment(np.zeros((48, 64, 3), np.uint8))
    assert result.category_mask is not None
"""


def _run(delegate: str, level: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != native_log.ENV}
    if level is not None:
        env[native_log.ENV] = level
    model = str(model_path("selfie_segmenter.tflite"))
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, model, delegate], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_cpu_segmenter_prints_nothing_by_default() -> None:
    done = _run("cpu", None)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("level", ["info", "debug", "INFO"])
def test_log_level_info_shows_litert_info_lines(level: str) -> None:
    done = _run("cpu", level)
    assert done.returncode == 0, done.stderr
    assert XNNPACK_INFO in done.stderr


@pytest.mark.slow
@pytest.mark.gpu
def test_gpu_segmenter_prints_nothing_by_default_not_even_at_exit() -> None:
    """The GPU path logs a page at start-up (one line on stdout) and DestroyAccelerator lines at shut-down."""
    done = _run("gpu", None)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""
    shown = _run("gpu", "info")
    assert "DestroyAccelerator" in shown.stderr and "Created a WebGPU environment" in shown.stderr


def test_errors_and_unknown_lines_are_written_back(capfd: pytest.CaptureFixture[str]) -> None:
    """What the native code says inside a window comes back after it, minus the informational lines."""
    with native_log.quiet():
        os.write(2, b"INFO: [x.cc:1] noise\nERROR: [x.cc:2] a real error\nsomething unrecognised\n")
        os.write(1, b"INFO: Failed to load OpenCL library\nW0000 00:00 x.cc] a warning\n")
        print("python's own stderr line", file=sys.stderr)
    out, err = capfd.readouterr()
    assert "ERROR: [x.cc:2] a real error\nsomething unrecognised\n" in err and "noise" not in err
    assert "python's own stderr line\n" in err  # (pytest's capture takes it at the sys level, before the fd)
    assert out == "W0000 00:00 x.cc] a warning\n"


def test_write_back_also_runs_when_the_native_call_raises(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError), native_log.quiet():
        os.write(2, b"ERROR: before the failure\n")
        raise RuntimeError("the call failed")
    assert capfd.readouterr().err == "ERROR: before the failure\n"


@pytest.mark.parametrize(
    ("line", "severity"),
    [
        ("INFO: [environment.cc:36] Creating LiteRT environment with options", logging.INFO),
        ("I0000 00:00:1796155236.448262   11674 environment.cc:532] Selected adapter: llvmpipe", logging.INFO),
        ("WARNING: [npu_registry.cc:34] NPU accelerator could not be loaded", logging.INFO),
        ("error: XDG_RUNTIME_DIR is invalid or not set in the environment.", logging.INFO),
        ("Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16", logging.INFO),
        ("WARNING: something LiteRT warns about", logging.WARNING),
        ("W0000 00:00:17 x.cc:1] a glog warning", logging.WARNING),
        ("ERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU environment", logging.ERROR),
        ("Segmentation fault hints or anything else", logging.ERROR),
    ],
)
def test_severity(line: str, severity: int) -> None:
    assert native_log.severity(line) == severity


@pytest.mark.parametrize(
    ("value", "least"),
    [(None, logging.WARNING), ("debug", logging.DEBUG), (" Info ", logging.INFO), ("error", logging.ERROR)],
)
def test_threshold_reads_the_environment(monkeypatch: pytest.MonkeyPatch, value: str | None, least: int) -> None:
    if value is None:
        monkeypatch.delenv(native_log.ENV, raising=False)
    else:
        monkeypatch.setenv(native_log.ENV, value)
    assert native_log.threshold() == least
