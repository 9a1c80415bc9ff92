"""One CPU backend over the TFLite `Interpreter` API, shared by ai-edge-litert and tflite-runtime.

Input and output tensors are allocated once; each run copies the input in and the outputs into buffers this
object owns, so no per-call allocation happens and the returned arrays stay valid until the next run().
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from segkit.runtime.base import TensorSpec, check_input


def _spec(detail: dict[str, Any]) -> TensorSpec:
    """A TensorSpec from one entry of get_input_details()/get_output_details()."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantization = (float(scale), int(zero_point)) if scale else None
    return TensorSpec(
        name=str(detail["name"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=np.dtype(detail["dtype"]),
        quantization=quantization,
    )


class InterpreterRuntime:
    """A model loaded into a TFLite-style `Interpreter` class (`interpreter_class`), run on CPU."""

    accelerator = "cpu"

    def __init__(self, interpreter_class: Callable[..., Any], model: bytes, num_threads: int, backend: str) -> None:
        self.backend = backend
        self.num_threads = num_threads
        try:
            self._interpreter = interpreter_class(model_content=model, num_threads=num_threads)
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"{backend} could not load the model: {e}".strip()) from e
        try:
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise RuntimeError(f"{backend} could not prepare the model: {e}".strip()) from e
        try:
            inputs = self._interpreter.get_input_details()
            outputs = self._interpreter.get_output_details()
        except ValueError as e:
            raise ValueError(f"{backend} could not read the model's tensors: {e}") from e
        if len(inputs) != 1:
            raise ValueError(f"a segmentation model has exactly one input tensor; this one has {len(inputs)}")
        self.input_spec = _spec(inputs[0])
        self.output_specs = tuple(_spec(d) for d in outputs)
        self._input = self._interpreter.tensor(inputs[0]["index"])
        self._output_views = [self._interpreter.tensor(d["index"]) for d in outputs]
        self._outputs = [np.empty(s.shape, s.dtype) for s in self.output_specs]
        self._lock = threading.Lock()

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Runs the model on `tensor` (exactly input_spec's shape and dtype); outputs valid until the next run()."""
        check_input(self.input_spec, tensor)
        with self._lock:
            if self._interpreter is None:
                raise RuntimeError("the runtime is closed")
            self._input()[...] = tensor
            self._interpreter.invoke()
            for out, view in zip(self._outputs, self._output_views):
                np.copyto(out, view())
        return list(self._outputs)

    def close(self) -> None:
        """Drops the interpreter and its buffers; safe to call twice."""
        with self._lock:
            self._interpreter = None
            self._input = None
            self._output_views = []

    def __repr__(self) -> str:
        return f"<InterpreterRuntime {self.backend} threads={self.num_threads} input={self.input_spec.shape}>"
