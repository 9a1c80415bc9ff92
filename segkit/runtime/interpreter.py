"""One CPU backend over the TFLite `Interpreter` API, shared by ai-edge-litert and tflite-runtime.

Input and output tensors are allocated once. Each run copies the input in; the outputs are returned without a
copy, as arrays over the interpreter's own output buffers (``_Window``), valid until the next run(), which
overwrites them (the same contract as before, when they were reused copies).

Why not the interpreter's ``tensor(i)()`` views: those keep the interpreter's wrapper object as their numpy
base, and ``invoke()`` refuses to run (RuntimeError) while any of them is alive, so one array kept by a caller
(or by an exception's traceback) would break every later run. A ``_Window`` points at the same memory but keeps
the Python ``Interpreter`` alive instead, so a kept array never blocks a run, and stays memory-safe after
close(): the interpreter and its buffers live until the last such array is gone.

Zero-copy needs buffers that never move: outputs with a fully static shape (arena-allocated by TFLite, fixed
after ``allocate_tensors()``, which this class never calls again). Otherwise, or if a buffer is ever seen to
move after a run, the runtime falls back to copying into buffers it owns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from segkit.runtime import native_log
from segkit.runtime.base import TensorSpec, VerifiedModel, check_input


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


class _Window:
    """An output buffer as numpy sees it (``__array_interface__``), holding the interpreter that owns it."""

    def __init__(self, owner: Any, interface: dict[str, Any]) -> None:
        self._owner = owner
        self.__array_interface__ = interface


def _address(view: Callable[[], np.ndarray]) -> int:
    """Where an output tensor's data lives now (the temporary view is dropped at once)."""
    return int(view().__array_interface__["data"][0])


class InterpreterRuntime:
    """A model loaded into a TFLite-style `Interpreter` class (`interpreter_class`), run on CPU."""

    accelerator = "cpu"

    def __init__(
        self, interpreter_class: Callable[..., Any], model: VerifiedModel, num_threads: int, backend: str
    ) -> None:
        self.backend = backend
        self.num_threads = num_threads
        # LiteRT logs "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from native code here: shown only
        # when SEGKIT_LOG_LEVEL asks for it (warnings and errors always are).
        with native_log.quiet():
            try:
                self._interpreter = interpreter_class(model_content=model.content, num_threads=num_threads)
            except (RuntimeError, ValueError) as e:
                raise ValueError(f"{backend} could not load the model: {str(e).strip() or type(e).__name__}") from e
            try:
                self._interpreter.allocate_tensors()
            except (RuntimeError, ValueError) as e:
                raise RuntimeError(
                    f"{backend} could not prepare the model: {str(e).strip() or type(e).__name__}"
                ) from e
        try:
            inputs = self._interpreter.get_input_details()
            outputs = self._interpreter.get_output_details()
        except ValueError as e:
            raise ValueError(
                f"{backend} could not read the model's tensors: {str(e).strip() or type(e).__name__}"
            ) from e
        if len(inputs) != 1:
            raise ValueError(f"a segmentation model has exactly one input tensor; this one has {len(inputs)}")
        self.input_spec = _spec(inputs[0])
        self.output_specs = tuple(_spec(d) for d in outputs)
        self._input = self._interpreter.tensor(inputs[0]["index"])
        self._output_views = [self._interpreter.tensor(d["index"]) for d in outputs]
        self._addresses: list[int] = []
        self._outputs = self._windows(outputs)  # zero-copy arrays, or None: copy into _copies
        self._copies: list[np.ndarray] | None = None
        if self._outputs is None:
            self._copy_mode()
        self._lock = threading.Lock()

    def _windows(self, details: list[dict[str, Any]]) -> list[np.ndarray] | None:
        """Arrays over the output buffers, or None when a buffer may move (dynamic shape, unusual layout)."""
        windows = []
        for detail, spec, view in zip(details, self.output_specs, self._output_views, strict=True):
            signature = detail.get("shape_signature", detail["shape"])
            if any(int(d) < 0 for d in signature):
                return None
            current = view()
            if current.shape != spec.shape or current.dtype != spec.dtype or not current.flags.c_contiguous:
                return None
            interface = dict(current.__array_interface__)
            del current  # a tensor() view alive would make invoke() refuse to run
            interface["data"] = (interface["data"][0], False)  # writable, like the copies it replaces
            windows.append(np.asarray(_Window(self._interpreter, interface)))
            self._addresses.append(int(interface["data"][0]))
        return windows

    def _copy_mode(self) -> None:
        """From now on, copy the outputs into buffers this object owns after each run (the safe fallback)."""
        self._outputs = None
        self._copies = [np.empty(s.shape, s.dtype) for s in self.output_specs]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Runs the model on `tensor` (exactly input_spec's shape and dtype); outputs valid until the next run().

        The returned arrays are the interpreter's output buffers (or, in the fallback, buffers owned by this
        object): the next run overwrites them, so copy what must outlive it. Keeping them is allowed (it never
        blocks a run, and the memory stays valid even after close()); they just change.
        """
        check_input(self.input_spec, tensor)
        with self._lock:
            if self._interpreter is None or self._input is None:
                raise RuntimeError("the runtime is closed")
            self._input()[...] = tensor
            self._interpreter.invoke()
            if self._outputs is not None:
                if all(_address(v) == a for v, a in zip(self._output_views, self._addresses, strict=True)):
                    return list(self._outputs)
                self._copy_mode()  # a buffer moved: never hand out windows again
            assert self._copies is not None
            for out, view in zip(self._copies, self._output_views, strict=True):
                np.copyto(out, view())
            return list(self._copies)

    def close(self) -> None:
        """Drops the interpreter and its buffers (arrays a caller still holds keep them alive); safe twice."""
        with self._lock:
            self._interpreter = None
            self._input = None
            self._output_views = []
            self._outputs = self._copies = None

    def __repr__(self) -> str:
        return f"<InterpreterRuntime {self.backend} threads={self.num_threads} input={self.input_spec.shape}>"
