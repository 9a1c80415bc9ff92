"""The seam for the LiteRT GPU backend (CompiledModel + HardwareAccelerator.GPU); not implemented yet."""

from __future__ import annotations

from segkit.runtime.base import Runtime


def open_gpu_runtime(model: bytes, *, precision: str) -> Runtime:
    """Loads `model` on the GPU with fp16 or fp32 math; raises NotImplementedError until the backend lands."""
    raise NotImplementedError(
        f"segkit's GPU delegate is not implemented yet (asked for {precision}); use the CPU delegate, "
        "or set gpu_fallback=True to fall back to the CPU"
    )
