"""``mediapipe.tasks.python.vision.core``: image, running mode and image-processing options."""

from segkit.tasks.python.vision.core import image, image_processing_options, vision_task_running_mode

__all__ = ["image", "image_processing_options", "vision_task_running_mode"]
