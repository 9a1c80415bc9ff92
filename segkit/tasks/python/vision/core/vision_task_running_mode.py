"""``mediapipe.tasks.python.vision.core.vision_task_running_mode``: IMAGE, VIDEO and LIVE_STREAM."""

from segkit.options import VisionTaskRunningMode

__all__ = ["VisionTaskRunningMode"]
