"""MediaPipe's ``mediapipe.tasks`` layout: code written as ``import mediapipe as mp`` runs as ``import segkit as mp``.

Only names; everything is defined in the modules it comes from.
"""

from segkit.options import BaseOptions
from segkit.tasks import vision
from segkit.tasks.python import components

__all__ = ["BaseOptions", "components", "vision"]
