"""MediaPipe's legacy ``mp.solutions`` API, for the one solution segkit provides: ``selfie_segmentation``.

As in MediaPipe, ``import segkit as mp`` then ``mp.solutions.selfie_segmentation.SelfieSegmentation`` works with
no further import. ``drawing_utils`` is there only because legacy programs fetch it at start-up.
"""

from segkit.solutions import drawing_utils, selfie_segmentation

__all__ = ["drawing_utils", "selfie_segmentation"]


def __getattr__(name: str) -> object:
    """``mp.solutions.hands`` and the other MediaPipe solutions: an AttributeError saying what segkit has."""
    raise AttributeError(
        f"module 'segkit.solutions' has no attribute {name!r}: segkit provides only the selfie_segmentation "
        "solution (and the Tasks image segmenter)"
    )
