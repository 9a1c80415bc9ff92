"""``mediapipe.tasks.python.components.containers.rect``: ``RectF`` (left, top, bottom, right), ``Rect`` and
``NormalizedRect``."""

from segkit.options import NormalizedRect, Rect, RectF

__all__ = ["NormalizedRect", "Rect", "RectF"]
