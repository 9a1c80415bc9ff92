"""``mediapipe.tasks.python.vision.core.image_processing_options``: rotation and region of interest."""

from segkit.options import ImageProcessingOptions

__all__ = ["ImageProcessingOptions"]
