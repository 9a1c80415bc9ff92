"""segkit: MediaPipe's Image Segmenter in pure Python on LiteRT, with the same API and the same masks.

Switch from MediaPipe by changing one import: ``import segkit as mp`` keeps ``mp.Image``, ``mp.ImageFormat``,
``mp.tasks.BaseOptions`` and ``mp.tasks.vision.ImageSegmenter`` working; or import the names directly::

    from segkit import ImageSegmenter, ImageSegmenterOptions, BaseOptions, Image

The names load on first use (numpy, Pillow and LiteRT take a quarter of a second): ``import segkit.cli`` stays
light, so the command line can treat a Ctrl-C during its start-up like any other.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it as theirs)
if TYPE_CHECKING:
    from segkit import solutions, tasks
    from segkit.image import Image, ImageFormat
    from segkit.options import (
        BaseOptions,
        ImageProcessingOptions,
        ImageSegmenterOptions,
        RectF,
        RunningMode,
        VisionTaskRunningMode,
    )
    from segkit.result import CategoryMask, ConfidenceMask, ImageSegmenterResult
    from segkit.segmenter import ImageSegmenter

__version__ = "0.1.0"

_HOMES = {
    "BaseOptions": "segkit.options",
    "CategoryMask": "segkit.result",
    "ConfidenceMask": "segkit.result",
    "Image": "segkit.image",
    "ImageFormat": "segkit.image",
    "ImageProcessingOptions": "segkit.options",
    "ImageSegmenter": "segkit.segmenter",
    "ImageSegmenterOptions": "segkit.options",
    "ImageSegmenterResult": "segkit.result",
    "RectF": "segkit.options",
    "RunningMode": "segkit.options",
    "VisionTaskRunningMode": "segkit.options",
}
"""Where each public name lives (the subpackages ``solutions`` and ``tasks`` are their own homes)."""
_SUBPACKAGES = ("solutions", "tasks")

__all__ = [
    "BaseOptions",
    "CategoryMask",
    "ConfidenceMask",
    "Image",
    "ImageFormat",
    "ImageProcessingOptions",
    "ImageSegmenter",
    "ImageSegmenterOptions",
    "ImageSegmenterResult",
    "RectF",
    "RunningMode",
    "VisionTaskRunningMode",
    "__version__",
    "solutions",
    "tasks",
]


def __getattr__(name: str) -> object:
    """A public name, imported from its home on first use and kept (PEP 562)."""
    if name in _SUBPACKAGES:
        value: object = importlib.import_module(f"segkit.{name}")
    elif name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    else:
        raise AttributeError(f"module 'segkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
