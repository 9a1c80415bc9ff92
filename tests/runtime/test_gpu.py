"""The LiteRT GPU backend: GPU against CPU on every shared model, the runtime contract, the segmenter on the GPU,
and, with no GPU at all, the clear error and the CPU fallback.

`gpu` tests skip where no GPU starts (fail with SEGKIT_REQUIRE_GPU=1; see conftest.py). On lavapipe the first run
of each kernel set compiles shaders (~20-30 s per model and precision with a cold Mesa shader cache, ~0.1 s warm):
keep these tests few.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

from segkit.metadata import read_model_info
from segkit.runtime import GpuUnavailableError, Runtime, TensorSpec, gpu, native_log, open_runtime, read_model_file
from tests.conftest import REPO, load_rgb, model_path

MODELS = ("selfie_segmenter.tflite", "selfie_segmenter_landscape.tflite", "hair_segmenter.tflite", "deeplabv3.tflite")
# hair_segmenter unpools with MaxPoolingWithArgmax2D: on a photo, near-ties in the argmax (fp32 rounding of ~1e-7)
# move a few values to a neighbouring pixel, so its max |diff| is only bounded on an input without near-ties.
ARGMAX_UNPOOLING = "hair_segmenter.tflite"

_references: dict[str, tuple[bytes, np.ndarray, np.ndarray, tuple[TensorSpec, ...]]] = {}


def _photo_input(model: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """astronaut.png resized to the model's input and normalized by its metadata (hair: 4th channel 0)."""
    from PIL import Image as PILImage

    _, h, w, c = shape
    norm = read_model_info(model).normalization
    assert norm is not None
    pixels = np.asarray(
        PILImage.fromarray(load_rgb("astronaut.png")).resize((w, h), PILImage.Resampling.BILINEAR), np.float32
    )
    x = np.zeros((1, h, w, c), np.float32)
    x[0, ..., :3] = (pixels - norm.mean[0]) / norm.std[0]
    return x


def _reference(name: str) -> tuple[bytes, np.ndarray, np.ndarray, tuple[TensorSpec, ...]]:
    """(model, photo input, CPU output, CPU specs) for a shared model, computed once per session."""
    if name not in _references:
        model = read_model_file(model_path(name))
        cpu = open_runtime(model, num_threads=1)
        x = _photo_input(model, cpu.input_spec.shape)
        _references[name] = (model, x, cpu.run(x)[0].copy(), (cpu.input_spec, *cpu.output_specs))
        cpu.close()
    return _references[name]


def _categories(y: np.ndarray) -> np.ndarray:
    """The category per pixel: argmax over channels, or > 0.5 for a 1-channel model."""
    return y[..., 0] > 0.5 if y.shape[-1] == 1 else y.argmax(-1)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", MODELS)
def test_gpu_matches_cpu(name: str, precision: str) -> None:
    model, x, ref, cpu_specs = _reference(name)
    rt = open_runtime(model, delegate="gpu", gpu_precision=precision)
    try:
        assert rt.accelerator == "gpu" and isinstance(rt, gpu.GpuRuntime)
        assert rt.fully_accelerated is True, f"{name}: not every op runs on the GPU"
        assert (rt.input_spec, *rt.output_specs) == cpu_specs
        out = rt.run(x)[0]
        agreement = float((_categories(out) == _categories(ref)).mean())
        diff = np.abs(out - ref)
        if precision == "fp16":
            assert agreement >= 0.998, f"{name} fp16: category agreement {agreement:.5f}"
            return
        assert agreement == 1.0, f"{name} fp32: category agreement {agreement:.6f}"
        if name != ARGMAX_UNPOOLING:
            assert diff.max() <= 1e-4, f"{name} fp32: max |diff| {diff.max():.3g}"
            return
        assert (diff <= 1e-4).mean() >= 0.98, f"{name} fp32: {(diff > 1e-4).mean():.2%} values off by > 1e-4"
        smooth = np.random.default_rng(0).random(x.shape, dtype=np.float32)
        smooth[..., 3] = 0.0
        cpu = open_runtime(model, num_threads=1)
        worst = float(np.abs(rt.run(smooth)[0] - cpu.run(smooth)[0]).max())
        assert worst <= 1e-4, f"{name} fp32 on a random input: max |diff| {worst:.3g}"
    finally:
        rt.close()


@pytest.mark.gpu
def test_gpu_runtime_contract() -> None:
    """Same contract as the CPU backend: reused output buffers, input checks, idempotent close."""
    model = read_model_file(model_path("legacy/1x256x256x3_softmax.tflite"))
    rt = open_runtime(model, delegate="gpu", gpu_precision="fp32")
    assert isinstance(rt, Runtime) and rt.accelerator == "gpu"
    rng = np.random.default_rng(3)
    xa, xb = rng.random((1, 256, 256, 3), dtype=np.float32), rng.random((1, 256, 256, 3), dtype=np.float32)
    out_a = rt.run(xa)[0]
    copy_a = out_a.copy()
    np.testing.assert_allclose(copy_a.sum(-1), 1.0, rtol=1e-5)
    before = xb.copy()
    out_b = rt.run(xb)[0]
    np.testing.assert_array_equal(xb, before)
    assert out_b is out_a, "outputs are the runtime's reused buffers (valid until the next run)"
    assert not np.array_equal(copy_a, out_b)
    np.testing.assert_array_equal(rt.run(xa)[0], copy_a)
    with pytest.raises(ValueError, match=r"input tensor must be float32 \(1, 256, 256, 3\), got float64"):
        rt.run(xa.astype(np.float64))
    not_an_array: Any = [[0.0]]  # deliberately the wrong type
    with pytest.raises(ValueError, match="got list"):
        rt.run(not_an_array)
    rt.close()
    rt.close()
    with pytest.raises(RuntimeError, match="closed"):
        rt.run(xa)


@pytest.mark.gpu
def test_segmenter_runs_on_the_gpu() -> None:
    """End to end: the same pre/postprocessing on GPU fp32 gives the CPU's masks."""
    from PIL import Image as PILImage

    from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions

    image = np.asarray(PILImage.fromarray(load_rgb("astronaut.png")).resize((96, 80), PILImage.Resampling.BILINEAR))

    def segment(delegate: BaseOptions.Delegate) -> tuple[str, np.ndarray, np.ndarray]:
        base = BaseOptions(
            model_asset_path=str(model_path("selfie_segmenter.tflite")), delegate=delegate, gpu_precision="fp32"
        )
        options = ImageSegmenterOptions(base_options=base, output_category_mask=True)
        with ImageSegmenter.create_from_options(options) as segmenter:
            result = segmenter.segment(image)
            assert result.confidence_masks is not None and result.category_mask is not None
            return (
                segmenter.accelerator,
                result.confidence_masks[0].numpy_view().copy(),
                result.category_mask.numpy_view().copy(),
            )

    gpu_acc, gpu_conf, gpu_cat = segment(BaseOptions.Delegate.GPU)
    cpu_acc, cpu_conf, cpu_cat = segment(BaseOptions.Delegate.CPU)
    assert (gpu_acc, cpu_acc) == ("gpu", "cpu")
    assert float(np.abs(gpu_conf - cpu_conf).max()) <= 1e-4
    np.testing.assert_array_equal(gpu_cat, cpu_cat)


_NO_DRIVER_SCRIPT = textwrap.dedent(
    """
    import json, logging, sys
    import numpy as np
    from segkit.runtime import open_runtime, read_model_file

    model = read_model_file(sys.argv[1])
    out = {}
    try:
        open_runtime(model, delegate="gpu")
        out["error"] = None
    except RuntimeError as e:
        out.update(error=str(e), type=type(e).__name__, reason=e.reason)
    warnings = []

    class Collect(logging.Handler):
        def emit(self, record):
            if record.levelno == logging.WARNING:
                warnings.append(record.getMessage())

    logging.getLogger("segkit").addHandler(Collect())
    rt = open_runtime(model, delegate="gpu", gpu_fallback=True, gpu_precision="fp32")
    rt.run(np.zeros(rt.input_spec.shape, rt.input_spec.dtype))
    out.update(accelerator=rt.accelerator, warnings=warnings)
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_no_vulkan_driver_raises_a_clear_error_and_fallback_warns_once() -> None:
    """With the Vulkan driver file pointing nowhere, no GPU starts: the error says why and how to fix it."""
    env = {k: v for k, v in os.environ.items() if k not in ("VK_ICD_FILENAMES", "VK_DRIVER_FILES")}
    env["VK_DRIVER_FILES"] = "/nonexistent/segkit_icd.json"
    model = str(model_path("legacy/1x256x256x3_softmax.tflite"))
    done = subprocess.run(
        [sys.executable, "-c", _NO_DRIVER_SCRIPT, model], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["type"] == "GpuUnavailableError"
    message = out["error"]
    assert "Vulkan" in out["reason"], out["reason"]
    for fix in ("apt-get install libvulkan1", "lavapipe", "Delegate.CPU", "gpu_fallback=True"):
        assert fix in message, f"{fix!r} missing from: {message}"
    assert ".sh" not in message and "shared/" not in message, "no file of segkit's development layout"
    assert "No adapters found" in message, "LiteRT's own log belongs in the exception"
    assert "No adapters found" not in done.stderr, "LiteRT's log must not reach the console"
    assert out["accelerator"] == "cpu"
    assert len(out["warnings"]) == 1 and "running on the CPU" in out["warnings"][0], out["warnings"]
    assert out["reason"] in out["warnings"][0]


def test_gpu_unavailable_error_is_a_runtime_error() -> None:
    e = GpuUnavailableError("no Vulkan GPU adapter was found", "install a driver", "ERROR: No adapters found")
    assert isinstance(e, RuntimeError)
    assert str(e).startswith("segkit could not start the GPU: no Vulkan GPU adapter was found. To fix it: install")
    assert str(e).endswith("LiteRT's log:\nERROR: No adapters found")


_NO_ADAPTER = "ERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU environment: INTERNAL: No adapters found"


@pytest.mark.parametrize(
    ("log", "reason", "fix"),
    [
        (
            "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: No such file or directory\n"
            + _NO_ADAPTER,
            "libvulkan.so.1 is not installed",
            "apt-get install libvulkan1",
        ),
        (
            "Warning: Vulkan shaderUniform*ArrayDynamicIndexing required.\n"
            " - While initializing adapter (backend=BackendType::Vulkan)\n" + _NO_ADAPTER,
            "driver is too old",
            "Mesa >= 25",
        ),
        (
            "Warning: vkCreateInstance: Found no drivers!\n" + _NO_ADAPTER,
            "no usable Vulkan driver",
            "lavapipe",
        ),
        (_NO_ADAPTER, "no Vulkan GPU adapter", "apt-get install libvulkan1"),
        ("ERROR: Op MAGIC_OP is not supported by the GPU delegate", "does not support an op", "on the CPU"),
        ("", "LiteRT failed to compile the model for the GPU (ERROR: boom)", "libvulkan1"),
    ],
    ids=["no-loader", "old-mesa", "no-driver", "no-adapter", "unsupported-op", "unknown"],
)
def test_diagnose_reads_litert_log(monkeypatch: pytest.MonkeyPatch, log: str, reason: str, fix: str) -> None:
    monkeypatch.setattr(gpu, "_first_adapter_cause", None)
    got_reason, got_fix = gpu.diagnose(log, "ERROR: boom\n")
    assert reason in got_reason and fix in got_fix


def test_diagnose_remembers_the_first_adapter_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteRT prints the Vulkan details only on the first failed adapter search; later ones reuse that cause."""
    monkeypatch.setattr(gpu, "_first_adapter_cause", None)
    first = gpu.diagnose("Warning: Vulkan shaderUniform*ArrayDynamicIndexing required.\n" + _NO_ADAPTER, "")
    assert gpu.diagnose(_NO_ADAPTER, "") == first


def test_capture_takes_c_level_writes_and_restores_the_fds() -> None:
    with native_log.capture() as captured:
        os.write(2, b"from C: No adapters found\n")
        os.write(1, b"INFO: on stdout\n")
    assert captured.stderr == "from C: No adapters found\n" and captured.stdout == "INFO: on stdout\n"
    with native_log.capture() as again:
        pass
    assert again.text == ""


def test_relevant_log_drops_info_noise() -> None:
    text = "INFO: [environment.cc:36] Creating\nI0000 00:00 x.cc] Selected adapter\n" + _NO_ADAPTER + "\n"
    assert gpu._relevant_log(text) == _NO_ADAPTER
