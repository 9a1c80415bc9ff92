"""benchmarks/bench_serve.py --quick runs end to end and reports every figure it promises."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.serve.conftest import SERVE_MODULES, require

pytestmark = pytest.mark.slow


def test_bench_serve_quick(tmp_path):
    require(*SERVE_MODULES)
    out = tmp_path / "serve.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_serve.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert [level["clients"] for level in report["levels"]] == [1, 4, 16]
    for level in report["levels"]:
        assert level["rps"] > 0 and 0 < level["p50_ms"] <= level["p99_ms"]
        assert level["statuses"] == {"200": level["requests"]}
    assert report["live"]["delivered"] > 0 and report["live"]["fps"] > 0
    assert report["overhead"]["ratio"] > 0 and report["startup_s"] > 0
    assert "PASS" in run.stdout or "MISS" in run.stdout
