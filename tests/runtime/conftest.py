"""The GPU gate: tests marked `gpu` run only where LiteRT's GPU accelerator starts, probed once per session.

Where it cannot start they skip with LiteRT's diagnosed reason; with ``SEGKIT_REQUIRE_GPU=1`` (CI) they fail
instead, so a CI machine that lost its Vulkan driver cannot pass by skipping.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import model_path

_probe: list[str | None] = []


def gpu_unavailable_reason() -> str | None:
    """None when a tiny model compiles on the GPU, else why not (GpuUnavailableError's message); probed once."""
    if not _probe:
        from segkit.runtime import GpuUnavailableError
        from segkit.runtime.gpu import open_gpu_runtime

        try:
            open_gpu_runtime(model_path("legacy/1x256x256x3_softmax.tflite").read_bytes(), precision="fp32").close()
            _probe.append(None)
        except GpuUnavailableError as e:
            _probe.append(str(e))
    return _probe[0]


@pytest.fixture(autouse=True)
def _gpu_gate(request: pytest.FixtureRequest) -> None:
    """Skips (or, with SEGKIT_REQUIRE_GPU=1, fails) a `gpu`-marked test when no GPU starts here."""
    if request.node.get_closest_marker("gpu") is None:
        return
    reason = gpu_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("SEGKIT_REQUIRE_GPU") == "1":
        pytest.fail(f"SEGKIT_REQUIRE_GPU=1 but the GPU cannot start: {reason}", pytrace=False)
    pytest.skip(f"no GPU: {reason.splitlines()[0]}")
