"""Shared fixtures: where the real models and test images live.

Tests find models through ``SEGKIT_MODEL_DIR`` (``.ci/run`` sets it to ``../shared/models``). A test that needs
a model it cannot find fails with a message that says where it looked; it never skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import segkit

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
TESTDATA = SHARED / "testdata"

# The shared models with TFLite metadata: every differential test runs on each of them.
MODELS_WITH_METADATA = (
    "selfie_segmenter.tflite",
    "selfie_segmenter_landscape.tflite",
    "hair_segmenter.tflite",
    "deeplabv3.tflite",
    "deeplabv3_softmax_locales.tflite",
)


def model_dir() -> Path:
    """The directory holding the shared models, from ``SEGKIT_MODEL_DIR`` (default ``../shared/models``)."""
    return Path(os.environ.get("SEGKIT_MODEL_DIR", SHARED / "models")).resolve()


def model_path(name: str) -> Path:
    """Path of a shared model file; fails the test loudly when it is missing."""
    path = model_dir() / name
    if not path.is_file():
        pytest.fail(
            f"model {name!r} not found at {path}; set SEGKIT_MODEL_DIR to the folder holding the shared models",
            pytrace=False,
        )
    return path


def data_file(name: str) -> Path:
    """Path of a shared test image; fails the test loudly when it is missing."""
    path = TESTDATA / name
    if not path.is_file():
        pytest.fail(f"test image {name!r} not found at {path}", pytrace=False)
    return path


def load_rgb(name: str) -> np.ndarray:
    """A shared test image as a C-contiguous uint8 (H, W, 3) array."""
    from PIL import Image as PILImage

    with PILImage.open(data_file(name)) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


@pytest.fixture(scope="session")
def models() -> Path:
    """The shared model directory."""
    d = model_dir()
    if not d.is_dir():
        pytest.fail(f"model directory {d} does not exist; set SEGKIT_MODEL_DIR", pytrace=False)
    return d


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return load_rgb("astronaut.png")


@pytest.fixture(scope="session")
def test_image() -> segkit.Image:
    """MediaPipe's DeepLab test input (horse and rider), decoded as MediaPipe's own tests do."""
    return segkit.Image.create_from_file(data_file("segmentation_input_rotation0.jpg"))


@pytest.fixture(scope="session")
def golden() -> np.ndarray:
    """MediaPipe's golden DeepLab category mask for ``test_image``, stored as category x 10."""
    from PIL import Image as PILImage

    with PILImage.open(data_file("segmentation_golden_rotation0.png")) as im:
        return np.asarray(im.convert("L"))


# --- the GPU gate: tests marked `gpu` run only where LiteRT's GPU accelerator starts, probed once per session.
# Where it cannot start they skip with LiteRT's diagnosed reason; in CI (``CI`` set, and scripts/test.sh sets up a
# software Vulkan GPU there) or with ``SEGKIT_REQUIRE_GPU=1`` they fail instead, so a CI machine that lost its
# Vulkan driver cannot pass by skipping.

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
