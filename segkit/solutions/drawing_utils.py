"""``mp.solutions.drawing_utils``, present so legacy code that binds it at start-up keeps running.

MediaPipe's drawing utilities draw landmarks and detections, which segkit does not produce: legacy selfie
segmentation programs (MediaPipe's own example, cvzone's ``SelfiSegmentation``) fetch the module without using it.
Any attribute of it raises an AttributeError that says so.
"""

__all__: list[str] = []


def __getattr__(name: str) -> object:
    """Every drawing helper: an AttributeError naming it and saying why segkit has none."""
    raise AttributeError(
        f"segkit.solutions.drawing_utils has no {name!r}: MediaPipe's drawing utilities draw landmarks and "
        "detections, which segkit (image segmentation only) does not produce"
    )
