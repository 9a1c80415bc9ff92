"""``mediapipe.tasks.python.components.containers``: ``RectF`` (the region of interest)."""

from segkit.options import RectF
from segkit.tasks.python.components.containers import rect

__all__ = ["RectF", "rect"]
