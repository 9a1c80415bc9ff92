"""The LiteRT GPU backend: `CompiledModel` with `HardwareAccelerator.GPU` (LiteRT's WebGPU accelerator over Vulkan).

LiteRT reports why a GPU cannot start only on the C-level stderr (the Python exception text is empty of reasons),
so creation runs with fd 2 redirected to a temporary file; the captured text is parsed into a `GpuUnavailableError`
that says why and how to fix it, and carries the raw text. Nothing of it reaches the console.

Not every op accelerated (`is_fully_accelerated()` false): LiteRT runs the rest on the CPU. segkit logs one warning
naming the model and keeps going (the runtime's `fully_accelerated` is False); `strict=True` makes it an error.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from segkit.runtime.base import TensorSpec, check_input

_LOG = logging.getLogger("segkit")
PRECISIONS = ("fp16", "fp32")
# fd 2 is process-wide: one redirection at a time.
_STDERR_LOCK = threading.Lock()
# LiteRT prints the Vulkan details only on the first failed adapter search of a process; later ones just say
# "No adapters found". The first specific cause is kept to explain those.
_first_adapter_cause: tuple[str, str] | None = None

_FIX_VULKAN = (
    "install a Vulkan loader and driver (Debian/Ubuntu: `apt-get install libvulkan1 mesa-vulkan-drivers`, "
    "or your GPU vendor's driver); on a machine without a GPU, `source <(bash shared/gpu/lavapipe.sh)` sets up "
    "a software Vulkan GPU (Mesa 25 lavapipe)"
)
_FIX_CPU = (
    "or run on the CPU with BaseOptions(delegate=BaseOptions.Delegate.CPU), or let segkit fall back to the CPU "
    "with a warning with BaseOptions(gpu_fallback=True)"
)
# Harmless lines of LiteRT's start-up log, left out of error messages.
_NOISE = ("libLiteRtCompilerPlugin", "compiler_plugin.cc", "npu_registry", "XDG_RUNTIME_DIR", "before InitGoogle")


class GpuUnavailableError(RuntimeError):
    """The GPU accelerator could not start; `reason` is the diagnosed cause, `log` LiteRT's stderr text."""

    def __init__(self, reason: str, fix: str, log: str) -> None:
        self.reason = reason
        self.fix = fix
        self.log = log
        message = f"segkit could not start the GPU: {reason}. To fix it: {fix}; {_FIX_CPU}."
        if log:
            message += f"\nLiteRT's log:\n{log}"
        super().__init__(message)


class _Captured:
    """Holds what was written to fd 2 inside `_capture_stderr`, once the block has ended."""

    text: str = ""


def _flush_all() -> None:
    """Flushes Python's and C stdio's stderr buffers, so a redirection of fd 2 splits the text at the right place."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _capture_stderr() -> Iterator[_Captured]:
    """Redirects the process's fd 2 to a temporary file for the block (C libraries included)."""
    captured = _Captured()
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:
            yield captured
            return
        with tempfile.TemporaryFile() as tmp:
            _flush_all()
            os.dup2(tmp.fileno(), 2)
            try:
                yield captured
            finally:
                _flush_all()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                captured.text = tmp.read().decode("utf-8", errors="replace")


def _relevant_log(text: str) -> str:
    """LiteRT's stderr without INFO lines and harmless noise (vendor plugins, XDG_RUNTIME_DIR, glog's banner)."""
    keep = []
    for line in text.splitlines():
        if line.startswith("INFO") or re.match(r"I\d{4} ", line) or not line.strip():
            continue
        if any(noise in line for noise in _NOISE):
            continue
        keep.append(line)
    return "\n".join(keep[-40:])


def diagnose(log: str, error: str) -> tuple[str, str]:
    """The (reason, fix) behind a failed GPU start, read from LiteRT's stderr `log` and the exception text."""
    global _first_adapter_cause
    cause: tuple[str, str] | None = None
    if "Couldn't load Vulkan" in log or "libvulkan.so" in log:
        cause = ("the Vulkan loader libvulkan.so.1 is not installed", _FIX_VULKAN)
    elif "ArrayDynamicIndexing" in log:
        cause = (
            "the Vulkan driver is too old: LiteRT's WebGPU backend (Dawn) needs shaderUniform*ArrayDynamicIndexing, "
            "which e.g. Debian 12's lavapipe (Mesa 22.3) lacks",
            "upgrade the Vulkan driver (Mesa >= 25 works), e.g. `source <(bash shared/gpu/lavapipe.sh)`",
        )
    elif "Found no drivers" in log or "VK_ERROR_INCOMPATIBLE_DRIVER" in log or "Failed to open JSON file" in log:
        where = os.environ.get("VK_DRIVER_FILES") or os.environ.get("VK_ICD_FILENAMES")
        detail = f" (VK_DRIVER_FILES/VK_ICD_FILENAMES is {where!r}; check that file)" if where else ""
        cause = (f"the Vulkan loader found no usable Vulkan driver{detail}", _FIX_VULKAN)
    if cause is not None:
        if "No adapters found" in log and _first_adapter_cause is None:
            _first_adapter_cause = cause
        return cause
    if "No adapters found" in log:
        if _first_adapter_cause is not None:
            return _first_adapter_cause
        return ("no Vulkan GPU adapter was found", _FIX_VULKAN)
    unsupported = re.search(r"^.*(?:not supported|unsupported|Unsupported).*$", log, re.MULTILINE)
    if unsupported is not None:
        return (
            f"the GPU accelerator does not support an op of this model ({unsupported.group(0).strip()})",
            "run this model on the CPU",
        )
    if "libLiteRtWebGpuAccelerator" in log:
        return (
            "LiteRT's GPU accelerator library (libLiteRtWebGpuAccelerator.so) could not be loaded",
            "reinstall ai-edge-litert (`pip install --force-reinstall 'ai-edge-litert>=2.3,<2.4'`)",
        )
    detail = error.strip().replace("\n", " ") or "no reason given"
    return (f"LiteRT failed to compile the model for the GPU ({detail})", _FIX_VULKAN)


def _model_facts(model: bytes) -> tuple[str, dict[str, tuple[float, int] | None]]:
    """The metadata name of the model and each tensor's (scale, zero_point) by name, which CompiledModel omits."""
    from segkit.metadata import read_model_info

    info = read_model_info(model)
    return info.name or "unnamed model", {t.name: t.quantization for t in (*info.inputs, *info.outputs)}


def _specs(details: dict[str, dict[str, Any]], quant: dict[str, tuple[float, int] | None]) -> tuple[TensorSpec, ...]:
    """TensorSpecs in signature order from get_input/output_tensor_details()."""
    return tuple(
        TensorSpec(
            name=str(d["name"]),
            shape=tuple(int(x) for x in d["shape"]),
            dtype=np.dtype(d["dtype"]),
            quantization=quant.get(str(d["name"])),
        )
        for d in details.values()
    )


class GpuRuntime:
    """A model compiled for LiteRT's GPU accelerator; same contract as the CPU `InterpreterRuntime`."""

    accelerator = "gpu"
    backend = "ai-edge-litert"

    def __init__(self, compiled: Any, inputs: list[Any], outputs: list[Any], precision: str, model: bytes) -> None:
        name, quant = _model_facts(model)
        signature = next(iter(compiled.get_signature_list()))
        in_specs = _specs(compiled.get_input_tensor_details(signature), quant)
        if len(in_specs) != 1 or len(inputs) != 1:
            raise ValueError(f"a segmentation model has exactly one input tensor; this one has {len(in_specs)}")
        self.input_spec = in_specs[0]
        self.output_specs = _specs(compiled.get_output_tensor_details(signature), quant)
        self.precision = precision
        outs = ", ".join(f"{o.name} {o.shape}" for o in self.output_specs)
        self.model_label = f"{name!r} ({self.input_spec.name} {self.input_spec.shape} -> {outs}; {len(model)} bytes)"
        self.fully_accelerated = bool(compiled.is_fully_accelerated())
        self._compiled = compiled
        self._in = inputs[0]
        self._out_buffers = outputs
        self._outputs = [np.empty(s.shape, s.dtype) for s in self.output_specs]
        self._lock = threading.Lock()

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Runs the model on `tensor` (exactly input_spec's shape and dtype); outputs valid until the next run()."""
        check_input(self.input_spec, tensor)
        with self._lock:
            if self._compiled is None:
                raise RuntimeError("the runtime is closed")
            try:
                self._in.write(tensor)
                self._compiled.run_by_index(0, [self._in], self._out_buffers)
                for out, buf in zip(self._outputs, self._out_buffers):
                    np.copyto(out, buf.read(out.size, out.dtype).reshape(out.shape))
            except RuntimeError as e:
                raise RuntimeError(f"the GPU run failed (LiteRT's reason is on stderr): {e}".strip()) from e
        return list(self._outputs)

    def close(self) -> None:
        """Frees the tensor buffers and the compiled model; safe to call twice."""
        with self._lock:
            if self._compiled is None:
                return
            with _capture_stderr() as captured:
                for buf in (self._in, *self._out_buffers):
                    with contextlib.suppress(Exception):
                        buf.destroy()
                self._compiled.close()
                self._compiled = None
                self._in = None
                self._out_buffers = []
        _LOG.debug("LiteRT GPU shut-down log:\n%s", captured.text)

    def __repr__(self) -> str:
        return f"<GpuRuntime {self.precision} input={self.input_spec.shape} fully_accelerated={self.fully_accelerated}>"


def open_gpu_runtime(model: bytes, *, precision: str = "fp16", strict: bool = False) -> GpuRuntime:
    """Compiles verified `model` bytes for the GPU with fp16 (default, like MediaPipe) or fp32 math; raises
    `GpuUnavailableError` saying why and how to fix it when no GPU can start (or, with `strict`, not every op runs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"gpu_precision must be one of {PRECISIONS}, got {precision!r}")
    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import GpuOptions, Options
    except ImportError as e:
        raise GpuUnavailableError(
            f"ai-edge-litert's CompiledModel API is not available ({e})",
            "install it with `pip install 'ai-edge-litert>=2.3,<2.4'`",
            "",
        ) from e
    options = Options(
        hardware_accelerators=HardwareAccelerator.GPU,
        gpu_options=GpuOptions(enforce_f32=precision == "fp32"),
    )
    compiled = None
    runtime: GpuRuntime | None = None
    error: Exception | None = None
    with _capture_stderr() as captured:
        try:
            compiled = CompiledModel.from_buffer(model, options=options)
            inputs = compiled.create_input_buffers(0)
            outputs = compiled.create_output_buffers(0)
            runtime = GpuRuntime(compiled, inputs, outputs, precision, model)
            # The first buffer write of a process sets up LiteRT's host environment, with more log noise.
            runtime._in.write(np.zeros(runtime.input_spec.shape, runtime.input_spec.dtype))
        except (RuntimeError, ValueError) as e:
            error = e
    if runtime is None or error is not None:
        if compiled is not None:
            compiled.close()
        if isinstance(error, ValueError):
            raise error
        log = _relevant_log(captured.text)
        reason, fix = diagnose(log, str(error or ""))
        raise GpuUnavailableError(reason, fix, log) from error
    _LOG.debug("LiteRT GPU start-up log:\n%s", captured.text)
    if not runtime.fully_accelerated:
        message = (
            f"the GPU accelerator does not run every op of model {runtime.model_label}: "
            "the rest runs on the CPU, which may be slow"
        )
        if strict:
            runtime.close()
            raise GpuUnavailableError(message, "run this model on the CPU", "")
        _LOG.warning("%s", message)
    return runtime
