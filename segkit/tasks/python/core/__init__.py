"""``mediapipe.tasks.python.core``: the task base options."""

from segkit.tasks.python.core import base_options

__all__ = ["base_options"]
