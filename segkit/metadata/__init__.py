"""Everything segkit reads from a model file: the TFLite structure, `TFLITE_METADATA` and the appended zip.

Pure Python (the bounds-checked reader in `flatbuf.py`, stdlib `zipfile`): malformed input raises ValueError.
"""

from segkit.metadata.describe import describe
from segkit.metadata.info import (
    Activation,
    InvalidActivationError,
    LabelFile,
    ModelInfo,
    Normalization,
    TensorMetadata,
    read_model_info,
    split_label_lines,
)
from segkit.metadata.tflite import TensorInfo, verify_model

__all__ = [
    "Activation",
    "InvalidActivationError",
    "LabelFile",
    "ModelInfo",
    "Normalization",
    "TensorInfo",
    "TensorMetadata",
    "describe",
    "read_model_info",
    "split_label_lines",
    "verify_model",
]
