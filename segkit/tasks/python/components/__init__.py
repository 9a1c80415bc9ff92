"""``mediapipe.tasks.python.components``: the containers the segmenter's options use."""

from segkit.tasks.python.components import containers

__all__ = ["containers"]
