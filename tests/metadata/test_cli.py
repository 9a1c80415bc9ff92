"""`python -m segkit.metadata MODEL` in a subprocess, on a real model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, model_path


def test_cli_prints_everything() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "segkit.metadata", str(model_path("deeplabv3_softmax_locales.tflite"))],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for expected in (
        "[1, 257, 257, 3]  float32",
        "[1, 257, 257, 21]  float32",
        "name: ImageSegmenter",
        "min_parser_version: 1.5.0",
        "normalization: mean [127.5] std [127.5]",
        "activation: SOFTMAX",
        "label file: labels_fr.txt (locale fr)",
        "labels (21): background, aeroplane,",
        "display names [fr]: arrière-plan, avion, vélo,",
    ):
        assert expected in out


def test_cli_bad_file(tmp_path: Path) -> None:
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(16))
    proc = subprocess.run(
        [sys.executable, "-m", "segkit.metadata", str(png)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "not a TFLite model" in proc.stderr
