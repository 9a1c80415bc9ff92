"""``segkit.compat``: ``import mediapipe`` served by segkit, in-process (``install``) and through the runner
(``python -m segkit.compat script.py``), driven as users do: real scripts in subprocesses. The main venv has the
real mediapipe 1.2.2 installed, so every test also shows the shim wins over it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segkit.compat import MODULES
from tests.conftest import REPO
from tests.tasks.doc_examples import EXAMPLES
from tests.tasks.test_doc_examples import assert_same_results, check_legacy_selfie_outputs, run_example

RUNNER = [sys.executable, "-m", "segkit.compat"]


def run(args: list[str], cwd: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m segkit.compat args`` (or ``python -c code``) with the checkout importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", code] if code is not None else [*RUNNER, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_every_mirrored_module_imports_through_the_runner(tmp_path: Path) -> None:
    script = tmp_path / "imports.py"
    script.write_text(
        "import importlib, segkit, segkit.compat\n"
        f"for name in {sorted(MODULES)!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert module.__name__ == name, module\n"
        "import mediapipe as mp\n"
        "assert mp.Image is segkit.Image and mp.ImageFormat is segkit.ImageFormat\n"
        "assert mp.tasks.BaseOptions is segkit.BaseOptions\n"
        "assert mp.tasks.vision.ImageSegmenter is segkit.ImageSegmenter\n"
        "legacy = mp.solutions.selfie_segmentation.SelfieSegmentation\n"
        "assert legacy is segkit.solutions.selfie_segmentation.SelfieSegmentation\n"
        "from mediapipe.tasks.python.vision.image_segmenter import ImageSegmenterResult\n"
        "assert ImageSegmenterResult is segkit.ImageSegmenterResult\n"
        "print(mp.__version__ == segkit.compat.MEDIAPIPE_VERSION and mp.__file__ == segkit.__file__)\n"
    )
    done = run([str(script)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


@pytest.mark.parametrize(
    "statement, module",
    [
        ("import mediapipe.tasks.python.vision.face_landmarker", "mediapipe.tasks.python.vision.face_landmarker"),
        ("from mediapipe.solutions import hands", "mediapipe.solutions.hands"),
        ("from mediapipe.tasks.python import audio", "mediapipe.tasks.python.audio"),
        ("import mediapipe.framework.formats.landmark_pb2", "mediapipe.framework"),
    ],
)
def test_other_mediapipe_modules_raise_import_error_saying_what_segkit_provides(
    tmp_path: Path, statement: str, module: str
) -> None:
    script = tmp_path / "other.py"
    script.write_text(f"try:\n    {statement}\nexcept ImportError as e:\n    print(type(e).__name__, e)\n")
    done = run([str(script)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ModuleNotFoundError No module named '{module}'")
    assert "segkit provides only MediaPipe's image segmenter" in done.stdout
    assert "selfie segmentation solution" in done.stdout


def test_runner_sets_argv_path_and_main_and_passes_the_exit_status(tmp_path: Path) -> None:
    (tmp_path / "helper_module.py").write_text("VALUE = 41\n")
    script = tmp_path / "prog.py"
    script.write_text(
        "import sys, mediapipe, helper_module\n"
        "print(__name__, sys.argv, helper_module.VALUE + 1, mediapipe.__name__)\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = run([str(script), "3", "--flag", "x y"], elsewhere)
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == f"__main__ {[str(script), '3', '--flag', 'x y']!r} 42 mediapipe"


@pytest.mark.slow
def test_processes_the_script_starts_get_segkit_too(tmp_path: Path) -> None:
    """spawn and forkserver workers and Python subprocesses start without the parent's import hook: they got the
    real mediapipe (installed here). The script's ``__file__`` is absolute and ``mediapipe.__version__`` is the
    MediaPipe release segkit mirrors, as version checks expect."""
    (tmp_path / "pool.py").write_text(
        "import multiprocessing, os, subprocess, sys\n"
        "import mediapipe\n"
        "def where(_):\n"
        "    import mediapipe\n"
        "    from mediapipe.tasks.python import vision\n"
        "    return vision.ImageSegmenter.__module__, mediapipe.__version__\n"
        "if __name__ == '__main__':\n"
        "    print(os.path.isabs(__file__), mediapipe.__version__, os.path.basename(mediapipe.__file__))\n"
        "    for method in ('spawn', 'forkserver'):\n"
        "        with multiprocessing.get_context(method).Pool(1) as pool:\n"
        "            print(method, *pool.map(where, [0])[0])\n"
        "    code = 'import mediapipe; print(mediapipe.ImageSegmenter.__module__)'\n"
        "    child = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)\n"
        "    print('subprocess', child.stdout.strip())\n"
    )
    done = run(["pool.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "True 1.2.2 __init__.py",
        "spawn segkit.segmenter 1.2.2",
        "forkserver segkit.segmenter 1.2.2",
        "subprocess segkit.segmenter",
    ]


def test_runner_runs_a_module_with_dash_m(tmp_path: Path) -> None:
    package = tmp_path / "mpapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import sys\nimport mediapipe as mp\nprint(sys.argv[1:], mp.ImageSegmenter.__module__)\n"
    )
    done = run(["-m", "mpapp", "a"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['a'] segkit.segmenter"


@pytest.mark.slow
def test_runner_usage_errors_and_script_failures(tmp_path: Path) -> None:
    no_args = run([], tmp_path)
    assert no_args.returncode == 2 and no_args.stderr.startswith("usage: python -m segkit.compat")
    missing = run([str(tmp_path / "nope.py")], tmp_path)
    assert missing.returncode == 2 and "can't open file" in missing.stderr and "Traceback" not in missing.stderr
    dash_m_alone = run(["-m"], tmp_path)
    assert dash_m_alone.returncode == 2
    boom = tmp_path / "boom.py"
    boom.write_text("raise RuntimeError('from the script')\n")
    failed = run([str(boom)], tmp_path)
    assert failed.returncode == 1 and "RuntimeError: from the script" in failed.stderr  # as `python boom.py`


@pytest.mark.slow
def test_install_in_process_wins_over_the_installed_mediapipe_and_uninstall_restores_it(tmp_path: Path) -> None:
    code = (
        "import segkit.compat as compat, importlib.util\n"
        "assert importlib.util.find_spec('mediapipe') is not None  # the real one is installed\n"
        "compat.install(); compat.install()\n"
        "import mediapipe, segkit\n"
        "from mediapipe.tasks.python import vision\n"
        "print(compat.installed(), mediapipe.Image is segkit.Image, vision.ImageSegmenter is segkit.ImageSegmenter)\n"
        "compat.uninstall()\n"
        "import mediapipe\n"
        "print(compat.installed(), mediapipe.__version__)\n"
        "try:\n"
        "    compat.install()\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    done = run([], tmp_path, code=code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "True True True"
    assert lines[1] == "False 1.2.2"
    assert lines[2].startswith("mediapipe is already imported") and "before the first `import mediapipe`" in lines[2]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_documented_examples_run_unmodified_through_the_runner(tmp_path: Path, name: str) -> None:
    """MediaPipe's documented examples, not edited at all, under ``python -m segkit.compat``: the Tasks ones give
    exactly what they give on mediapipe 1.2.2, the legacy selfie one gives segkit's solution masks."""
    ours = run_example(name, EXAMPLES[name], tmp_path / "compat", RUNNER)
    if name == "legacy_selfie":
        check_legacy_selfie_outputs(ours)
    else:
        assert_same_results(ours, run_example(name, EXAMPLES[name], tmp_path / "mediapipe", [sys.executable]))
    if name == "guide_image":
        assert np.load(ours / "category.npy").shape == (512, 512, 1)
