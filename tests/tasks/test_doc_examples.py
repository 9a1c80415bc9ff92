"""MediaPipe's documented image-segmenter examples (``doc_examples``), their import lines rewritten
``mediapipe`` -> ``segkit`` and nothing else, run on real images: each gives exactly what the same unmodified
script gives on mediapipe 1.2.2 (PNG input, so both decode the same pixels), and the legacy selfie example gives
segkit's solution mask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segkit.solutions.selfie_segmentation import SelfieSegmentation
from tests.conftest import REPO, data_file, load_rgb, model_path
from tests.tasks.doc_examples import EXAMPLES, INPUTS
from tests.tasks.test_mediapipe_suite import rewrite_imports


def run_example(name: str, source: str, out: Path, prefix: list[str]) -> Path:
    """Runs example ``name`` (its ``source``) as a script with ``prefix`` (the interpreter, maybe the compat
    runner), writing its results into ``out``."""
    out.mkdir(parents=True)
    script = out / f"{name}.py"
    script.write_text(source)
    model, image = INPUTS[name]
    args = [str(model_path(model)) if model else "-", str(data_file(image)), str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([*prefix, str(script), *args], cwd=out, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-4000:]}"
    return out


def assert_same_results(ours: Path, theirs: Path) -> None:
    files = sorted(p.name for p in theirs.glob("*.npy"))
    assert files and files == sorted(p.name for p in ours.glob("*.npy"))
    for f in files:
        np.testing.assert_array_equal(np.load(ours / f), np.load(theirs / f), err_msg=f)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in EXAMPLES if n != "legacy_selfie"])
def test_task_examples_rewritten_match_mediapipe(tmp_path: Path, name: str) -> None:
    rewritten = rewrite_imports(EXAMPLES[name])
    assert "import mediapipe" not in rewritten and "from mediapipe" not in rewritten
    ours = run_example(name, rewritten, tmp_path / "segkit", [sys.executable])
    theirs = run_example(name, EXAMPLES[name], tmp_path / "mediapipe", [sys.executable])
    assert_same_results(ours, theirs)
    if name == "guide_live_stream":
        np.testing.assert_array_equal(np.load(ours / "timestamps.npy"), [0, 40, 80])


@pytest.mark.slow
def test_legacy_selfie_example_rewritten(tmp_path: Path) -> None:
    out = run_example(
        "legacy_selfie", rewrite_imports(EXAMPLES["legacy_selfie"]), tmp_path / "segkit", [sys.executable]
    )
    check_legacy_selfie_outputs(out)


def check_legacy_selfie_outputs(out: Path) -> None:
    """The legacy example's results are segkit's solution masks of the same (decoded with OpenCV) photo."""
    rgb = load_rgb("astronaut.png")
    with SelfieSegmentation(model_selection=0) as s:
        static = s.process(rgb).segmentation_mask
    np.testing.assert_array_equal(np.load(out / "static_mask.npy"), static)
    assert (out / "selfie_segmentation_output0.png").is_file()
    with SelfieSegmentation(model_selection=1) as s:
        flipped = rgb[:, ::-1]
        condition = s.process(flipped).segmentation_mask > 0.1
    expected = np.where(condition[..., None], flipped[:, :, ::-1], np.array((192, 192, 192), np.uint8))
    np.testing.assert_array_equal(np.load(out / "loop_output.npy"), expected)
