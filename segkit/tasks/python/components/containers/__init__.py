"""``mediapipe.tasks.python.components.containers``: ``RectF`` (the region of interest), ``Rect`` and
``NormalizedRect``."""

from segkit.options import NormalizedRect, Rect, RectF
from segkit.tasks.python.components.containers import rect

__all__ = ["NormalizedRect", "Rect", "RectF", "rect"]
