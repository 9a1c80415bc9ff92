"""MediaPipe's own image-segmenter test (shipped in the mediapipe 1.2.2 wheel), run against segkit after
``sed 's/mediapipe/segkit/'`` on its import lines and nothing else.

The rewritten copy is generated into tmp_path from the installed file (it is MediaPipe's file, not ours). Its
``test_utils.get_test_data_path`` walks ``TEST_SRCDIR``; a tmp ``mediapipe/tasks/testdata/vision`` folder is built
from the shared test data. Files not in ../shared (MediaPipe's ``cat_mask.jpg``, ``cat_exif_rotated.jpg``,
``cat_rotated_mask.jpg``) make exactly the tests that load them fail, with get_test_data_path's "No ... in test
directory" error; every other test must pass.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import REPO, data_file, model_path

# test -> the missing file it loads
NEEDS_MISSING_DATA = {
    "test_segment_succeeds_with_confidence_mask": "cat_mask.jpg",
    "test_segment_for_video_in_confidence_mask_mode": "cat_mask.jpg",
    "test_segment_async_calls_in_confidence_mask_mode": "cat_mask.jpg",
    "test_segmentation_with_exif_rotated_image": "cat_exif_rotated.jpg",
}

# The stand-in for MediaPipe's get_test_data_path (its test_utils imports MediaPipe's native bindings): the same
# walk of TEST_SRCDIR for a path ending in the requested name.
_TEST_UTILS = """
import os
import sys
import types


def get_test_data_path(file_or_dirname_path):
    root = os.environ["TEST_SRCDIR"]
    for directory, subdirs, files in os.walk(root):
        for f in subdirs + files:
            path = os.path.join(directory, f)
            if path.endswith(file_or_dirname_path):
                return path
    raise ValueError("No %s in test directory: %s." % (file_or_dirname_path, root))


package = types.ModuleType("segkit.tasks.python.test")
package.__path__ = []
module = types.ModuleType("segkit.tasks.python.test.test_utils")
module.get_test_data_path = get_test_data_path
package.test_utils = module
sys.modules[package.__name__] = package
sys.modules[module.__name__] = module
"""


def rewrite_imports(source: str) -> str:
    """``sed 's/mediapipe/segkit/'`` applied to the import lines only (first occurrence per line, as sed does)."""
    return "\n".join(
        re.sub("mediapipe", "segkit", line, count=1) if re.match(r"\s*(from|import)\s+mediapipe\b", line) else line
        for line in source.split("\n")
    )


@pytest.mark.slow
def test_mediapipes_image_segmenter_test_passes_on_segkit(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("mediapipe")
    assert spec is not None and spec.origin is not None, "mediapipe (the test extra) must be installed"
    original = Path(spec.origin).parent / "tasks" / "python" / "test" / "vision" / "image_segmenter_test.py"
    assert original.is_file(), f"mediapipe's wheel no longer ships {original}"
    rewritten = rewrite_imports(original.read_text())
    assert "mediapipe" not in "\n".join(line for line in rewritten.split("\n") if re.match(r"\s*(from|import)\s", line))
    (tmp_path / "image_segmenter_test.py").write_text(rewritten)
    (tmp_path / "conftest.py").write_text(_TEST_UTILS)
    data = tmp_path / "srcdir" / "mediapipe" / "tasks" / "testdata" / "vision"
    data.mkdir(parents=True)
    # MediaPipe's current deeplabv3.tflite carries SOFTMAX metadata and labels.txt: the shared stand-in for it
    (data / "deeplabv3.tflite").symlink_to(model_path("deeplabv3_softmax_locales.tflite"))
    for name in ("segmentation_input_rotation0.jpg", "segmentation_golden_rotation0.png", "cat.jpg"):
        (data / name).symlink_to(data_file(name))
    report = tmp_path / "report.xml"
    env = {**os.environ, "TEST_SRCDIR": str(tmp_path / "srcdir"), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    outcome: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        problems = [e for e in case if e.tag in ("failure", "error", "skipped")]
        outcome[case.attrib["name"]] = "passed" if not problems else f"{problems[0].tag}: {problems[0].text or ''}"
    # mediapipe==1.2.2's file: 25 test cases (parameterized ones counted once per parameter set)
    assert len(outcome) == 25, done.stdout[-3000:]
    failed_for_data = {name for name in outcome if any(name.startswith(t) for t in NEEDS_MISSING_DATA)}
    assert len(failed_for_data) == len(NEEDS_MISSING_DATA)
    for name, result in outcome.items():
        missing = next((f for t, f in NEEDS_MISSING_DATA.items() if name.startswith(t)), None)
        if missing is None:
            assert result == "passed", f"{name}: {result[-2000:]}"
        else:
            assert f"/{missing} in test directory" in result, f"{name} must fail only for {missing}: {result[-2000:]}"
