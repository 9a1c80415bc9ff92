"""The LiteRT GPU backend: `CompiledModel` with `HardwareAccelerator.GPU` (LiteRT's WebGPU accelerator over Vulkan).

LiteRT reports why a GPU cannot start only in its native log (the Python exception text is empty of reasons), so
creation runs inside `native_log.capture`; the captured text is parsed into a `GpuUnavailableError` that says why
and how to fix it, and carries the relevant lines. On success the start-up log goes to the `segkit` logger (debug)
and to the console only as far as `SEGKIT_LOG_LEVEL` shows it. Each runtime owns its LiteRT environment and
closes it in `close()` (inside a capture too), so the `DestroyAccelerator` lines LiteRT prints then stay quiet;
runtimes still open at interpreter exit are closed by an `atexit` hook for the same reason.

Not every op accelerated (`is_fully_accelerated()` false): LiteRT runs the rest on the CPU. segkit logs one warning
naming the model and keeps going (the runtime's `fully_accelerated` is False); `strict=True` makes it an error.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import threading
import weakref
from typing import Any

import numpy as np

from segkit.runtime import native_log
from segkit.runtime.base import TensorSpec, VerifiedModel, check_input

_LOG = logging.getLogger("segkit")
PRECISIONS = ("fp16", "fp32")
# LiteRT prints the Vulkan details only on the first failed adapter search of a process; later ones just say
# "No adapters found". The first specific cause is kept to explain those.
_first_adapter_cause: tuple[str, str] | None = None
# Runtimes not yet closed, closed at interpreter exit inside a capture (see the module docstring).
_OPEN: weakref.WeakSet[GpuRuntime] = weakref.WeakSet()
_started = False  # whether a GPU environment was created in this process (its global one logs at exit)

_FIX_VULKAN = (
    "install a Vulkan loader and driver (Debian/Ubuntu: `apt-get install libvulkan1 mesa-vulkan-drivers`, or your "
    "GPU vendor's driver); on a machine without a GPU, Mesa's software driver lavapipe (Mesa >= 25) works, with "
    "VK_DRIVER_FILES pointing at its lvp_icd JSON file"
)
_FIX_CPU = (
    "or run on the CPU with BaseOptions(delegate=BaseOptions.Delegate.CPU), or let segkit fall back to the CPU "
    "with a warning with BaseOptions(gpu_fallback=True)"
)


class GpuUnavailableError(RuntimeError):
    """The GPU accelerator could not start; `reason` is the diagnosed cause, `log` LiteRT's relevant log lines."""

    def __init__(self, reason: str, fix: str, log: str) -> None:
        self.reason = reason
        self.fix = fix
        self.log = log
        message = f"segkit could not start the GPU: {reason}. To fix it: {fix}; {_FIX_CPU}."
        if log:
            message += f"\nLiteRT's log:\n{log}"
        super().__init__(message)


def _relevant_log(text: str) -> str:
    """LiteRT's log without informational lines and harmless noise (vendor plugins, XDG_RUNTIME_DIR, glog's
    banner): its last 40 warnings and errors."""
    return "\n".join(native_log.shown(text, logging.WARNING).splitlines()[-40:])


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
            "upgrade the Vulkan driver: Mesa >= 25 works (its `mesa-vulkan-drivers` package, lavapipe included)",
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


def _quantization(model: VerifiedModel) -> dict[str, tuple[float, int] | None]:
    """Each tensor's (scale, zero_point) by name, which CompiledModel omits, from the verified structure."""
    return {t.name: t.quantization for t in model.structure.subgraphs[0].tensors}


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

    def __init__(
        self,
        compiled: Any,
        environment: Any,
        buffers: tuple[list[Any], list[Any]],
        precision: str,
        model: VerifiedModel,
    ) -> None:
        inputs, outputs = buffers
        quant = _quantization(model)
        signature = next(iter(compiled.get_signature_list()))
        in_specs = _specs(compiled.get_input_tensor_details(signature), quant)
        if len(in_specs) != 1 or len(inputs) != 1:
            raise ValueError(f"a segmentation model has exactly one input tensor; this one has {len(in_specs)}")
        self.input_spec = in_specs[0]
        self.output_specs = _specs(compiled.get_output_tensor_details(signature), quant)
        self.precision = precision
        outs = ", ".join(f"{o.name} {o.shape}" for o in self.output_specs)
        self.model_label = f"{self.input_spec.name} {self.input_spec.shape} -> {outs} ({len(model.content)} bytes)"
        self.fully_accelerated = bool(compiled.is_fully_accelerated())
        # LiteRT's objects (untyped); None once closed
        self._compiled: Any = compiled
        self._environment: Any = environment
        self._in: Any = inputs[0]
        self._out_buffers: list[Any] = outputs
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
                for out, buf in zip(self._outputs, self._out_buffers, strict=True):
                    np.copyto(out, buf.read(out.size, out.dtype).reshape(out.shape))
            except RuntimeError as e:
                raise RuntimeError(f"the GPU run failed (LiteRT's reason is on stderr): {e}".strip()) from e
        return list(self._outputs)

    def close(self) -> None:
        """Frees the tensor buffers, the compiled model and its LiteRT environment; safe to call twice."""
        with self._lock:
            if self._compiled is None:
                return
            _OPEN.discard(self)
            with native_log.quiet() as captured:
                for buf in (self._in, *self._out_buffers):
                    with contextlib.suppress(Exception):
                        buf.destroy()
                self._compiled.close()
                self._environment.close()
                self._compiled = self._environment = self._in = None
                self._out_buffers = []
        _LOG.debug("LiteRT GPU shut-down log:\n%s", captured.text)

    def __repr__(self) -> str:
        return f"<GpuRuntime {self.precision} input={self.input_spec.shape} fully_accelerated={self.fully_accelerated}>"


def _litert_dir() -> str:
    """Where ai-edge-litert's native libraries are (what its default environment is created with)."""
    import ai_edge_litert

    package: str = ai_edge_litert.__file__
    return os.path.dirname(os.path.abspath(package))


@atexit.register
def _close_open_runtimes() -> None:
    """Close the runtimes still open at interpreter exit, so their environments go quietly (see the docstring);
    LiteRT's process-wide GPU environment is destroyed after this hook, so fd 2 is filtered from here on."""
    for runtime in list(_OPEN):
        with contextlib.suppress(Exception):
            runtime.close()
    if _started:
        native_log.filter_stderr_until_exit()


def open_gpu_runtime(model: VerifiedModel, *, precision: str = "fp16", strict: bool = False) -> GpuRuntime:
    """Compiles a verified model for the GPU with fp16 (default, like MediaPipe) or fp32 math; raises
    `GpuUnavailableError` saying why and how to fix it when no GPU can start (or, with `strict`, not every op runs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"gpu_precision must be one of {PRECISIONS}, got {precision!r}")
    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.environment import Environment, EnvironmentOptions
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
    compiled = environment = None
    runtime: GpuRuntime | None = None
    error: Exception | None = None
    global _started
    _started = True
    with native_log.capture() as captured:
        try:
            # the runtime's own environment (LiteRT's default one would live until interpreter exit)
            environment = Environment.create(options=EnvironmentOptions(runtime_path=_litert_dir()))
            compiled = CompiledModel.from_buffer(model.content, options=options, environment=environment)
            buffers = (compiled.create_input_buffers(0), compiled.create_output_buffers(0))
            runtime = GpuRuntime(compiled, environment, buffers, precision, model)
            # The first buffer write of a process sets up LiteRT's host environment, with more log noise.
            runtime._in.write(np.zeros(runtime.input_spec.shape, runtime.input_spec.dtype))
        except (RuntimeError, ValueError) as e:
            error = e
        finally:
            if runtime is None or error is not None:  # inside the capture: closing an environment logs too
                if compiled is not None:
                    compiled.close()
                if environment is not None:
                    environment.close()
    if runtime is None or error is not None:
        if isinstance(error, ValueError):
            raise error
        log = _relevant_log(captured.text)
        reason, fix = diagnose(log, str(error or ""))
        raise GpuUnavailableError(reason, fix, log) from error
    _LOG.debug("LiteRT GPU start-up log:\n%s", captured.text)
    native_log.write_back(captured)
    _OPEN.add(runtime)
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
