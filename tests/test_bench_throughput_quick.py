"""CI smoke test of ``benchmarks/bench_throughput.py --quick``: every local runner runs and the pool writes the bytes of
``--workers 1`` (local Ray is left out here: tests/test_ray.py covers it, and its start-up would double the time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_throughput_quick_runs_every_local_runner(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_throughput.py"), "--quick", "--no-ray", "--workers", "2",
         "--markdown", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, f"bench_throughput --quick failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}"
    results = json.loads(out.read_text())["results"]
    assert [r["job"] for r in results] == ["blur", "replace"]
    for r in results:
        assert set(r["times"]) == {"segkit --workers 1", "segkit --workers 2", "mediapipe+opencv"}
        assert all(len(t["small"]) == len(t["large"]) == 1 for t in r["times"].values())
        assert r["identical_to_workers_1"] == {"segkit --workers 1": True, "segkit --workers 2": True}
    assert "| blur 640x480 | `segkit --workers 2` |" in proc.stdout
    assert "a million images =" in proc.stdout
