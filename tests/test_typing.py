"""The public types as a user's type checker sees them: the README's first example passes ``mypy --strict`` and
pyright unchanged, the masks' arrays carry their dtype, and a wrong call is reported. Each checker runs on scripts
written to a temporary folder, as a user's project would hold them (segkit found as an installed package)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # each checker analyses segkit, numpy and Pillow from scratch (5-30 s)

_TYPED = """
import numpy as np
import numpy.typing as npt

from segkit import ImageSegmenterResult


def typed(result: ImageSegmenterResult) -> None:
    confidences: list[npt.NDArray[np.float32]] = result.confidence_arrays()
    categories: npt.NDArray[np.uint8] = result.category_array()
    first: npt.NDArray[np.float32] = result.confidence_masks[0].numpy_view()
    print(confidences, categories, first)
"""
# Each line that must be reported ends with "# BAD".
_BAD = """
import numpy as np
import numpy.typing as npt

from segkit import ImageSegmenter, ImageSegmenterResult


def bad(segmenter: ImageSegmenter, result: ImageSegmenterResult) -> None:
    segmenter.segment("not an image")  # BAD
    wrong: npt.NDArray[np.uint8] = result.confidence_masks[0].numpy_view()  # BAD
    print(wrong)
"""


def readme_example() -> str:
    """The first ```python block of README.md, as written there."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert found is not None, "README.md has no python example"
    return found.group(1)


def _checker(module: str) -> None:
    """Fail loudly in CI (which installs the lint extra) when a checker is missing; skip elsewhere, saying why."""
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed (CI installs it with the lint extra)")
        pytest.skip(f"{module} is not installed (pip install -e '.[lint]')")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYPY", "PYRIGHT"))}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _scripts(tmp_path: Path) -> tuple[Path, Path]:
    good = tmp_path / "good.py"
    good.write_text(readme_example() + _TYPED, encoding="utf-8")
    bad = tmp_path / "bad.py"
    bad.write_text(_BAD, encoding="utf-8")
    return good, bad


def _bad_lines(bad: Path) -> set[int]:
    return {i for i, line in enumerate(bad.read_text().splitlines(), 1) if line.endswith("# BAD")}


def _reported_lines(output: str, name: str) -> set[int]:
    """Line numbers of the errors a checker reports in file ``name`` (mypy's and pyright's formats)."""
    return {int(m.group(1)) for m in re.finditer(rf"{re.escape(name)}:(\d+):(?:\d+)?[: -]+error", output)}


def test_mypy_strict_accepts_the_readme_and_reports_the_bad_calls(tmp_path: Path) -> None:
    _checker("mypy")
    good, bad = _scripts(tmp_path)
    base = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-executable", sys.executable]
    done = _run([*base, good.name], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    done = _run([*base, "--show-column-numbers", bad.name], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert _reported_lines(done.stdout, bad.name) == _bad_lines(bad), done.stdout


def test_pyright_accepts_the_readme_and_reports_the_bad_calls(tmp_path: Path) -> None:
    _checker("pyright")
    good, bad = _scripts(tmp_path)
    base = [sys.executable, "-m", "pyright", "--pythonpath", sys.executable]
    done = _run([*base, good.name], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    done = _run([*base, bad.name], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert _reported_lines(done.stdout, bad.name) == _bad_lines(bad), done.stdout
