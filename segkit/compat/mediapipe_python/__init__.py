"""``mediapipe.python`` under the compat shim: MediaPipe 0.10's home of the legacy ``solutions`` package."""

from segkit import solutions

__all__ = ["solutions"]
