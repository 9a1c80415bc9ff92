"""Runs a verified TFLite model: the `Runtime` protocol, `open_runtime` and `read_model_file`."""

from segkit.runtime.base import Runtime, TensorSpec
from segkit.runtime.gpu import GpuUnavailableError
from segkit.runtime.loader import open_runtime, read_model_file

__all__ = ["GpuUnavailableError", "Runtime", "TensorSpec", "open_runtime", "read_model_file"]
