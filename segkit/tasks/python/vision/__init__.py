"""``mediapipe.tasks.python.vision``'s image-segmentation names (``vision.ImageSegmenter`` and friends)."""

from segkit.options import ImageProcessingOptions, ImageSegmenterOptions, RunningMode
from segkit.result import ImageSegmenterResult
from segkit.segmenter import ImageSegmenter
from segkit.tasks.python.vision import core, image_segmenter

__all__ = [
    "ImageProcessingOptions",
    "ImageSegmenter",
    "ImageSegmenterOptions",
    "ImageSegmenterResult",
    "RunningMode",
    "core",
    "image_segmenter",
]
