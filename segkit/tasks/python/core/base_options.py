"""``mediapipe.tasks.python.core.base_options``: ``BaseOptions`` (model asset and delegate)."""

from segkit.options import BaseOptions

__all__ = ["BaseOptions"]
