"""``mediapipe.tasks.python``'s layout (what MediaPipe's documentation imports as ``from mediapipe.tasks import
python``), so MediaPipe image-segmenter code runs after ``sed 's/mediapipe/segkit/'`` on its import lines.

Names only: every class is segkit's one public API (``segkit.options``, ``segkit.segmenter``, ...).
"""

from segkit.options import BaseOptions
from segkit.tasks.python import components, core, vision

__all__ = ["BaseOptions", "components", "core", "vision"]
