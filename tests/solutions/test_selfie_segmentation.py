"""The legacy ``selfie_segmentation`` solution in the main venv: API, MediaPipe's errors, and a cross-check
against the Tasks segmenter (bit-identical to mediapipe 1.2.2) where the two graphs must agree.

The bit-exact comparison with mediapipe 0.10.21 itself runs in its own venv (``run_legacy_parity.sh``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest

import segkit
from segkit import models
from segkit.solutions.selfie_segmentation import MODEL_NAMES, SelfieSegmentation
from tests.conftest import REPO, load_rgb, model_dir

TASKS_MODELS = ("selfie_segmenter", "selfie_segmenter_landscape")
TENSOR_SIZES = ((256, 256), (144, 256))


@pytest.fixture(scope="module")
def solutions() -> Iterator[dict[int, SelfieSegmentation]]:
    made = {m: SelfieSegmentation(model_selection=m) for m in (0, 1)}
    yield made
    for s in made.values():
        s.close()


def test_models_come_from_the_registry() -> None:
    for name, (h, w) in zip(MODEL_NAMES, TENSOR_SIZES, strict=True):
        entry = models.info(name)
        assert entry.input_shape == (1, h, w, 3) and entry.output_shape == (1, h, w, 1)
        assert models.path(name, download=False).resolve() == model_dir() / entry.file  # model_dir() is resolved


@pytest.mark.parametrize("selection", [0, 1])
def test_mask_is_a_float_probability_of_the_image_size(solutions, astronaut, selection: int) -> None:
    crop = astronaut[40:470, 10:500]
    mask = solutions[selection].process(crop).segmentation_mask
    assert mask.shape == crop.shape[:2] and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    # the astronaut's face is a person, the sky-blue top-left corner is not
    assert mask[150:200, 200:260].mean() > 0.9
    assert mask[:20, :20].mean() < 0.1


@pytest.mark.parametrize("selection", [0, 1])
def test_tensor_sized_image_equals_the_tasks_segmenter(solutions, selection: int) -> None:
    """At the tensor size the stretch is the identity and no tap reads the border, so the legacy graph (zero
    border, [0,1] range) and the Tasks graph (replicate border, x/255 metadata) build the same tensor; the legacy
    models are the Tasks models minus metadata, and a same-size resize is a copy: the masks must be equal."""
    h, w = TENSOR_SIZES[selection]
    photo = load_rgb("astronaut.png")
    rng = np.random.default_rng(selection)
    images = [np.ascontiguousarray(photo[100 : 100 + h, 120 : 120 + w]), rng.integers(0, 256, (h, w, 3), np.uint8)]
    options = segkit.ImageSegmenterOptions(
        base_options=segkit.BaseOptions(model_asset_path=str(models.path(TASKS_MODELS[selection])))
    )
    with segkit.ImageSegmenter.create_from_options(options) as segmenter:
        for image in images:
            masks = segmenter.segment(segkit.Image(segkit.ImageFormat.SRGB, image)).confidence_masks
            assert masks is not None
            expected = masks[0]
            got = solutions[selection].process(image).segmentation_mask
            np.testing.assert_array_equal(got, expected.numpy_view()[:, :, 0])


def test_any_strides_give_the_same_mask(solutions, astronaut) -> None:
    s = solutions[0]
    views = [astronaut[:300, :200], astronaut[::2, ::3], astronaut[:, ::-1], np.asfortranarray(astronaut[50:250])]
    for view in views:
        assert not view.flags.c_contiguous
        expected = s.process(np.ascontiguousarray(view)).segmentation_mask
        np.testing.assert_array_equal(s.process(view).segmentation_mask, expected)
    frozen = astronaut.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(s.process(frozen).segmentation_mask, s.process(astronaut).segmentation_mask)


def test_each_result_belongs_to_the_caller(solutions, astronaut) -> None:
    s = solutions[1]
    first = s.process(astronaut).segmentation_mask
    kept = first.copy()
    s.process(astronaut[::-1].copy())
    np.testing.assert_array_equal(first, kept)
    first[:] = 0  # writable, and writing it changes nothing inside the solution
    np.testing.assert_array_equal(s.process(astronaut).segmentation_mask, kept)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 7, 3), (9, 1, 3), (2, 2, 3), (1200, 40, 3)])
def test_tiny_and_thin_images(solutions, shape) -> None:
    image = np.random.default_rng(1).integers(0, 256, shape, np.uint8)
    mask = solutions[0].process(image).segmentation_mask
    assert mask.shape == shape[:2] and np.isfinite(mask).all()


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.zeros((8, 8), np.uint8), ValueError, "Input image must contain three channel rgb data."),
        (np.zeros((8, 8, 4), np.uint8), ValueError, "Input image must contain three channel rgb data."),
        (np.zeros((1, 8, 8, 3), np.uint8), ValueError, "Input image must contain three channel rgb data."),
        (
            np.zeros((8, 8, 3), np.float32),
            TypeError,
            "Cannot cast array data from dtype('float32') to dtype('uint8') according to the rule 'safe'",
        ),
        (np.zeros((0, 8, 3), np.uint8), ValueError, "must not be empty"),
        ([[[0, 0, 0]]], TypeError, "numpy ndarray"),
    ],
)
def test_bad_images_raise_mediapipes_errors(solutions, bad, error, message) -> None:
    with pytest.raises(error) as info:
        solutions[0].process(bad)
    assert message in str(info.value)


@pytest.mark.parametrize("selection, error", [(2, ValueError), (-1, ValueError), (1.0, TypeError), (None, TypeError)])
def test_bad_model_selection(selection, error) -> None:
    with pytest.raises(error, match="model_selection"):
        SelfieSegmentation(model_selection=selection)


@pytest.mark.parametrize("selection", [True, np.int64(1)])
def test_any_integer_selects_a_model(astronaut, selection) -> None:
    """MediaPipe passes model_selection to an int packet, so True and numpy integers are 1."""
    with SelfieSegmentation(model_selection=1) as plain, SelfieSegmentation(model_selection=selection) as s:
        np.testing.assert_array_equal(
            s.process(astronaut).segmentation_mask, plain.process(astronaut).segmentation_mask
        )


@pytest.mark.slow
def test_one_solution_shared_between_threads(solutions, astronaut) -> None:
    s = solutions[0]
    images = [astronaut, astronaut[::-1].copy(), astronaut[100:400], astronaut[:, ::2]]
    expected = [s.process(im).segmentation_mask for im in images]
    results: dict[int, list[np.ndarray]] = {}

    def work(k: int) -> None:
        results[k] = [s.process(im).segmentation_mask for im in images * 3]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        for got, want in zip(results[k], expected * 3, strict=True):
            np.testing.assert_array_equal(got, want)


def test_close_context_manager_and_reset(astronaut) -> None:
    with SelfieSegmentation() as s:
        before = s.process(astronaut).segmentation_mask
        s.reset()
        np.testing.assert_array_equal(s.process(astronaut).segmentation_mask, before)
    with pytest.raises(ValueError, match="_graph is None in SolutionBase"):
        s.process(astronaut)
    with pytest.raises(ValueError, match=r"Closing SolutionBase\._graph which is already None"):
        s.close()


def test_import_segkit_as_mp_gives_the_solution_with_no_further_import() -> None:
    code = (
        "import numpy as np, segkit as mp\n"
        "with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as s:\n"
        "    print(s.process(np.zeros((5, 6, 3), np.uint8)).segmentation_mask.shape)\n"
        "try:\n"
        "    mp.solutions.hands\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "(5, 6)"
    assert "segkit provides only the selfie_segmentation solution" in out.splitlines()[1]
