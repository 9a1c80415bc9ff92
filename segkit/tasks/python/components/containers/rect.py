"""``mediapipe.tasks.python.components.containers.rect``: ``RectF`` (left, top, bottom, right)."""

from segkit.options import RectF

__all__ = ["RectF"]
