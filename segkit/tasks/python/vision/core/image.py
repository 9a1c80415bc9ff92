"""``mediapipe.tasks.python.vision.core.image``: ``Image`` and ``ImageFormat``."""

from segkit.image import Image, ImageFormat

__all__ = ["Image", "ImageFormat"]
