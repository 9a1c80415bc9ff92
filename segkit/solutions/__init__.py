"""MediaPipe's legacy ``mp.solutions`` API, for the one solution segkit provides: ``selfie_segmentation``.

As in MediaPipe, ``import segkit as mp`` then ``mp.solutions.selfie_segmentation.SelfieSegmentation`` works with
no further import.
"""

from segkit.solutions import selfie_segmentation

__all__ = ["selfie_segmentation"]
