"""segkit's legacy selfie_segmentation against the real mediapipe 0.10.21, in its own venv (numpy<2).

Run by ``tests/solutions/run_legacy_parity.sh``; the main suite does not collect this file (its name does not
match ``test_*.py``), and it fails at import when mediapipe 0.10.21 is not the installed mediapipe.

What is bit-exact and what is not:
* The graph's deterministic stages, run by MediaPipe's own calculators: the solution's graph
  (``selfie_segmentation_cpu.pbtxt``) rebuilt with its ImageToTensorCalculator, InferenceCalculator and
  TensorsToSegmentationCalculator options, but with a *probe* model (a reshape/slice of the input tensor, exact in
  any interpreter). The tensor (zero-border stretch, [0,1]) and the mask resized back to the image must equal
  segkit's bit for bit, over random sizes, contents and both tensor sizes.
* The real models: the interpreter kernels differ. mediapipe 0.10.21 bundles its own TFLite/XNNPACK build, and
  no ai-edge-litert release (seven from 1.0.1 to 2.3.0 were tried) reproduces its float results: the same input
  tensor gives model outputs a few float32 ulps apart at 5-15% of the tensor's pixels (more after the resize
  spreads them). So the real-model masks are compared within a tolerance (max |diff| seen: 2.3e-4 in 300
  images), asserted, not assumed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mediapipe as mp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segkit.postprocess import mask_linear_plan, resize_masks
from segkit.preprocess.legacy import make_zero_border_plan, zero_border_tensor
from segkit.runtime import open_runtime
from segkit.solutions.selfie_segmentation import SelfieSegmentation
from tests.conftest import REPO, load_rgb, model_path
from tests.modelbuilder import probe_model

if mp.__version__ != "0.10.21":
    raise ImportError(f"legacy_parity.py needs mediapipe 0.10.21, found {mp.__version__}")

from google.protobuf import text_format  # type: ignore[import-untyped]  # protobuf ships no stubs here

# mediapipe 0.10.21's modules (the main venv's mediapipe 1.2.2, which the checkers see, has none of them)
from mediapipe.calculators.tensor import (  # pyright: ignore[reportMissingImports]  # noqa: F401
    image_to_tensor_calculator_pb2,
    inference_calculator_pb2,
    tensors_to_segmentation_calculator_pb2,
)
from mediapipe.framework import calculator_pb2  # pyright: ignore[reportMissingImports]
from mediapipe.python.solution_base import SolutionBase  # pyright: ignore[reportMissingImports]

EXAMPLES = int(os.environ.get("SEGKIT_PARITY_EXAMPLES", "60"))
TENSOR_HEIGHTS = {0: 256, 1: 144}  # model_selection -> tensor height (width 256)
# The real-model tolerance, measured: max |diff| stayed below 2.5e-4 over 300 photo crops and noise images.
REAL_MAX_DIFF = 1e-3
REAL_MAX_FLIPPED = 1e-3  # fraction of pixels whose mask > 0.5 decision differs
CVZONE = Path(os.environ.get("SEGKIT_CVZONE_DIR", REPO / ".ci-venv-mp0_10" / "cvzone"))

# selfie_segmentation_cpu.pbtxt's nodes for one model_selection, with the model swapped for a probe
_GRAPH = """
input_stream: "IMAGE:image"
output_stream: "SEGMENTATION_MASK:segmentation_mask"
node {{
  calculator: "ImageToTensorCalculator" input_stream: "IMAGE:image" output_stream: "TENSORS:input_tensors"
  options {{ [mediapipe.ImageToTensorCalculatorOptions.ext] {{
    output_tensor_width: 256 output_tensor_height: {height} keep_aspect_ratio: false
    output_tensor_float_range {{ min: 0.0 max: 1.0 }} border_mode: BORDER_ZERO }} }}
}}
node {{
  calculator: "InferenceCalculator" input_stream: "TENSORS:input_tensors" output_stream: "TENSORS:output_tensors"
  options {{ [mediapipe.InferenceCalculatorOptions.ext] {{ model_path: "{model}" delegate {{ xnnpack {{}} }} }} }}
}}
node {{ calculator: "ImagePropertiesCalculator" input_stream: "IMAGE_CPU:image" output_stream: "SIZE:input_size" }}
node {{
  calculator: "TensorsToSegmentationCalculator" input_stream: "TENSORS:output_tensors" {output_size}
  output_stream: "MASK:mask_image"
  options {{ [mediapipe.TensorsToSegmentationCalculatorOptions.ext] {{ activation: NONE }} }}
}}
node {{
  calculator: "FromImageCalculator" input_stream: "IMAGE:mask_image" output_stream: "IMAGE_CPU:segmentation_mask"
}}
"""


class ProbeGraph:
    """MediaPipe 0.10.21's selfie graph with a probe model: ``tensor`` returns the whole input tensor (a reshape
    to one wide channel, no resize), ``mask`` its first plane's worth of values resized to the image size."""

    def __init__(self, tmp: Path, height: int) -> None:
        self.height = height
        full, first = tmp / f"probe_full_{height}.tflite", tmp / f"probe_first_{height}.tflite"
        full.write_bytes(probe_model((height, 256, 3), (height, 768, 1), with_metadata=False))
        first.write_bytes(probe_model((height, 256, 3), (height, 256, 1), with_metadata=False))
        self.first_model = first.read_bytes()
        self._tensor = SolutionBase(graph_config=self._config(full, ""))
        self._mask = SolutionBase(graph_config=self._config(first, 'input_stream: "OUTPUT_SIZE:input_size"'))

    def _config(self, model: Path, output_size: str) -> calculator_pb2.CalculatorGraphConfig:
        text = _GRAPH.format(height=self.height, model=model, output_size=output_size)
        return text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())

    def tensor(self, rgb: np.ndarray) -> np.ndarray:
        return np.array(self._tensor.process(rgb).segmentation_mask).reshape(self.height, 256, 3)

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        return np.array(self._mask.process(rgb).segmentation_mask)

    def close(self) -> None:
        self._tensor.close()
        self._mask.close()


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, ProbeGraph]]:
    tmp = tmp_path_factory.mktemp("probes")
    graphs = {sel: ProbeGraph(tmp, h) for sel, h in TENSOR_HEIGHTS.items()}
    yield graphs
    for g in graphs.values():
        g.close()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_rgb("astronaut.png")


def _segkit_probe_mask(probe_model_bytes: bytes, rgb: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """segkit's solution stages around the same probe model: (tensor, mask at the image size)."""
    h, w = rgb.shape[:2]
    tensor = np.empty((1, height, 256, 3), np.float32)
    zero_border_tensor(np.ascontiguousarray(rgb), make_zero_border_plan(h, w, height, 256), tensor[0])
    runtime = open_runtime(probe_model_bytes, num_threads=1)
    try:
        plane = runtime.run(tensor)[0].reshape(height, 256).copy()
    finally:
        runtime.close()
    if (h, w) == (height, 256):
        return tensor[0], plane
    out = np.empty((1, h, w), np.float32)
    resize_masks(plane[None], mask_linear_plan(height, 256, h, w), out)
    return tensor[0], out[0]


@st.composite
def images(draw: st.DrawFn, photo: np.ndarray) -> np.ndarray:
    """A real-photo crop (possibly rescaled by striding) or uniform noise, 1x1 to 700x700."""
    if draw(st.booleans()):
        h = draw(st.integers(1, 700))
        w = draw(st.integers(1, 700))
        seed = draw(st.integers(0, 2**32 - 1))
        return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)
    step = draw(st.integers(1, 3))
    view = photo[::step, ::step]
    h = draw(st.integers(1, view.shape[0]))
    w = draw(st.integers(1, view.shape[1]))
    y = draw(st.integers(0, view.shape[0] - h))
    x = draw(st.integers(0, view.shape[1] - w))
    return np.ascontiguousarray(view[y : y + h, x : x + w])


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


@pytest.mark.parametrize("selection", [0, 1])
# (49, 49) and (36, 253): sizes whose 1/32-pixel taps do not factor into rows and columns (the per-pixel plan)
@pytest.mark.parametrize(
    "size", [(256, 256), (144, 256), (512, 512), (288, 512), (1, 1), (2, 700), (700, 3), (49, 49), (36, 253)]
)
def test_probe_graph_is_bit_exact_at_edge_sizes(probes, photo, selection, size) -> None:
    h, w = size
    rgb = np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w, 3), np.uint8)
    graph = probes[selection]
    tensor, mask = _segkit_probe_mask(graph.first_model, rgb, graph.height)
    np.testing.assert_array_equal(tensor, graph.tensor(rgb))
    np.testing.assert_array_equal(mask, graph.mask(rgb))


@pytest.mark.parametrize("selection", [0, 1])
def test_probe_graph_is_bit_exact(probes, photo, selection) -> None:
    graph = probes[selection]

    @_SETTINGS
    @given(images(photo))
    def check(rgb: np.ndarray) -> None:
        tensor, mask = _segkit_probe_mask(graph.first_model, rgb, graph.height)
        np.testing.assert_array_equal(tensor, graph.tensor(rgb))
        np.testing.assert_array_equal(mask, graph.mask(rgb))

    check()


@pytest.mark.parametrize("selection", [0, 1])
def test_real_models_agree_within_the_interpreter_difference(photo, selection) -> None:
    stats: list[tuple[float, float, float]] = []
    with (
        SelfieSegmentation(model_selection=selection) as ours,
        mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=selection) as theirs,  # pyright: ignore[reportAttributeAccessIssue]
    ):

        @_SETTINGS
        @given(images(photo))
        def check(rgb: np.ndarray) -> None:
            got = ours.process(rgb).segmentation_mask
            expected = theirs.process(rgb).segmentation_mask
            assert got.shape == expected.shape and got.dtype == expected.dtype == np.float32
            diff = np.abs(got.astype(np.float64) - expected)
            flipped = np.count_nonzero((got > 0.5) != (expected > 0.5)) / got.size
            stats.append((float(diff.max()), flipped, np.count_nonzero(diff == 0) / got.size))
            assert diff.max() <= REAL_MAX_DIFF
            assert flipped <= REAL_MAX_FLIPPED

        check()
    worst = max(s[0] for s in stats)
    equal = np.mean([s[2] for s in stats])
    print(f"model_selection={selection}: {len(stats)} images, max |diff| {worst:.3g}, {equal:.1%} of pixels equal")


def test_same_errors_as_mediapipe(photo) -> None:
    """Inputs MediaPipe rejects with an exception (not a crash) get the same type and message."""
    bad_inputs: list[np.ndarray] = [
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((1, 8, 8, 3), np.uint8),
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8, 3), np.uint16),
        np.zeros((8, 8, 3), np.float64),
    ]
    with (
        SelfieSegmentation() as ours,
        mp.solutions.selfie_segmentation.SelfieSegmentation() as theirs,  # pyright: ignore[reportAttributeAccessIssue]
    ):
        for bad in bad_inputs:
            with pytest.raises(Exception) as expected:
                theirs.process(bad)
            with pytest.raises(Exception) as got:
                ours.process(bad)
            assert (type(got.value), str(got.value)) == (type(expected.value), str(expected.value))
    for solution in (ours, theirs):
        with pytest.raises(ValueError) as after_close:
            solution.process(photo)
        with pytest.raises(ValueError) as second_close:
            solution.close()
        assert str(after_close.value) == "_graph is None in SolutionBase"
        assert str(second_close.value) == "Closing SolutionBase._graph which is already None"


_CVZONE_SCRIPT = """
import sys, numpy as np, cv2
from cvzone.SelfiSegmentationModule import SelfiSegmentation
img = cv2.imread(sys.argv[1])
segmentor = SelfiSegmentation(model=int(sys.argv[2]))
out = segmentor.removeBG(img, imgBg=(255, 0, 255), cutThreshold=float(sys.argv[3]))
np.save(sys.argv[4], out)
import mediapipe
engine = getattr(segmentor, "selfieSegmentation", None) or segmentor.segmenter
print(mediapipe.__name__, type(engine).__module__)
"""


def _run_cvzone(version: str, shim: bool, tmp: Path, model: int, threshold: float) -> tuple[np.ndarray, str]:
    target = CVZONE / version
    if not (target / "cvzone" / "SelfiSegmentationModule.py").is_file():
        pytest.fail(f"cvzone {version} is not installed at {target}; run tests/solutions/run_legacy_parity.sh")
    script = tmp / "remove_bg.py"
    script.write_text(_CVZONE_SCRIPT)
    out = tmp / f"out_{version}_{shim}_{model}.npy"
    args = [str(REPO.parent / "shared" / "testdata" / "astronaut.png"), str(model), str(threshold), str(out)]
    prefix = [sys.executable, "-m", "segkit.compat"] if shim else [sys.executable]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO)])}
    done = subprocess.run([*prefix, str(script), *args], cwd=tmp, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out), done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("model", [0, 1])
def test_cvzone_161_legacy_solution_through_the_shim(tmp_path, photo, model) -> None:
    """cvzone 1.6.1's SelfiSegmentation (mp.solutions.selfie_segmentation) unmodified: through ``python -m
    segkit.compat`` it runs on segkit (although mediapipe 0.10.21 is installed), gives exactly what segkit's own
    solution mask gives, and agrees with the same program on the real mediapipe up to the interpreter difference."""
    bgr = photo[:, :, ::-1]
    shimmed, where = _run_cvzone("1.6.1", True, tmp_path, model, 0.1)
    assert where == "mediapipe segkit.solutions.selfie_segmentation"
    real, real_where = _run_cvzone("1.6.1", False, tmp_path, model, 0.1)
    assert real_where.startswith("mediapipe mediapipe.")
    with SelfieSegmentation(model_selection=model) as ours:
        condition = np.stack((ours.process(photo).segmentation_mask,) * 3, axis=-1) > 0.1
    expected = np.where(condition, bgr, np.array((255, 0, 255), np.uint8))
    np.testing.assert_array_equal(shimmed, expected)
    assert np.count_nonzero((shimmed != real).any(axis=2)) / shimmed[..., 0].size <= REAL_MAX_FLIPPED


def test_cvzone_200_tasks_api_through_the_shim(tmp_path, photo) -> None:
    """cvzone 2.0.0's SelfiSegmentation (the Tasks API, ``from mediapipe.tasks.python import vision``): through the
    shim it runs on segkit's ImageSegmenter and matches segkit's own category mask exactly."""
    (tmp_path / "selfie_segmenter.tflite").write_bytes(model_path("selfie_segmenter.tflite").read_bytes())
    shimmed, where = _run_cvzone("2.0.0", True, tmp_path, 0, 0.1)
    assert where == "mediapipe segkit.segmenter"
    real, _ = _run_cvzone("2.0.0", False, tmp_path, 0, 0.1)
    import segkit

    options = segkit.ImageSegmenterOptions(
        base_options=segkit.BaseOptions(model_asset_path=str(tmp_path / "selfie_segmenter.tflite")),
        output_category_mask=True,
    )
    with segkit.ImageSegmenter.create_from_options(options) as segmenter:
        category = segmenter.segment(segkit.Image(segkit.ImageFormat.SRGB, photo)).category_mask
        assert category is not None
        mask = category.numpy_view()[:, :, 0]
    bgr = photo[:, :, ::-1]
    expected = np.where(np.repeat(mask[..., None], 3, axis=2) < 0.9, bgr, np.array((255, 0, 255), np.uint8))
    np.testing.assert_array_equal(shimmed, expected)
    assert np.count_nonzero((shimmed != real).any(axis=2)) / shimmed[..., 0].size <= REAL_MAX_FLIPPED
