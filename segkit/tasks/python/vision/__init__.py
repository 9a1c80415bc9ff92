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


def __getattr__(name: str) -> object:
    """``vision.FaceLandmarker`` and MediaPipe's other vision tasks: an AttributeError saying what segkit has."""
    raise AttributeError(
        f"module 'segkit.tasks.python.vision' has no attribute {name!r}: segkit provides only the image segmenter "
        "(ImageSegmenter) and the selfie segmentation solution"
    )
