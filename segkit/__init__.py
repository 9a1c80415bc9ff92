"""segkit: MediaPipe's Image Segmenter in pure Python on LiteRT, with the same API and the same masks.

Switch from MediaPipe by changing one import: ``import segkit as mp`` keeps ``mp.Image``, ``mp.ImageFormat``,
``mp.tasks.BaseOptions`` and ``mp.tasks.vision.ImageSegmenter`` working; or import the names directly::

    from segkit import ImageSegmenter, ImageSegmenterOptions, BaseOptions, Image
"""

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
