"""Opening a model: read the file, verify the bytes, pick a backend."""

from __future__ import annotations

import importlib.util
import logging
import os
import stat
from collections.abc import Callable
from typing import Any

from segkit.runtime.base import Runtime, VerifiedModel, check_num_threads, verify
from segkit.runtime.gpu import PRECISIONS, GpuUnavailableError, open_gpu_runtime
from segkit.runtime.interpreter import InterpreterRuntime

BACKENDS = ("auto", "litert", "tflite")
DELEGATES = ("cpu", "gpu")
_MODULES = {"litert": "ai_edge_litert", "tflite": "tflite_runtime"}
_PACKAGES = {"litert": "ai-edge-litert", "tflite": "tflite-runtime (pip install 'segkit[tflite]')"}


MAX_MODEL_BYTES = 1 << 30  # model files above 1 GiB are refused (no segmentation model is near it)


def read_model_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a model file; a missing file raises MediaPipe's FileNotFoundError text, and anything but a
    regular file of at most MAX_MODEL_BYTES (a device such as /dev/zero, a FIFO, a folder) raises ValueError."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ValueError(f"model file {os.fspath(path)} is not a regular file")
            if st.st_size > MAX_MODEL_BYTES:
                raise ValueError(f"model file {os.fspath(path)} has {st.st_size} bytes, above {MAX_MODEL_BYTES}")
            data = f.read(MAX_MODEL_BYTES + 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"Unable to open file at {os.fspath(path)}") from None
    except IsADirectoryError:
        raise ValueError(f"model file {os.fspath(path)} is not a regular file") from None
    if len(data) > MAX_MODEL_BYTES:
        raise ValueError(f"model file {os.fspath(path)} grew above {MAX_MODEL_BYTES} bytes while being read")
    return data


def _litert_interpreter() -> Callable[..., Any]:
    """ai-edge-litert's Interpreter (default resolver: XNNPACK on, which runs MediaPipe's custom ops)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter: Callable[..., Any] = Interpreter
    return interpreter


def _tflite_interpreter(model: VerifiedModel) -> Callable[..., Any]:
    """tflite-runtime's Interpreter, after refusing models with custom ops it cannot run."""
    custom_ops = model.structure.custom_ops
    if custom_ops:
        raise RuntimeError(
            f"tflite-runtime cannot run this model: it uses the custom op(s) {', '.join(custom_ops)}, "
            "which only ai-edge-litert's XNNPACK resolver provides; install it with `pip install ai-edge-litert`"
        )
    from tflite_runtime.interpreter import Interpreter  # pyright: ignore[reportMissingImports]  # optional extra

    interpreter: Callable[..., Any] = Interpreter
    return interpreter


def _pick_backend(backend: str) -> str:
    """Resolves "auto" to the installed backend, ai-edge-litert first."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        for name in ("litert", "tflite"):
            if importlib.util.find_spec(_MODULES[name]) is not None:
                return name
        raise ImportError("no TFLite runtime is installed; install one with `pip install ai-edge-litert`")
    if importlib.util.find_spec(_MODULES[backend]) is None:
        raise ImportError(f"backend={backend!r} needs the {_PACKAGES[backend]} package, which is not installed")
    return backend


def open_runtime(
    model: VerifiedModel | bytes,
    *,
    num_threads: int | None = None,
    delegate: str = "cpu",
    backend: str = "auto",
    gpu_precision: str = "fp16",
    gpu_fallback: bool = False,
) -> Runtime:
    """Loads `model` (a `VerifiedModel` from `verify`, or bytes, verified here first): on the CPU via `backend`
    ("auto", "litert", "tflite") with `num_threads` (None: all cores), or on the GPU with `gpu_precision`. A GPU
    that cannot start raises `GpuUnavailableError` (a RuntimeError saying why and how to fix it); with
    `gpu_fallback` it logs one warning and runs on the CPU instead."""
    if delegate not in DELEGATES:
        raise ValueError(f"delegate must be one of {DELEGATES}, got {delegate!r}")
    if gpu_precision not in PRECISIONS:
        raise ValueError(f"gpu_precision must be one of {PRECISIONS}, got {gpu_precision!r}")
    threads = check_num_threads(num_threads)
    if not isinstance(model, VerifiedModel):
        model = verify(model)
    if delegate == "gpu":
        try:
            return open_gpu_runtime(model, precision=gpu_precision)
        except GpuUnavailableError as e:
            if not gpu_fallback:
                raise
            log = logging.getLogger("segkit")
            log.warning("segkit could not start the GPU (%s); running on the CPU instead (gpu_fallback=True)", e.reason)
            log.debug("%s", e)
    name = _pick_backend(backend)
    if name == "litert":
        return InterpreterRuntime(_litert_interpreter(), model, threads, "ai-edge-litert")
    return InterpreterRuntime(_tflite_interpreter(model), model, threads, "tflite-runtime")
