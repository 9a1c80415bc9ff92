"""The effects benchmark's smoke test: ``benchmarks/bench_effects.py --quick`` runs every part and reports a verdict.

Timing never fails it (the machine is shared); it checks that every row is measured and judged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_effects_quick_reports_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, str(REPO / "benchmarks" / "bench_effects.py"), "--quick", "--video", "--json", str(out)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"bench_effects --quick failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    rows = json.loads(out.read_text())["rows"]
    names = {(row["part"], row.get("size"), row["name"]) for row in rows}
    for size in ("1280x720", "640x480"):
        assert ("pipeline", size, "segment+blur") in names
        for effect in ("blur", "replace", "cutout", "recolor", "overlay"):
            assert ("effect", size, effect) in names
    assert {row["name"] for row in rows if row["part"] == "video"} == {"blur", "replace", "recolor", "overlay"}
    for row in rows:
        assert row["verdict"] in ("PASS", "MISS"), row
        if row["part"] == "video":
            assert row["frames"] == 20 and row["fps"] > 0
        else:
            assert row["segkit_ms"] > 0 and row["reference_ms"] > 0
    assert "PASS" in proc.stdout or "MISS" in proc.stdout
