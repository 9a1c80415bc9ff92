"""Postprocessing: model logits to MediaPipe's confidence masks and category mask, bit-exact (numpy only)."""

from .activation import NONE, SIGMOID, SOFTMAX, activate, dequantize, sigmoid, softmax, to_alpha
from .category import argmax_mask, category_plan, threshold_mask
from .postprocessor import Postprocessor
from .resize import linear_plan, resize_linear

__all__ = [
    "NONE",
    "SIGMOID",
    "SOFTMAX",
    "Postprocessor",
    "activate",
    "argmax_mask",
    "category_plan",
    "dequantize",
    "linear_plan",
    "resize_linear",
    "sigmoid",
    "softmax",
    "threshold_mask",
    "to_alpha",
]
