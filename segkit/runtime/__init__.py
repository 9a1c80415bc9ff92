"""Runs a verified TFLite model: `verify`, the `Runtime` protocol, `open_runtime` and `read_model_file`."""

from segkit.runtime.base import Runtime, TensorSpec, VerifiedModel, verify
from segkit.runtime.gpu import GpuUnavailableError
from segkit.runtime.loader import open_runtime, read_model_file

__all__ = ["GpuUnavailableError", "Runtime", "TensorSpec", "VerifiedModel", "open_runtime", "read_model_file", "verify"]
