"""segkit.tasks.python mirrors MediaPipe's module tree for the image segmenter: the same module paths hold the
same names, and every name is segkit's one public object (no second implementation)."""

from __future__ import annotations

import importlib

import pytest

import segkit
from segkit import options

# MediaPipe module (under mediapipe.) -> the names a segmenter program takes from it, and segkit's object for each
MIRROR: dict[str, dict[str, object]] = {
    "tasks.python": {"BaseOptions": segkit.BaseOptions},
    "tasks.python.core.base_options": {"BaseOptions": segkit.BaseOptions},
    "tasks.python.vision": {
        "ImageSegmenter": segkit.ImageSegmenter,
        "ImageSegmenterOptions": segkit.ImageSegmenterOptions,
        "ImageProcessingOptions": segkit.ImageProcessingOptions,
        "RunningMode": segkit.RunningMode,
    },
    "tasks.python.vision.image_segmenter": {
        "ImageSegmenter": segkit.ImageSegmenter,
        "ImageSegmenterOptions": segkit.ImageSegmenterOptions,
        "ImageSegmenterResult": segkit.ImageSegmenterResult,
    },
    "tasks.python.vision.core.image": {"Image": segkit.Image, "ImageFormat": segkit.ImageFormat},
    "tasks.python.vision.core.vision_task_running_mode": {"VisionTaskRunningMode": options.VisionTaskRunningMode},
    "tasks.python.vision.core.image_processing_options": {"ImageProcessingOptions": segkit.ImageProcessingOptions},
    "tasks.python.components.containers.rect": {"RectF": segkit.RectF},
}


@pytest.mark.parametrize("module", sorted(MIRROR))
def test_each_mediapipe_path_has_the_same_names_as_segkit_objects(module: str) -> None:
    ours = importlib.import_module(f"segkit.{module}")
    theirs = importlib.import_module(f"mediapipe.{module}")  # mediapipe 1.2.2, the test oracle
    for name, obj in MIRROR[module].items():
        assert hasattr(theirs, name), f"mediapipe.{module} has no {name}: the mirror table is wrong"
        assert getattr(ours, name) is obj, f"segkit.{module}.{name} is not segkit's {obj!r}"


def test_documentation_import_forms() -> None:
    """The import lines MediaPipe's guide and tests use, with mediapipe replaced by segkit."""
    from segkit.tasks import python
    from segkit.tasks.python import vision
    from segkit.tasks.python.components import containers
    from segkit.tasks.python.core import base_options as base_options_module
    from segkit.tasks.python.vision import image_segmenter
    from segkit.tasks.python.vision.core import image as image_module
    from segkit.tasks.python.vision.core import vision_task_running_mode

    assert python.BaseOptions is base_options_module.BaseOptions is segkit.BaseOptions
    assert python.vision is vision and vision.image_segmenter is image_segmenter
    assert image_module.Image is segkit.Image and containers.rect.RectF is segkit.RectF
    assert vision_task_running_mode.VisionTaskRunningMode.LIVE_STREAM is segkit.RunningMode.LIVE_STREAM


def test_other_vision_tasks_say_what_segkit_provides() -> None:
    from segkit.tasks.python import vision

    with pytest.raises(AttributeError, match="segkit provides only the image segmenter"):
        _ = vision.FaceLandmarker
