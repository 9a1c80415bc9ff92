"""Postprocessing: model logits to MediaPipe's confidence masks and category mask, bit-exact (numpy only)."""

from .activation import NONE, SIGMOID, SOFTMAX, activate, dequantize, sigmoid, softmax, to_alpha
from .category import argmax_mask, category_plan, threshold_mask
from .postprocessor import Postprocessor
from .resize import mask_linear_plan, resize_masks

__all__ = [
    "NONE",
    "SIGMOID",
    "SOFTMAX",
    "Postprocessor",
    "activate",
    "argmax_mask",
    "category_plan",
    "dequantize",
    "mask_linear_plan",
    "resize_masks",
    "sigmoid",
    "softmax",
    "threshold_mask",
    "to_alpha",
]
