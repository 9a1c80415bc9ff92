"""The benchmark's CI smoke test: ``benchmarks/bench.py --quick`` runs every configuration and agrees with MediaPipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the whole benchmark in quick mode, in a subprocess (~40 s)

REPO = Path(__file__).resolve().parent.parent
MODELS = ("selfie_segmenter", "selfie_segmenter_landscape", "hair_segmenter", "deeplabv3")
SIZES = ("640x480", "1280x720")
CONFIGS = ("conf", "cat", "both")


def test_bench_quick_runs_every_configuration(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"bench --quick failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    table = proc.stdout.split("\nLatency, ms", 1)[1].split("\nsegkit stage breakdown", 1)[0]
    listed = {tuple(line.split()[:3]) for line in table.splitlines() if line.strip()}
    missing = [(m, s, c) for m in MODELS for s in SIZES for c in CONFIGS if (m, s, c) not in listed]
    assert not missing, f"configurations missing from the table: {missing}\n{table}"
    rows = json.loads(out.read_text())["rows"]
    for row in rows:
        assert not row["errors"], row["errors"]
        assert row["times"]["segkit"] and row["times"]["mediapipe"], (row["model"], row["size"], row["config"])
        assert row["agreement"]["ok"], (row["model"], row["size"], row["config"], row["agreement"])
