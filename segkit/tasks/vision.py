"""``mediapipe.tasks.vision``'s image-segmentation names (``mp.tasks.vision.ImageSegmenter`` and friends)."""

from segkit.options import ImageProcessingOptions, ImageSegmenterOptions, RunningMode
from segkit.result import ImageSegmenterResult
from segkit.segmenter import ImageSegmenter

__all__ = [
    "ImageProcessingOptions",
    "ImageSegmenter",
    "ImageSegmenterOptions",
    "ImageSegmenterResult",
    "RunningMode",
]
