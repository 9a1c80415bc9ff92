"""Differential tests: segkit's masks against the real mediapipe 1.2.2 on every shared model with metadata.

Hypothesis draws real-photo crops and synthetic images of many sizes (2x2 to 1920x1080), SRGB and SRGBA,
rotations and output flags. The target is bit-identical masks; the assertions are exact equality.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import segkit
from tests.conftest import MODELS_WITH_METADATA, load_rgb, model_path
from tests.oracle import mediapipe_masks

# The differential sweep against mediapipe (hypothesis draws dozens of images per model): the slow tier.
pytestmark = pytest.mark.slow

PHOTOS = ("astronaut.png", "cat.jpg", "cats_and_dogs.jpg", "segmentation_input_rotation0.jpg", "cat_large.jpg")
ROTATIONS = (0, 90, 180, 270, -90, 450)
# Examples per model; raise it (e.g. SEGKIT_PARITY_EXAMPLES=2000) for a thorough sweep.
EXAMPLES = int(os.environ.get("SEGKIT_PARITY_EXAMPLES", "40"))


@functools.cache
def photo(name: str) -> np.ndarray:
    return load_rgb(name)


@functools.lru_cache(maxsize=32)
def segkit_segmenter(model: str, confidence: bool, category: bool) -> segkit.ImageSegmenter:
    options = segkit.ImageSegmenterOptions(
        base_options=segkit.BaseOptions(model_asset_path=str(model_path(model))),
        output_confidence_masks=confidence,
        output_category_mask=category,
    )
    return segkit.ImageSegmenter.create_from_options(options)


@st.composite
def images(draw: st.DrawFn) -> np.ndarray:
    """A uint8 RGB or RGBA image: a resized crop of a real photo, noise, or flat blocks."""
    width = draw(st.one_of(st.integers(2, 64), st.integers(65, 700), st.sampled_from([640, 1280, 1920, 257, 513])))
    height = draw(st.one_of(st.integers(2, 64), st.integers(65, 700), st.sampled_from([480, 720, 1080, 256, 144])))
    kind = draw(st.sampled_from(["photo", "photo", "noise", "blocks"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "photo":
        from PIL import Image as PILImage

        src = photo(draw(st.sampled_from(PHOTOS)))
        h, w = src.shape[:2]
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        x1, y1 = int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))
        crop = PILImage.fromarray(src[y0:y1, x0:x1]).resize((width, height), PILImage.Resampling.BILINEAR)
        pixels = np.asarray(crop)
    elif kind == "noise":
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        small = rng.integers(0, 256, (max(1, height // 16), max(1, width // 16), 3), dtype=np.uint8)
        pixels = np.repeat(np.repeat(small, 16, 0), 16, 1)[:height, :width]
        pixels = np.pad(pixels, ((0, height - pixels.shape[0]), (0, width - pixels.shape[1]), (0, 0)), mode="edge")
    if draw(st.booleans()):
        alpha = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
        pixels = np.concatenate([pixels, alpha], axis=2)
    return np.ascontiguousarray(pixels)


def compare(model: str, pixels: np.ndarray, rotation: int, confidence: bool, category: bool) -> None:
    """Asserts segkit's masks equal mediapipe's bit for bit; the message says how far off they are."""
    expected_conf, expected_cat = mediapipe_masks(
        model_path(model), pixels, rotation=rotation, confidence=confidence, category=category
    )
    fmt = segkit.ImageFormat.SRGBA if pixels.shape[2] == 4 else segkit.ImageFormat.SRGB
    result = segkit_segmenter(model, confidence, category).segment(
        segkit.Image(fmt, pixels), segkit.ImageProcessingOptions(rotation_degrees=rotation)
    )
    where = f"{model} {pixels.shape} rotation={rotation}"
    if confidence:
        assert expected_conf is not None and result.confidence_masks is not None
        assert len(result.confidence_masks) == len(expected_conf)
        for index, (mask, expected) in enumerate(zip(result.confidence_masks, expected_conf, strict=True)):
            got = mask.numpy_view()
            assert got.shape == (*expected.shape, 1) and got.dtype == np.float32
            diff = float(np.max(np.abs(got[:, :, 0] - expected)))
            assert np.array_equal(got[:, :, 0], expected), f"{where}: confidence mask {index} max |diff| {diff:.3g}"
    else:
        assert result.confidence_masks is None
    if category:
        assert expected_cat is not None and result.category_mask is not None
        got = result.category_mask.numpy_view()
        assert got.shape == (*expected_cat.shape, 1) and got.dtype == np.uint8
        agreement = float(np.mean(got[:, :, 0] == expected_cat))
        assert np.array_equal(got[:, :, 0], expected_cat), f"{where}: category agreement {agreement:.6%}"
    else:
        assert result.category_mask is None


@pytest.mark.parametrize("model", MODELS_WITH_METADATA)
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    pixels=images(),
    rotation=st.sampled_from(ROTATIONS),
    flags=st.sampled_from([(True, True), (True, False), (False, True)]),
)
@example(pixels=np.zeros((2, 2, 3), np.uint8), rotation=0, flags=(True, True))
@example(pixels=np.full((1080, 1920, 3), 200, np.uint8), rotation=90, flags=(True, True))
def test_masks_equal_mediapipe(model: str, pixels: np.ndarray, rotation: int, flags: tuple[bool, bool]) -> None:
    compare(model, pixels, rotation, *flags)


@pytest.mark.parametrize("model", MODELS_WITH_METADATA)
@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_real_photos_equal_mediapipe(model: str, size: tuple[int, int]) -> None:
    from PIL import Image as PILImage

    for name in ("astronaut.png", "cats_and_dogs.jpg"):
        pixels = np.asarray(PILImage.fromarray(photo(name)).resize(size, PILImage.Resampling.BILINEAR))
        compare(model, np.ascontiguousarray(pixels), 0, True, True)


def test_deeplab_golden() -> None:
    """DeepLab-v3 on MediaPipe's test image reproduces MediaPipe's golden category mask (x10) on every pixel."""
    from PIL import Image as PILImage

    from tests.conftest import data_file

    with PILImage.open(data_file("segmentation_golden_rotation0.png")) as im:
        golden = np.asarray(im.convert("L"))
    result = segkit_segmenter("deeplabv3.tflite", False, True).segment(
        segkit.Image.create_from_file(data_file("segmentation_input_rotation0.jpg"))
    )
    assert result.category_mask is not None
    got = result.category_mask.numpy_view()[:, :, 0].astype(np.int32) * 10
    assert np.mean(got == golden) == 1.0, f"golden agreement {np.mean(got == golden):.4%}"
