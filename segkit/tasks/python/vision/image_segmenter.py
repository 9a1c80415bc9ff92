"""``mediapipe.tasks.python.vision.image_segmenter``: the segmenter, its options and its result."""

from segkit.options import ImageSegmenterOptions
from segkit.result import ImageSegmenterResult
from segkit.segmenter import ImageSegmenter

__all__ = ["ImageSegmenter", "ImageSegmenterOptions", "ImageSegmenterResult"]
