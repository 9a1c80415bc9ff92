"""Effects on real images: synthetic masks for the pixel contracts, plus a few end-to-end runs on real masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segkit import effects
from segkit.effects import _srgb_to_oklab
from tests.conftest import model_path


def disc_mask(height: int, width: int, radius_frac: float = 0.3, soft: float = 6.0) -> np.ndarray:
    """A float32 mask: 1 inside a centred disc, 0 outside, with a linear soft edge ``soft`` pixels wide."""
    yy, xx = np.mgrid[:height, :width]
    distance = np.hypot(yy - height / 2, xx - width / 2) - radius_frac * min(height, width)
    return np.clip(0.5 - distance / soft, 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def mask(astronaut: np.ndarray) -> np.ndarray:
    return disc_mask(*astronaut.shape[:2])


def oklab_hue(rgb: np.ndarray) -> float:
    """The hue angle (radians) of the mean OKLab (a, b) of some pixels."""
    lab = _srgb_to_oklab(rgb.reshape(-1, 3))
    return float(np.arctan2(lab[:, 2].mean(), lab[:, 1].mean()))


def angle_between(a: float, b: float) -> float:
    return abs((a - b + np.pi) % (2 * np.pi) - np.pi)


# --- blur -------------------------------------------------------------------------------------------------------------


def test_blur_keeps_subject_and_blurs_background(astronaut: np.ndarray, mask: np.ndarray) -> None:
    out = effects.blur_background(astronaut, mask, strength=8)
    assert out.dtype == np.uint8 and out.shape == astronaut.shape
    inside, outside = mask == 1.0, mask == 0.0
    assert np.abs(out[inside].astype(int) - astronaut[inside]).max() <= 1
    diff = np.abs(out[outside].astype(int) - astronaut[outside]).mean()
    assert diff > 3, diff
    # Blurred: much less high-frequency energy in the background.
    grad = lambda im: np.abs(np.diff(im.astype(int), axis=1))[outside[:, 1:]].mean()  # noqa: E731
    assert grad(out) < 0.5 * grad(astronaut)


def test_blur_has_no_halo() -> None:
    image = np.zeros((96, 96, 3), np.uint8)
    image[...] = (0, 0, 255)
    subject = disc_mask(96, 96, soft=1.0) >= 0.5
    image[subject] = (255, 0, 0)
    out = effects.blur_background(image, subject, strength=10)
    assert (out[~subject] == (0, 0, 255)).all(), "subject color bled into the blurred background"
    assert (out[subject] == (255, 0, 0)).all()


def test_blur_accepts_mask_shapes_and_dtypes(astronaut: np.ndarray, mask: np.ndarray) -> None:
    reference = effects.blur_background(astronaut, mask, strength=4)
    np.testing.assert_array_equal(effects.blur_background(astronaut, mask[:, :, None], strength=4), reference)
    as_uint8 = np.rint(mask * 255).astype(np.uint8)
    assert np.abs(effects.blur_background(astronaut, as_uint8, strength=4).astype(int) - reference).max() <= 1
    binary = effects.blur_background(astronaut, mask > 0.5, strength=4)
    assert binary.shape == astronaut.shape
    assert effects.blur_background(astronaut, mask, strength=0) is not astronaut
    np.testing.assert_array_equal(effects.blur_background(astronaut, mask, strength=0), astronaut)


def test_blur_rgba_keeps_alpha(astronaut: np.ndarray, mask: np.ndarray) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 77, np.uint8)])
    out = effects.blur_background(rgba, mask, strength=4)
    assert out.shape == rgba.shape and (out[:, :, 3] == 77).all()
    np.testing.assert_array_equal(out[:, :, :3], effects.blur_background(astronaut, mask, strength=4))


# --- replace and cutout -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("color", [(0, 177, 64), "#00b140", "rgb(0,177,64)"])
def test_replace_with_color(astronaut: np.ndarray, mask: np.ndarray, color: effects.Color) -> None:
    out = effects.replace_background(astronaut, mask, color)
    np.testing.assert_array_equal(out[mask == 1], astronaut[mask == 1])
    assert (out[mask == 0] == (0, 177, 64)).all()
    edge = (mask > 0.4) & (mask < 0.6)
    expected = np.rint(astronaut[edge] * mask[edge, None] + np.array([0, 177, 64]) * (1 - mask[edge, None]))
    assert np.abs(out[edge] - expected).max() <= 1


def test_replace_with_image_of_other_size(astronaut: np.ndarray, mask: np.ndarray) -> None:
    background = np.zeros((100, 300, 3), np.uint8)
    background[:, :, 1] = 200
    out = effects.replace_background(astronaut, mask, background)
    assert out.shape == astronaut.shape
    np.testing.assert_array_equal(out[mask == 1], astronaut[mask == 1])
    assert np.abs(out[mask == 0].astype(int) - (0, 200, 0)).max() <= 1


def test_cutout_alpha_is_rounded_mask(astronaut: np.ndarray, mask: np.ndarray) -> None:
    out = effects.cutout(astronaut, mask)
    assert out.shape == astronaut.shape[:2] + (4,) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, :3], astronaut)
    np.testing.assert_array_equal(out[:, :, 3], np.rint(mask * 255).astype(np.uint8))


def test_cutout_multiplies_existing_alpha(astronaut: np.ndarray) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 128, np.uint8)])
    out = effects.cutout(rgba, np.full(astronaut.shape[:2], 0.5, np.float32))
    assert (out[:, :, 3] == 64).all()


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, (7, 5), elements=st.floats(0, 1, width=32)))
def test_cutout_alpha_property(m: np.ndarray) -> None:
    image = np.arange(7 * 5 * 3, dtype=np.uint8).reshape(7, 5, 3)
    np.testing.assert_array_equal(effects.cutout(image, m)[:, :, 3], np.rint(m * 255).astype(np.uint8))


# --- recolor ----------------------------------------------------------------------------------------------------------


HAIR_BOX = (slice(20, 110), slice(170, 290))  # the astronaut's hair, roughly


def hair_box_mask(shape: tuple[int, ...]) -> np.ndarray:
    m = np.zeros(shape[:2], np.float32)
    m[HAIR_BOX] = 1.0
    return m


def test_recolor_moves_hue_and_keeps_the_rest(astronaut: np.ndarray) -> None:
    m = hair_box_mask(astronaut.shape)
    target = (40, 90, 220)
    out = effects.recolor(astronaut, m, target, strength=1.0)
    np.testing.assert_array_equal(out[m == 0], astronaut[m == 0])
    target_hue = oklab_hue(np.array(target, np.uint8))
    before, after = oklab_hue(astronaut[HAIR_BOX]), oklab_hue(out[HAIR_BOX])
    assert angle_between(after, target_hue) < 0.2 < angle_between(before, target_hue)
    lightness = lambda im: _srgb_to_oklab(im[HAIR_BOX].reshape(-1, 3))[:, 0]  # noqa: E731
    assert np.abs(lightness(out) - lightness(astronaut)).mean() < 0.02, "shading (OKLab L) should be kept"


def test_recolor_strength_zero_is_identity(astronaut: np.ndarray) -> None:
    out = effects.recolor(astronaut, hair_box_mask(astronaut.shape), "red", strength=0.0)
    np.testing.assert_array_equal(out, astronaut)


@settings(max_examples=25, deadline=None)
@given(
    arrays(np.uint8, (6, 6, 3)),
    arrays(np.float32, (6, 6), elements=st.sampled_from([0.0, 0.25, 1.0])),
    st.tuples(*[st.integers(0, 255)] * 3),
)
def test_recolor_leaves_unmasked_pixels_bit_identical(image: np.ndarray, m: np.ndarray, color: tuple) -> None:
    out = effects.recolor(image, m, color)
    np.testing.assert_array_equal(out[m == 0], image[m == 0])


# --- overlay and legend -----------------------------------------------------------------------------------------------


def test_overlay_paints_palette_colors(astronaut: np.ndarray) -> None:
    category = np.zeros(astronaut.shape[:2], np.uint8)
    category[100:200, 100:200] = 1
    category[300:400, 50:150] = 2
    palette = [None, (255, 0, 0), "#00ff00"]
    out = effects.overlay(astronaut, category, palette=palette, alpha=1.0)
    np.testing.assert_array_equal(out[category == 0], astronaut[category == 0])
    assert (out[category == 1] == (255, 0, 0)).all() and (out[category == 2] == (0, 255, 0)).all()
    half = effects.overlay(astronaut, category[:, :, None], palette=palette, alpha=0.5)
    expected = np.rint(astronaut[category == 1] * 0.5 + np.array([255, 0, 0]) * 0.5)
    assert np.abs(half[category == 1] - expected).max() <= 1


def test_overlay_default_palette_and_legend(astronaut: np.ndarray) -> None:
    category = np.zeros(astronaut.shape[:2], np.uint8)
    category[200:, :] = 15
    plain = effects.overlay(astronaut, category)
    np.testing.assert_array_equal(plain[:200], astronaut[:200])
    assert (plain[200:] != astronaut[200:]).any()
    labelled = effects.overlay(astronaut, category, labels=[f"class{i}" for i in range(21)])
    assert (labelled[:40, :80] != plain[:40, :80]).any(), "legend should be drawn top-left"
    np.testing.assert_array_equal(labelled[300:], plain[300:])


def test_legend_image() -> None:
    one = effects.legend(["background", "person"], [None, (192, 128, 128)])
    two = effects.legend(["a", "b", "c"], [(1, 2, 3), (4, 5, 6), (7, 8, 9)])
    assert one.dtype == np.uint8 and one.ndim == 3 and one.shape[2] == 3
    assert two.shape[0] > one.shape[0]
    assert (one == (192, 128, 128)).all(axis=2).any(), "the swatch shows the palette color"


def test_overlay_errors(astronaut: np.ndarray) -> None:
    category = np.full(astronaut.shape[:2], 3, np.uint8)
    with pytest.raises(ValueError, match="category 3 but the palette has only 2"):
        effects.overlay(astronaut, category, palette=[None, "red"])
    with pytest.raises(ValueError, match="size 10x10"):
        effects.overlay(astronaut, np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="alpha"):
        effects.overlay(astronaut, category, alpha=1.5)
    with pytest.raises(TypeError, match="category_mask"):
        effects.overlay(astronaut, category.astype(np.float32))


# --- validation -------------------------------------------------------------------------------------------------------


def test_validation_errors(astronaut: np.ndarray, mask: np.ndarray) -> None:
    with pytest.raises(TypeError, match="image must be a numpy array, got list"):
        effects.blur_background(astronaut.tolist(), mask)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dtype uint8, got float32"):
        effects.cutout(astronaut.astype(np.float32), mask)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\) or \(H, W, 4\), got \(512, 512\)"):
        effects.cutout(astronaut[:, :, 0], mask)
    with pytest.raises(ValueError, match="mask has size 10x5 but the image is 512x512"):
        effects.blur_background(astronaut, np.zeros((5, 10), np.float32))
    with pytest.raises(ValueError, match="logits"):
        effects.cutout(astronaut, mask * 20 - 10)
    with pytest.raises(ValueError, match="NaN"):
        effects.cutout(astronaut, np.full(mask.shape, np.nan, np.float32))
    with pytest.raises(TypeError, match="int64"):
        effects.cutout(astronaut, mask.astype(np.int64))
    with pytest.raises(ValueError, match="'not-a-color' is not a color"):
        effects.replace_background(astronaut, mask, "not-a-color")
    with pytest.raises(ValueError, match=r"\(1, 2\) is not a color"):
        effects.recolor(astronaut, mask, (1, 2))
    with pytest.raises(ValueError, match="strength must be a finite number >= 0, got -1"):
        effects.blur_background(astronaut, mask, strength=-1)
    with pytest.raises(ValueError, match="strength must lie in"):
        effects.recolor(astronaut, mask, "red", strength=2)


def test_inputs_are_not_modified(astronaut: np.ndarray, mask: np.ndarray) -> None:
    image, m = astronaut.copy(), mask.copy()
    effects.blur_background(image, m)
    effects.recolor(image, m, "red")
    effects.replace_background(image, m, "blue")
    np.testing.assert_array_equal(image, astronaut)
    np.testing.assert_array_equal(m, mask)


# --- refinement and temporal smoothing --------------------------------------------------------------------------------


def test_refine_feather_and_guided(astronaut: np.ndarray) -> None:
    hard = disc_mask(*astronaut.shape[:2], soft=0.5)
    feathered = effects.refine_mask(hard, radius=8)
    assert feathered.dtype == np.float32 and feathered.shape == hard.shape
    assert ((feathered > 0.05) & (feathered < 0.95)).sum() > 3 * ((hard > 0.05) & (hard < 0.95)).sum()
    assert feathered[256, 256] == pytest.approx(1.0) and feathered[5, 5] == pytest.approx(0.0)
    guided = effects.refine_mask(hard, astronaut, radius=8, method="guided")
    assert guided.dtype == np.float32 and guided.min() >= 0.0 and guided.max() <= 1.0
    assert np.abs(guided - hard).mean() < 0.1
    np.testing.assert_array_equal(effects.refine_mask(hard, radius=0), hard)
    with pytest.raises(ValueError, match="needs the image"):
        effects.refine_mask(hard, method="guided")
    with pytest.raises(ValueError, match="'median'"):
        effects.refine_mask(hard, method="median")


def test_temporal_smoother() -> None:
    smoother = effects.TemporalSmoother(weight=0.5, reset_threshold=0.3)
    a = np.full((4, 4), 0.2, np.float32)
    np.testing.assert_allclose(smoother(a), 0.2)
    np.testing.assert_allclose(smoother(np.full((4, 4), 0.4, np.float32)), 0.3)
    np.testing.assert_allclose(smoother(np.full((4, 4), 1.0, np.float32)), 1.0), "big jump resets"
    np.testing.assert_allclose(smoother(np.zeros((2, 2), np.float32)), 0.0), "new size resets"
    smoother.reset()
    np.testing.assert_allclose(smoother(a), 0.2)
    with pytest.raises(ValueError, match="weight"):
        effects.TemporalSmoother(weight=1.5)


# --- end to end with the real segmenter -------------------------------------------------------------------------------


def segment(image: np.ndarray, model: str) -> list[np.ndarray]:
    """The confidence masks of a real segmenter run, as (H, W) float32 arrays."""
    from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions

    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model_path(model))), output_confidence_masks=True
    )
    with ImageSegmenter.create_from_options(options) as segmenter:
        result = segmenter.segment(image)
    return [m.numpy_view()[:, :, 0].astype(np.float32) for m in result.confidence_masks]


def test_e2e_blur_with_selfie_mask(astronaut: np.ndarray) -> None:
    (person,) = segment(astronaut, "selfie_segmenter.tflite")
    out = effects.blur_background(astronaut, person, strength=10)
    sure, background = person > 0.99, person < 0.01
    assert sure.mean() > 0.2 and background.mean() > 0.2
    assert np.abs(out[sure].astype(int) - astronaut[sure]).max() <= 3
    assert np.abs(out[background].astype(int) - astronaut[background]).mean() > 3


def test_e2e_recolor_with_hair_mask(astronaut: np.ndarray) -> None:
    _, hair = segment(astronaut, "hair_segmenter.tflite")
    out = effects.recolor(astronaut, hair, "#2060e0", strength=1.0)
    np.testing.assert_array_equal(out[hair == 0], astronaut[hair == 0])
    strands = hair > 0.9
    assert strands.sum() > 1000
    target = oklab_hue(np.array([0x20, 0x60, 0xE0], np.uint8))
    assert angle_between(oklab_hue(out[strands]), target) < angle_between(oklab_hue(astronaut[strands]), target)
