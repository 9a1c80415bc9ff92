"""The GPU gate: tests marked `gpu` run only where LiteRT's GPU accelerator starts, probed once per session.

Where it cannot start they skip with LiteRT's diagnosed reason; in CI (``CI`` set, and scripts/test.sh sets up a
software Vulkan GPU there) or with ``SEGKIT_REQUIRE_GPU=1`` they fail instead, so a CI machine that lost its
Vulkan driver cannot pass by skipping.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import model_path

_probe: list[str | None] = []


def gpu_unavailable_reason() -> str | None:
    """None when a tiny model compiles on the GPU, else why not (GpuUnavailableError's message); probed once."""
    if not _probe:
        from segkit.runtime import GpuUnavailableError, verify
        from segkit.runtime.gpu import open_gpu_runtime

        try:
            model = verify(model_path("legacy/1x256x256x3_softmax.tflite").read_bytes())
            open_gpu_runtime(model, precision="fp32").close()
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
    if os.environ.get("SEGKIT_REQUIRE_GPU") == "1" or os.environ.get("CI"):
        pytest.fail(f"CI or SEGKIT_REQUIRE_GPU=1, but the GPU cannot start: {reason}", pytrace=False)
    pytest.skip(f"no GPU: {reason.splitlines()[0]}")
