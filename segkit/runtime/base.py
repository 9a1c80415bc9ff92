"""The runtime contract: verified model bytes, tensor specs and the protocol every backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from segkit._common import available_cores
from segkit.metadata.tflite import TFLiteModel, verify_model


@dataclass(frozen=True)
class VerifiedModel:
    """Model bytes that passed ``verify_model``, with the structure that walk read (tensors, custom ops).

    Made by ``verify``: a backend only ever hands these bytes to an interpreter, so no unverified bytes reach
    one, and a caller that also needs the metadata passes ``structure`` to ``read_model_info`` instead of walking
    the file again."""

    content: bytes
    structure: TFLiteModel


def verify(model: bytes | bytearray | memoryview) -> VerifiedModel:
    """``model`` checked as a sane TFLite flatbuffer (ValueError naming the problem otherwise), walked once."""
    content = bytes(model)
    return VerifiedModel(content, verify_model(content))


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape, dtype and (scale, zero_point) quantization of one model tensor (None when not quantized)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    quantization: tuple[float, int] | None


@runtime_checkable
class Runtime(Protocol):
    """A loaded model ready to run: one input tensor in, the output tensors out."""

    input_spec: TensorSpec
    output_specs: tuple[TensorSpec, ...]
    accelerator: str  # "cpu" or "gpu"
    backend: str  # the package running it: "ai-edge-litert" or "tflite-runtime"

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Runs the model; the returned arrays are owned by the runtime and valid until the next run()."""
        ...

    def close(self) -> None:
        """Releases the interpreter; run() afterwards raises."""
        ...


MAX_THREADS = 256  # LiteRT starts every thread it is asked for (1e5 of them crashed it)


def check_num_threads(num_threads: int | None) -> int:
    """Validates a thread count; None means all cores this process may use."""
    if num_threads is None:
        return available_cores()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or not 1 <= num_threads <= MAX_THREADS:
        raise ValueError(f"num_threads must be an int in 1..{MAX_THREADS} or None (every core), got {num_threads!r}")
    return num_threads


def check_input(spec: TensorSpec, tensor: object) -> None:
    """Raises ValueError unless ``tensor`` is an array of exactly the input spec's shape and dtype."""
    if not isinstance(tensor, np.ndarray) or tensor.shape != spec.shape or tensor.dtype != spec.dtype:
        got = f"{tensor.dtype} {tensor.shape}" if isinstance(tensor, np.ndarray) else type(tensor).__name__
        raise ValueError(f"input tensor must be {spec.dtype} {spec.shape}, got {got}")
