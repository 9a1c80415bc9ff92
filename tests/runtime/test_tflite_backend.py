"""The optional tflite-runtime backend; runs only in a venv with the extra (see run_tflite_extra.sh)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

# run_tflite_extra.sh sets SEGKIT_REQUIRE_TFLITE=1 in the venv it builds: there a missing extra is a failure.
_MISSING = None
if importlib.util.find_spec("tflite_runtime") is None:
    _MISSING = "tflite-runtime extra not installed (tests/runtime/run_tflite_extra.sh builds a venv with it)"
elif int(np.__version__.split(".")[0]) >= 2:
    _MISSING = "tflite-runtime extra needs numpy<2"
if _MISSING is not None:
    if os.environ.get("SEGKIT_REQUIRE_TFLITE") == "1":
        raise ImportError(f"SEGKIT_REQUIRE_TFLITE=1 but {_MISSING}")
    pytest.skip(_MISSING, allow_module_level=True)

from segkit.runtime import open_runtime, read_model_file  # noqa: E402  (after the module-level skip)
from tests.conftest import model_path  # noqa: E402

HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None


@pytest.mark.parametrize("backend", ["tflite", "auto"] if not HAS_LITERT else ["tflite"])
@pytest.mark.parametrize("name", ["deeplabv3.tflite", "deeplabv3_without_metadata.tflite"])
def test_builtin_op_models_run(backend: str, name: str) -> None:
    rt = open_runtime(read_model_file(model_path(name)), backend=backend, num_threads=1)
    assert rt.backend == "tflite-runtime"
    assert rt.input_spec.shape == (1, 257, 257, 3)
    x = np.random.default_rng(0).random(rt.input_spec.shape, dtype=np.float32)
    first = rt.run(x)[0].copy()
    assert first.shape == (1, 257, 257, 21) and np.isfinite(first).all()
    np.testing.assert_array_equal(rt.run(x)[0], first)


def test_softmax_model_runs_and_sums_to_one() -> None:
    rt = open_runtime(read_model_file(model_path("legacy/1x256x256x3_softmax.tflite")), backend="tflite")
    (out,) = rt.run(np.random.default_rng(1).random((1, 256, 256, 3), dtype=np.float32))
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "op"),
    [
        ("selfie_segmenter.tflite", "Convolution2DTransposeBias"),
        ("selfie_segmenter_landscape.tflite", "Convolution2DTransposeBias"),
        ("hair_segmenter.tflite", "MaxPoolingWithArgmax2D"),
        ("legacy/hair_segmentation.tflite", "MaxUnpooling2D"),
    ],
)
def test_custom_op_models_fail_clearly(name: str, op: str) -> None:
    with pytest.raises(RuntimeError, match=rf"custom op\(s\).*{op}.*pip install ai-edge-litert"):
        open_runtime(read_model_file(model_path(name)), backend="tflite")


@pytest.mark.parametrize(
    "bad", [b"", b"\x89PNG\r\n\x1a\n" + bytes(32), bytes(range(256)) * 4], ids=["empty", "png", "garbage"]
)
def test_bad_bytes_raise_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError):
        open_runtime(bad, backend="tflite")


@pytest.mark.skipif(HAS_LITERT, reason="ai-edge-litert is installed here")
def test_litert_backend_missing_is_an_import_error() -> None:
    with pytest.raises(ImportError, match="ai-edge-litert"):
        open_runtime(read_model_file(model_path("deeplabv3.tflite")), backend="litert")
