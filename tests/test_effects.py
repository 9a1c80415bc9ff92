"""Effects: pixel contracts on synthetic masks, mask conventions and quality figures on real photos and real models."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image as PILImage

from segkit import BaseOptions, Image, ImageFormat, ImageSegmenter, ImageSegmenterOptions, ImageSegmenterResult, effects
from segkit.effects import (
    _OKLAB_CHUNK,
    _block_means,
    _cells_at,
    _estimate_field,
    _recolor_in_place,
    _srgb_to_oklab,
)
from tests.conftest import load_rgb, model_path


def disc_mask(height: int, width: int, radius_frac: float = 0.3, soft: float = 6.0) -> np.ndarray:
    """A float32 mask: 1 inside a centred disc, 0 outside, with a linear soft edge ``soft`` pixels wide."""
    yy, xx = np.mgrid[:height, :width]
    distance = np.hypot(yy - height / 2, xx - width / 2) - radius_frac * min(height, width)
    return np.asarray(np.clip(0.5 - distance / soft, 0.0, 1.0), np.float32)


@pytest.fixture(scope="module")
def mask(astronaut: np.ndarray) -> np.ndarray:
    return disc_mask(*astronaut.shape[:2])


def segment(model: str, image: np.ndarray) -> tuple[ImageSegmenterResult, list[str]]:
    """Both masks of a real model on a real image, and the model's labels."""
    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model_path(model))), output_category_mask=True
    )
    with ImageSegmenter.create_from_options(options) as segmenter:
        return segmenter.segment(image), list(segmenter.labels)


@pytest.fixture(scope="module")
def selfie(astronaut: np.ndarray) -> ImageSegmenterResult:
    return segment("selfie_segmenter.tflite", astronaut)[0]


@pytest.fixture
def one_thread() -> Iterator[None]:
    effects.set_num_threads(1)
    yield
    effects.set_num_threads(2)


def oklab_hue(rgb: np.ndarray) -> float:
    """The hue angle (radians) of the mean OKLab (a, b) of some pixels."""
    lab = _srgb_to_oklab(rgb.reshape(-1, 3))
    return float(np.arctan2(lab[:, 2].mean(), lab[:, 1].mean()))


def angle_between(a: float, b: float) -> float:
    return abs((a - b + np.pi) % (2 * np.pi) - np.pi)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# --- blur -------------------------------------------------------------------------------------------------------------


def test_blur_keeps_subject_and_blurs_background(astronaut: np.ndarray, mask: np.ndarray) -> None:
    out = effects.blur_background(astronaut, mask, strength=8)
    assert out.dtype == np.uint8 and out.shape == astronaut.shape
    inside, outside = mask == 1.0, mask == 0.0
    assert np.abs(out[inside].astype(int) - astronaut[inside]).max() <= 1
    assert np.abs(out[outside].astype(int) - astronaut[outside]).mean() > 3
    grad = lambda im: np.abs(np.diff(im.astype(int), axis=1))[outside[:, 1:]].mean()  # noqa: E731
    assert grad(out) < 0.5 * grad(astronaut)


@pytest.mark.parametrize("strength", [3.0, 6.0, 15.0])
def test_blur_has_no_halo(strength: float) -> None:
    image = np.zeros((96, 128, 3), np.uint8)
    image[...] = (0, 0, 255)
    subject = disc_mask(96, 128, soft=1.0) >= 0.5
    image[subject] = (255, 0, 0)
    out = effects.blur_background(image, subject, strength=strength)
    assert (out[~subject] == (0, 0, 255)).all(), "subject color bled into the blurred background"
    assert (out[subject] == (255, 0, 0)).all()


def test_blur_rgba_keeps_alpha(astronaut: np.ndarray, mask: np.ndarray) -> None:
    rgba = np.dstack([astronaut, np.arange(astronaut.size // 3, dtype=np.uint32).reshape(astronaut.shape[:2]) % 256])
    out = effects.blur_background(rgba.astype(np.uint8), mask)
    assert out.shape[2] == 4 and (out[:, :, 3] == rgba[:, :, 3]).all()


def test_blur_strength_zero_is_identity(astronaut: np.ndarray, mask: np.ndarray) -> None:
    assert (effects.blur_background(astronaut, mask, strength=0) == astronaut).all()


def exact_blur(image: np.ndarray, alpha: np.ndarray, sigma: float) -> np.ndarray:
    """The oracle: full-resolution normalized convolution with an exact Gaussian (radius 4 sigma), in float64."""
    import cv2

    radius = int(np.ceil(4 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    weight = 1.0 - alpha.astype(np.float64)
    rgb = image[:, :, :3].astype(np.float64)

    def gauss(x: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(x, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_CONSTANT)

    summed = gauss(rgb * weight[:, :, None])
    total = gauss(weight)
    blurred = np.where(total[:, :, None] > 1e-9, summed / np.maximum(total, 1e-9)[:, :, None], rgb)
    a = alpha.astype(np.float64)[:, :, None]
    return np.clip(np.rint(rgb * a + blurred * (1 - a)), 0, 255)


BLUR_CASES = [
    ("astronaut.png", "selfie_segmenter.tflite", None),
    ("segmentation_input_rotation0.jpg", "selfie_segmenter.tflite", None),
    ("cat.jpg", "deeplabv3.tflite", ["cat"]),
    ("cats_and_dogs.jpg", "deeplabv3.tflite", ["cat", "dog"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("photo", "model", "categories"), BLUR_CASES)
def test_blur_quality_against_exact_normalized_gaussian(photo: str, model: str, categories: list[str] | None) -> None:
    """PSNR >= 33 dB over the image and >= 30 dB in the background band next to the subject, at sigma 15."""
    import cv2

    image = load_rgb(photo)
    result, labels = segment(model, image)
    alpha = effects.subject_mask(result, categories=categories, labels=labels)
    assert 0.02 < alpha.mean() < 0.98, "the photo's subject was not found: the test would measure nothing"
    out = effects.blur_background(image, result if categories is None else alpha, strength=15.0)
    oracle = exact_blur(image, alpha, 15.0)
    near = cv2.GaussianBlur(alpha, (0, 0), 8) > 0.05
    band = near & (alpha < 0.5)
    overall, in_band = psnr(out, oracle), psnr(out[band], oracle[band])
    print(f"{photo} ({image.shape[1]}x{image.shape[0]}): PSNR {overall:.1f} dB overall, {in_band:.1f} dB in the band")
    assert overall >= 33.0
    assert in_band >= 30.0


# --- compositing ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("color", [(0, 177, 64), "#00b140", "rgb(0,177,64)"])
def test_replace_with_color(astronaut: np.ndarray, mask: np.ndarray, color: effects.Color) -> None:
    out = effects.replace_background(astronaut, mask, color, estimate_colors=False)
    assert (out[mask == 0] == (0, 177, 64)).all()
    assert (out[mask == 1] == astronaut[mask == 1]).all()
    middle = (mask > 0.2) & (mask < 0.8)
    expected = np.rint(astronaut * mask[:, :, None] + np.array([0, 177, 64]) * (1 - mask[:, :, None]))
    assert np.abs(out[middle].astype(int) - expected[middle]).max() <= 1


def test_replace_with_image_of_other_size(astronaut: np.ndarray, mask: np.ndarray) -> None:
    background = np.zeros((100, 300, 3), np.uint8)
    background[:, :150] = (255, 0, 0)
    background[:, 150:] = (0, 0, 255)
    out = effects.replace_background(astronaut, mask, background)
    assert out.shape == astronaut.shape
    assert (out[:, 0][mask[:, 0] == 0] == (255, 0, 0)).all()
    assert (out[:, -1][mask[:, -1] == 0] == (0, 0, 255)).all()
    assert effects.fit_background(background, 512, 512).shape == (512, 512, 3)


def test_fit_background_resamples_only_the_part_it_keeps() -> None:
    """A 1x3000 strip behind a 600x400 image: its middle, stretched (scaling the whole strip to cover first would
    make 600x1,800,000 pixels); an ordinary case matches a full resize and crop within rounding."""
    strip = np.zeros((3000, 1, 3), np.uint8)
    strip[:1490] = (255, 0, 0)
    strip[1510:] = (0, 0, 255)
    strip[1490:1510] = (10, 200, 30)  # wider than the filter's reach around the kept 0.67 px
    start = time.perf_counter()
    fitted = effects.fit_background(strip, 600, 400)
    assert time.perf_counter() - start < 5.0  # seconds and gigabytes before the fix; milliseconds now
    assert fitted.shape == (400, 600, 3)
    assert (np.abs(fitted.astype(int) - (10, 200, 30)) <= 1).all()
    photo = load_rgb("astronaut.png")
    whole = PILImage.fromarray(photo).resize((640, 640), PILImage.Resampling.LANCZOS)  # 512x512 covering 640x480
    expected = np.asarray(whole.crop((0, 80, 640, 560)), np.int16)
    assert np.abs(effects.fit_background(photo, 640, 480) - expected).mean() < 0.5


def test_cutout_alpha_is_rounded_mask(astronaut: np.ndarray, mask: np.ndarray) -> None:
    out = effects.cutout(astronaut, mask, estimate_colors=False)
    assert out.shape == (*astronaut.shape[:2], 4)
    assert (out[:, :, :3] == astronaut).all()
    assert (out[:, :, 3] == np.clip(np.floor(mask * 255 + 0.5), 0, 255)).all()


def test_cutout_multiplies_existing_alpha(astronaut: np.ndarray) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 128, np.uint8)])
    out = effects.cutout(rgba, np.ones(astronaut.shape[:2], np.float32))
    assert (out[:, :, 3] == 128).all()


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, (7, 5), elements=st.floats(0, 1, width=32)))
def test_cutout_alpha_property(m: np.ndarray) -> None:
    image = np.full((7, 5, 3), 200, np.uint8)
    out = effects.cutout(image, m, estimate_colors=False)
    assert (np.abs(out[:, :, 3].astype(int) - m * 255) <= 0.5 + 1e-3).all()


def fringe_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dark subject with fine strands on a light background, and the soft mask a 256x256 model gives it."""
    height, width = 512, 512
    subject = disc_mask(height, width, radius_frac=0.3, soft=1.0) >= 0.5
    for column in range(80, 432, 8):  # hair-like strands above the disc
        subject[40:160, column : column + 3] = True
    image = np.where(subject[:, :, None], np.uint8(40), np.uint8(235)).astype(np.uint8)
    coarse = PILImage.fromarray((subject * 255).astype(np.uint8)).resize((256, 256), PILImage.Resampling.BOX)
    mask = np.asarray(coarse.resize((width, height), PILImage.Resampling.BILINEAR), np.float32) / 255
    return np.repeat(image, 3, axis=2), subject, mask


def test_default_removes_the_fringe() -> None:
    """With the model's soft mask, edge pixels show the old light background; the default estimates subject colors."""
    image, _, mask = fringe_scene()
    green = np.array([0, 177, 64])
    band = (mask > 0.02) & (mask < 0.98)
    ideal = np.rint(40 * mask[:, :, None] + green * (1 - mask[:, :, None]))  # the true subject color is 40

    def fringe(out: np.ndarray) -> float:
        return float(np.abs(out[band].astype(int) - ideal[band]).mean())

    raw = fringe(effects.replace_background(image, mask, tuple(green), estimate_colors=False))
    estimated = fringe(effects.replace_background(image, mask, tuple(green)))
    print(f"fringe (mean |out - composite of the true subject color| on the edge): {raw:.1f} raw, {estimated:.1f}")
    assert estimated < 0.3 * raw
    colors = effects.cutout(image, mask)[:, :, :3].astype(int)
    assert np.abs(colors[band] - 40).mean() < 0.3 * np.abs(image[band].astype(int) - 40).mean()


def background_share(rgba: np.ndarray, image: np.ndarray, alpha: np.ndarray, band: np.ndarray) -> float:
    """How much of the local old background a cutout's edge colors hold: each color projected onto the segment from
    the local subject color F to the local background color B (normalized Gaussian blurs of the image), 0 = F."""
    import cv2

    a = alpha.astype(np.float64) / 255
    rgb = image.astype(np.float64)

    def local(weight: np.ndarray) -> np.ndarray:
        blur = lambda x: cv2.GaussianBlur(x, (0, 0), 8)  # noqa: E731
        return np.asarray(blur(rgb * weight[:, :, None]) / np.maximum(blur(weight), 1e-9)[:, :, None])

    subject, backdrop = local(a**2), local((1 - a) ** 2)
    span = backdrop - subject
    usable = band & (np.linalg.norm(span, axis=2) > 40)
    share = ((rgba[:, :, :3] - subject) * span).sum(axis=2) / np.maximum((span * span).sum(axis=2), 1e-9)
    return float(share[usable].mean())


def test_default_on_a_real_portrait_drops_the_old_background(
    astronaut: np.ndarray, selfie: ImageSegmenterResult
) -> None:
    """Edge pixels of the photo mix in its backdrop; the default cutout's edge colors hold far less of it, and every
    opaque pixel keeps the image's color."""
    raw = effects.cutout(astronaut, selfie, estimate_colors=False)
    estimated = effects.cutout(astronaut, selfie)
    alpha = raw[:, :, 3]
    assert (estimated[:, :, 3] == alpha).all()
    assert (estimated[alpha == 255] == raw[alpha == 255]).all()
    band = (alpha > 5) & (alpha < 200)
    before = background_share(raw.astype(np.float64), astronaut, alpha, band)
    after = background_share(estimated.astype(np.float64), astronaut, alpha, band)
    print(f"old background's share in the edge colors: {before:.2f} raw, {after:.2f} estimated")
    assert after < 0.5 * before


def test_estimate_reaches_edges_far_from_the_confident_subject() -> None:
    """A faint strand 150 px from the body (beyond the blur's reach) still gets the body's color, not the backdrop's;
    with no confident block anywhere the cutout keeps the image's own colors and replace is a plain composite."""
    image = np.full((320, 480, 3), 235, np.uint8)
    image[100:300, 20:140] = (40, 60, 80)
    mask = np.zeros((320, 480), np.float32)
    mask[100:300, 20:140] = 1.0
    mask[150:250, 290:293] = 0.3  # the strand: its pixels are the light backdrop
    colors = effects.cutout(image, mask)[150:250, 290:293, :3].astype(int)
    assert np.abs(colors - (40, 60, 80)).max() <= 2
    faint = np.full((320, 480), 0.5, np.float32)
    assert (effects.cutout(image, faint)[:, :, :3] == image).all()
    plain = effects.replace_background(image, faint, "#00b140", estimate_colors=False).astype(int)
    assert np.abs(effects.replace_background(image, faint, "#00b140") - plain).max() <= 1


@pytest.mark.parametrize("size", [(320, 480), (720, 1280)])  # one thread, two
def test_transparent_pixels_keep_nothing_of_the_old_background(size: tuple[int, int]) -> None:
    """Where a default cutout is transparent its colors are the estimate's (the subject's, spread outward), not the
    image's: the file holds no trace of the background it removed. Without the estimate they are the image's own."""
    rng = np.random.default_rng(3)
    height, width = size
    image = rng.integers(0, 256, (height, width, 3), np.uint8)
    image[height // 4 : height // 2, width // 4 : width // 2] = (40, 60, 80)
    mask = np.zeros(size, np.float32)
    mask[height // 4 : height // 2, width // 4 : width // 2] = 1.0
    cut = effects.cutout(image, mask)
    clear = cut[:, :, 3] == 0
    assert clear.mean() > 0.8
    assert np.abs(cut[clear][:, :3].astype(int) - (40, 60, 80)).max() <= 1
    plain = effects.cutout(image, mask, estimate_colors=False)
    assert (plain[clear][:, :3] == image[clear]).all()


@pytest.mark.parametrize("size", [(720, 1280), (723, 1283)])  # large enough for two threads; not a multiple of 4
def test_a_hard_mask_is_an_exact_copy_and_each_edge_pixel_is_mixed_on_its_own(size: tuple[int, int]) -> None:
    """The edge is worked on gathered pixels, the rest as whole copies: with no soft edge replace is exactly a
    choice between image and background; a lone soft pixel anywhere is mixed, its neighbours untouched."""
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (*size, 3), np.uint8)
    backdrop = rng.integers(0, 256, (*size, 3), np.uint8)
    hard = disc_mask(*size, soft=1.0) >= 0.5
    replaced = effects.replace_background(image, hard.astype(np.float32), backdrop)
    assert (replaced == np.where(hard[:, :, None], image, backdrop)).all()
    cut = effects.cutout(image, hard.astype(np.float32))
    assert (cut[:, :, 3] == hard * 255).all() and (cut[hard][:, :3] == image[hard]).all()
    soft = hard.astype(np.float32)
    y, x = size[0] // 2, size[1] // 2  # inside the disc
    soft[y, x] = 0.5
    mixed = effects.replace_background(image, soft, backdrop, estimate_colors=False).astype(int)
    expected = np.where(hard[:, :, None], image, backdrop).astype(int)
    assert (np.abs(mixed[y, x] - (image[y, x].astype(int) + backdrop[y, x]) / 2) <= 1).all()
    mixed[y, x] = expected[y, x]
    assert (mixed == expected).all()


def test_guided_refinement_never_spreads_the_mask(astronaut: np.ndarray, selfie: ImageSegmenterResult) -> None:
    """refine="guided" may only sharpen: no alpha where the model had none (no glow), full alpha kept."""
    raw = effects.cutout(astronaut, selfie)[:, :, 3]
    refined = effects.cutout(astronaut, selfie, refine="guided")[:, :, 3]
    assert (refined[raw == 0] == 0).all() and (refined[raw == 255] == 255).all()
    band = (raw > 5) & (raw < 128)
    assert refined[band].mean() < raw[band].mean()


# --- recolor ----------------------------------------------------------------------------------------------------------


def test_recoloring_pixels_gives_the_same_bits_in_any_slices() -> None:
    """The OKLab round trip is element-wise down to the bit for any count and offset (so neither recolor's steps
    nor its split over threads can show): each random slice of random pixels, more than two steps' worth, recolors
    exactly as the whole array does, and a transposed view of (N, 3) pixels (recolor's own layout) as a copy."""
    rng = np.random.default_rng(8)
    count = 2 * _OKLAB_CHUNK + 4_011
    rgb = rng.integers(0, 256, (3, count), np.uint8)
    weight = rng.random(count, dtype=np.float32)
    target = _srgb_to_oklab(np.array([[192, 48, 128]], np.uint8))[0]
    whole = rgb.copy()
    _recolor_in_place(whole, weight, target)
    assert (whole != rgb).any()
    for _ in range(30):
        first = int(rng.integers(0, count - 10))
        last = int(rng.integers(first + 1, count + 1))
        part = np.ascontiguousarray(rgb[:, first:last])
        _recolor_in_place(part, weight[first:last], target)
        assert (part == whole[:, first:last]).all()
    pixels = np.ascontiguousarray(rgb.T)
    _recolor_in_place(pixels.T, weight, target)
    assert (whole == pixels.T).all()


def test_recolor_moves_hue_and_keeps_the_rest(astronaut: np.ndarray) -> None:
    m = np.zeros(astronaut.shape[:2], np.float32)
    m[100:200, 100:200] = 1.0
    out = effects.recolor(astronaut, m, "#c03080", strength=1.0)
    assert (out[m == 0] == astronaut[m == 0]).all()
    target = oklab_hue(np.array([[192, 48, 128]], np.uint8))
    assert angle_between(oklab_hue(out[m == 1]), target) < 0.3
    before, after = _srgb_to_oklab(astronaut[m == 1]), _srgb_to_oklab(out[m == 1])
    assert np.abs(before[:, 0] - after[:, 0]).mean() < 0.03  # lightness kept (up to gamut clipping)


def test_recolor_strength_zero_is_identity(astronaut: np.ndarray, mask: np.ndarray) -> None:
    assert (effects.recolor(astronaut, mask, "red", strength=0.0) == astronaut).all()


@settings(max_examples=25, deadline=None)
@given(
    arrays(np.uint8, (6, 5, 3)),
    arrays(np.float32, (6, 5), elements=st.sampled_from([0.0, 0.001, 0.5, 1.0])),
    st.tuples(*[st.integers(0, 255)] * 3),
)
def test_recolor_leaves_unmasked_pixels_bit_identical(image: np.ndarray, m: np.ndarray, color: tuple[int, ...]) -> None:
    out = effects.recolor(image, m, color)
    untouched = np.rint(np.rint(m * 255) * 0.8) < 3  # weights under 3/255 (the mask's noise) are not applied
    assert (out[untouched] == image[untouched]).all()


def test_recolor_skips_only_the_mask_noise() -> None:
    """A weight of 2/255 leaves the pixel as is; 3/255 already tints it (a saturated target moves a gray pixel)."""
    image = np.full((1, 2, 3), 128, np.uint8)
    m = np.array([[2 / 255, 3 / 255]], np.float32)
    out = effects.recolor(image, m, (255, 0, 255), strength=1.0)
    assert (out[0, 0] == 128).all()
    assert (out[0, 1] != 128).any()


# --- overlay and legend -----------------------------------------------------------------------------------------------


def test_overlay_paints_palette_colors(astronaut: np.ndarray) -> None:
    categories = np.zeros(astronaut.shape[:2], np.uint8)
    categories[:, 256:] = 2
    out = effects.overlay(astronaut, categories, palette=[None, "red", (0, 0, 255)], alpha=1.0)
    assert (out[:, :256] == astronaut[:, :256]).all()
    assert (out[:, 256:] == (0, 0, 255)).all()
    half = effects.overlay(astronaut, categories, palette=[None, "red", (0, 0, 255)], alpha=0.5)
    expected = np.rint(astronaut[:, 256:] * 0.5 + np.array([0, 0, 255]) * 0.5)
    assert np.abs(half[:, 256:].astype(int) - expected).max() <= 1


def test_overlay_of_a_selfie_result_colors_the_person(astronaut: np.ndarray, selfie: ImageSegmenterResult) -> None:
    out = effects.overlay(astronaut, selfie, palette=[None, (255, 0, 0)], alpha=1.0)
    assert selfie.category_mask is not None
    person = effects.subject_mask(selfie.category_mask) > 0.5
    assert (out[person] == (255, 0, 0)).all()
    assert (out[~person] == astronaut[~person]).all()


def test_legend_scales_with_the_image(astronaut: np.ndarray) -> None:
    small = effects.legend(["background", "person"], categories=[1], text_size=10)
    large = effects.legend(["background", "person"], categories=[1], text_size=40)
    assert large.shape[0] > 3 * small.shape[0] and large.shape[1] > 2.5 * small.shape[1]
    categories = np.zeros((720, 1280), np.uint8)
    categories[300:, :] = 1
    image = np.zeros((720, 1280, 3), np.uint8)
    out = effects.overlay(image, categories, palette=[None, "red"], labels=["background", "person"])
    drawn = np.argwhere((out[:, :, 0] == 32) & (out[:, :, 1] == 32))  # the legend's dark panel
    assert drawn[:, 0].max() - drawn[:, 0].min() >= 720 / 40


def test_a_videos_frames_draw_their_legend_once_and_show_what_each_frame_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames with the same categories reuse one drawing of the legend (text is slow to draw); a frame with other
    categories gets its own; a giant legend is not kept, and what is kept stays under its byte bound; ``legend()``
    hands out a fresh, writable copy each time."""
    from segkit import effects as module

    drawn: list[int] = []
    draw = module._draw_legend

    def counting(*args: Any) -> np.ndarray:
        drawn.append(args[3])
        return draw(*args)

    monkeypatch.setattr(module, "_draw_legend", counting)
    monkeypatch.setattr(module, "_legends", OrderedDict())
    labels = ["background", "person", "cat"]
    image = np.zeros((480, 640, 3), np.uint8)
    person = np.zeros((480, 640), np.uint8)
    person[200:, 300:] = 1
    both = person.copy()
    both[:50, 400:] = 2
    first, again = (effects.overlay(image, person, labels=labels) for _ in range(2))
    assert (first == again).all() and len(drawn) == 1
    other = effects.overlay(image, both, labels=labels)
    assert len(drawn) == 2
    rows = lambda out: int((out[:, :12] == 32).all(axis=2).any(axis=1).sum())  # noqa: E731  # the panel's height
    assert rows(other) > rows(first)  # one more line: "cat"
    giant = ("x" * 400,)
    for _ in range(2):
        module._legend_box(giant, ((255, 0, 0),), (0,), 512)
    assert drawn[-2:] == [512, 512]  # drawn each time: over a quarter of the bound
    for size in range(10, 200, 10):
        module._legend_box(tuple(labels), ((1, 2, 3),) * 3, (0, 1, 2), size)
    assert sum(box.nbytes for box in module._legends.values()) <= module._LEGEND_BYTES
    assert (giant, ((255, 0, 0),), (0,), 512) not in module._legends
    fresh = effects.legend(labels, categories=[1])
    fresh[:] = 0
    assert fresh.flags.writeable and effects.legend(labels, categories=[1]).any()


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (5, 30), (30, 5)])
def test_the_legend_is_cropped_to_tiny_images(shape: tuple[int, int]) -> None:
    categories = np.ones(shape, np.uint8)
    out = effects.overlay(np.zeros((*shape, 3), np.uint8), categories, labels=["background", "person"])
    assert out.shape == (*shape, 3)


def test_overlay_errors(astronaut: np.ndarray) -> None:
    categories = np.zeros(astronaut.shape[:2], np.uint8)
    for labels in ("person", ["background", 1]):
        with pytest.raises(TypeError, match="labels must be a sequence of str"):
            effects.overlay(astronaut, categories, labels=labels)  # type: ignore[arg-type]  # the error is the test
        with pytest.raises(TypeError, match="labels must be a sequence of str"):
            effects.legend(labels)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        effects.overlay(astronaut, np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="palette has only"):
        effects.overlay(astronaut, np.full(astronaut.shape[:2], 3, np.uint8), palette=[None, "red"])
    with pytest.raises(ValueError, match="alpha"):
        effects.overlay(astronaut, np.zeros(astronaut.shape[:2], np.uint8), alpha=2)


# --- the subject mask: every input kind, every model's convention -----------------------------------------------------


def test_selfie_category_mask_as_is_never_inverts(astronaut: np.ndarray, selfie: ImageSegmenterResult) -> None:
    assert selfie.category_mask is not None and selfie.confidence_masks is not None
    person = effects.subject_mask(selfie)
    assert 0.2 < person.mean() < 0.8
    from_image = effects.subject_mask(selfie.category_mask)  # the Image: read by its documented meaning
    assert ((from_image > 0.5) == (person > 0.5)).mean() > 0.99
    view = selfie.category_mask.numpy_view()
    with pytest.raises(ValueError, match="0 marks the person"):
        effects.cutout(astronaut, view)
    with pytest.raises(ValueError, match="0 marks the person"):
        effects.subject_mask(view)
    cut = effects.cutout(astronaut, selfie.category_mask)[:, :, 3]
    assert (cut[view[:, :, 0] == 0] == 255).all() and (cut[view[:, :, 0] == 255] == 0).all()
    as_bool = effects.subject_mask(view[:, :, 0] == 0)
    assert (as_bool == from_image).all()


def test_a_multiclass_category_view_is_not_misread_as_alpha(models: Path) -> None:
    image = load_rgb("cat.jpg")
    result, labels = segment("deeplabv3.tflite", image)
    assert result.category_mask is not None
    view = result.category_mask.numpy_view()  # (H, W, 1) class indices 0..20
    with pytest.raises(ValueError, match="class indices"):
        effects.cutout(image, view)
    cat = effects.subject_mask(view, categories=["cat"], labels=labels)
    assert (cat == (view[:, :, 0] == labels.index("cat"))).all() and cat.mean() > 0.05


def test_every_input_kind_gives_the_same_alpha(astronaut: np.ndarray, selfie: ImageSegmenterResult) -> None:
    assert selfie.confidence_masks is not None
    expected = effects.subject_mask(selfie)
    probability = selfie.confidence_masks[0]
    assert (effects.subject_mask(probability) == expected).all()  # VEC32F1 Image
    assert (effects.subject_mask(probability.numpy_view()) == expected).all()  # (H, W, 1) float
    assert (effects.subject_mask(PILImage.fromarray(expected, "F")) == expected).all()
    alpha8 = np.rint(expected * 255).astype(np.uint8)
    assert np.abs(effects.subject_mask(PILImage.fromarray(alpha8, "L")) - expected).max() <= 0.5 / 255 + 1e-6
    outputs = [
        effects.blur_background(image, selfie)
        for image in (astronaut, Image(ImageFormat.SRGB, astronaut), PILImage.fromarray(astronaut))
    ]
    assert all((o == outputs[0]).all() for o in outputs)
    assert (effects.blur_background(astronaut, expected) == outputs[0]).all()


def test_hair_result_gives_the_hair(astronaut: np.ndarray) -> None:
    result, labels = segment("hair_segmenter.tflite", astronaut)
    hair = effects.subject_mask(result)
    assert result.confidence_masks is not None and result.category_mask is not None
    assert (hair == result.confidence_masks[1].numpy_view()[:, :, 0]).all()
    assert (effects.subject_mask(result, categories="hair", labels=labels) == hair).all()
    from_categories = effects.subject_mask(result.category_mask)
    assert ((from_categories > 0.5) == (hair > 0.5)).mean() > 0.999


def test_a_model_without_labels_takes_channel_indices() -> None:
    """A model without metadata has no labels (``segmenter.labels == []``): its subject is everything but channel 0
    and categories are channel indices, as for labels=None (it raised "labels has 0 names" with every effect)."""
    from tests.modelbuilder import probe_model

    pixels = np.random.default_rng(0).integers(0, 256, (16, 12, 3), dtype=np.uint8)
    model = probe_model((16, 12, 3), (16, 12, 3), dtype="uint8", with_metadata=False)
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(BaseOptions(model_asset_buffer=model))) as seg:
        assert seg.labels == []
        result = seg.segment(pixels)
        default = effects.subject_mask(result, segmenter=seg)
        second = effects.subject_mask(result, categories=[2], segmenter=seg)
    assert (default == effects.subject_mask(result)).all()
    assert (second == effects.subject_mask(result, categories=[2])).all()
    assert (effects.subject_mask(result, labels=[]) == default).all()


@pytest.mark.parametrize("spec", ["\u00b2", "\u2460", ["1", "\u00b2"], "7" * 5000])
def test_categories_that_only_look_like_digits_are_names(spec: str | list[str]) -> None:
    """'²' and '①' pass ``str.isdigit`` but are not integers, and ``int`` refuses 5000 digits: they are looked up as
    names (and not found)."""
    mask = np.zeros((3, 20, 20), np.float32)
    result = ImageSegmenterResult(confidence_masks=[Image(ImageFormat.VEC32F1, m[:, :, None]) for m in mask])
    with pytest.raises(ValueError, match=r"is a name|is not a label"):
        effects.subject_mask(result, categories=spec)
    with pytest.raises(ValueError, match="is not a label of this model"):
        effects.subject_mask(result, categories=spec, labels=["a", "b", "c"])


@pytest.mark.slow
def test_deeplab_result_with_categories(models: Path) -> None:
    image = load_rgb("cats_and_dogs.jpg")
    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(models / "deeplabv3.tflite")), output_category_mask=True
    )
    with ImageSegmenter.create_from_options(options) as segmenter:
        result = segmenter.segment(image)
        by_segmenter = effects.subject_mask(result, categories=["cat", "dog"], segmenter=segmenter)
        labels = segmenter.labels
    by_labels = effects.subject_mask(result, categories=["cat", "dog"], labels=labels)
    by_index = effects.subject_mask(result, categories=[8, 12], activation="none")
    assert (by_segmenter == by_labels).all() and (by_labels == by_index).all()
    assert result.category_mask is not None and result.confidence_masks is not None
    categories = result.category_mask.numpy_view()[:, :, 0]
    animals = np.isin(categories, [8, 12])
    assert animals.mean() > 0.1
    assert ((by_index > 0.5) == animals).mean() > 0.9  # the category mask upsamples logits, not probabilities
    logits = np.stack([m.numpy_view()[:, :, 0] for m in result.confidence_masks]).astype(np.float64)
    softmax = np.exp(logits - logits.max(axis=0))
    expected = softmax[[8, 12]].sum(axis=0) / softmax.sum(axis=0)
    assert np.abs(by_index - expected).max() < 1e-5
    everything = effects.subject_mask(result)  # default: all but background
    assert np.abs(everything - (1 - softmax[0] / softmax.sum(axis=0))).max() < 1e-5
    with pytest.raises(ValueError, match="not a label"):
        effects.subject_mask(result, categories="unicorn", labels=labels)
    with pytest.raises(ValueError, match="labels="):
        effects.subject_mask(result, categories="cat")


def test_mask_of_model_size_is_upsampled(astronaut: np.ndarray, mask: np.ndarray) -> None:
    small = np.asarray(PILImage.fromarray(mask, "F").resize((128, 128), PILImage.Resampling.BILINEAR))
    out = effects.replace_background(astronaut, small, "black")
    full = effects.replace_background(astronaut, mask, "black")
    assert np.abs(out.astype(int) - full).mean() < 2
    assert effects.subject_mask(small, shape=(512, 512)).shape == (512, 512)


def test_validation_errors(astronaut: np.ndarray, mask: np.ndarray) -> None:
    with pytest.raises(TypeError, match="uint8"):
        effects.blur_background(astronaut.astype(np.float32), mask)
    with pytest.raises(ValueError, match="shape"):
        effects.blur_background(astronaut[:, :, 0], mask)
    with pytest.raises(ValueError, match="logits"):
        effects.cutout(astronaut, mask * 5)
    with pytest.raises(ValueError, match="NaN"):
        effects.cutout(astronaut, np.full(mask.shape, np.nan, np.float32))
    with pytest.raises(TypeError, match="mask"):
        effects.cutout(astronaut, [[0.5]])  # type: ignore[arg-type]  # a list is not a mask: the error is the test
    with pytest.raises(ValueError, match="strength"):
        effects.blur_background(astronaut, mask, strength=-1)
    with pytest.raises(ValueError, match="refine"):
        effects.replace_background(astronaut, mask, "red", refine="sharp")
    with pytest.raises(ValueError, match="not a color"):
        effects.replace_background(astronaut, mask, "no-such-color")
    with pytest.raises(ValueError, match="out of range"):
        effects.subject_mask(ImageSegmenterResult(confidence_masks=[Image(ImageFormat.VEC32F1, mask)]), categories=[3])


def test_inputs_are_not_modified(astronaut: np.ndarray, mask: np.ndarray) -> None:
    image, m = astronaut.copy(), mask.copy()
    effects.blur_background(image, m)
    effects.replace_background(image, m, "red")
    effects.cutout(image, m)
    effects.recolor(image, m, "red")
    effects.refine_mask(m, image, method="guided")
    assert (image == astronaut).all() and (m == mask).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["blur", "replace", "replace_image", "cutout", "recolor", "overlay"])
def test_outputs_are_writable_and_views_give_the_same_bits(name: str) -> None:
    # The compositing effects write into their output through Pillow images that share its memory; a strided view
    # of the input, or an RGBA one, must give what its contiguous copy gives, and the caller owns what comes back.
    rgba = np.array(PILImage.fromarray(load_rgb("astronaut.png")).resize((700, 500)).convert("RGBA"))
    rgba[:, :, 3] = 200
    result, _ = segment("selfie_segmenter.tflite", rgba[:, :, :3].copy())
    effect = EFFECTS[name]
    for image in (rgba, rgba[:, :, :3]):  # the second is a strided view
        out = effect(image, result)
        assert out.flags.writeable and out.flags.c_contiguous and not np.shares_memory(out, rgba)
        assert out.tobytes() == effect(np.ascontiguousarray(image), result).tobytes()
        assert out.shape[:2] == image.shape[:2]
    assert (effects.cutout(rgba, result)[:, :, 3] <= 200).all()


# --- stability: same input, same bytes, with or without the second thread ---------------------------------------------

EFFECTS = {
    "blur": lambda image, result: effects.blur_background(image, result),
    "replace": lambda image, result: effects.replace_background(image, result, "#00b140"),
    "replace_image": lambda image, result: effects.replace_background(image, result, image[::-1]),
    "cutout": lambda image, result: effects.cutout(image, result),
    "recolor": lambda image, result: effects.recolor(image, result, "#c03080"),
    "overlay": lambda image, result: effects.overlay(image, result, labels=["background", "person"]),
    "feather": lambda image, result: effects.blur_background(image, result, refine="feather"),
}


@pytest.mark.slow
@pytest.mark.parametrize("size", [(1280, 720), (1283, 723)])  # odd: the split rows fall mid-block
@pytest.mark.parametrize("name", sorted(EFFECTS))
def test_effects_are_bit_stable_across_runs_and_threads(name: str, size: tuple[int, int]) -> None:
    image = np.ascontiguousarray(np.asarray(PILImage.fromarray(load_rgb("astronaut.png")).resize(size)))
    result, _ = segment("selfie_segmenter.tflite", image)
    effect = EFFECTS[name]
    first = effect(image, result)
    assert (effect(image, result) == first).all()
    effects.set_num_threads(1)
    try:
        single = effect(image, result)
    finally:
        effects.set_num_threads(2)
    assert single.tobytes() == first.tobytes()


@pytest.mark.parametrize("width", [1, 7, 1280, 1283, 70_001])
def test_field_cells_of_gathered_pixels_match_their_rows_and_columns(width: int) -> None:
    """The int32 fast path and the int64 one (for images of 2**31 pixels and more) give each pixel its 4x4 cell."""
    rng = np.random.default_rng(width)
    for top in (10**6, 2**31 + 5 * width):  # indices that fit int32, and ones that do not
        indices = np.sort(rng.integers(0, top, 5000)).astype(np.intp)
        rows, columns = np.divmod(indices, width)
        expected = rows // 4 * -(-width // 4) + columns // 4
        assert (_cells_at(indices, width) == expected).all()
    assert _cells_at(np.zeros(0, np.intp), width).size == 0


def test_thread_limit_keeps_this_threads_effects_on_it_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside ``thread_limit(1)`` no effect hands work to the helper thread, the bits are the same, and the limit is
    this thread's only: another thread, and this one after the block, split again."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (720, 1280, 3), np.uint8)
    m = disc_mask(720, 1280, soft=20.0)
    expected = effects.replace_background(image, m, image[::-1])
    used: list[str] = []
    real_helper = effects._helper

    def helper() -> ThreadPoolExecutor:
        used.append(threading.current_thread().name)
        return real_helper()

    monkeypatch.setattr(effects, "_helper", helper)
    with effects.thread_limit(1):
        with effects.thread_limit(2):  # nested: never more than the outer limit
            assert effects.replace_background(image, m, image[::-1]).tobytes() == expected.tobytes()
        effects.blur_background(image, m)
        assert used == []
        other = threading.Thread(target=lambda: effects.blur_background(image, m), name="other")
        other.start()
        other.join()
        assert used and set(used) == {"other"}
    effects.blur_background(image, m)
    assert threading.current_thread().name in used
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="thread count"), effects.thread_limit(bad):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize("shape", [(720, 1280), (723, 1283), (13, 7), (5, 3), (2, 9), (1, 1)])
@pytest.mark.parametrize("channels", [3, 4])
def test_block_means_are_the_means_of_four_samples_per_block(shape: tuple[int, int], channels: int) -> None:
    """Each 8x8 block's colors and alpha are the rounded mean of its pixels 2 and 6 across and down (Pillow's
    strided decode and nearest pick); blocks past the image's end repeat its last samples."""
    rng = np.random.default_rng(shape[0] * 7 + channels)
    height, width = shape
    image = rng.integers(0, 256, (height, width, channels), np.uint8)
    alpha = rng.integers(0, 256, shape, np.uint8)
    rows, columns = -(-height // 8) * 2, -(-width // 8) * 2
    plane = np.concatenate([image[:, :, :3], alpha[:, :, None]], axis=2)
    samples = plane[min(2, height - 1) :: 4, min(2, width - 1) :: 4]
    samples = np.pad(samples, ((0, rows - samples.shape[0]), (0, columns - samples.shape[1]), (0, 0)), mode="edge")
    quads = samples.reshape(rows // 2, 2, columns // 2, 2, 4).astype(int).sum(axis=(1, 3))
    expected = (quads + 2) // 4  # Pillow's reduce rounds half up
    assert (_block_means(image, alpha).astype(int) == expected).all()


@pytest.mark.parametrize("size", [(90, 160), (91, 161), (1, 1), (2, 3)])
def test_estimate_field_is_a_bilinear_doubling(size: tuple[int, int]) -> None:
    """The uint64-lane doubling is Pillow's bilinear 2x (its pixel centres, edges clamped) within one level, exact
    against the float arithmetic rounded once, with the fourth byte 255; cropped to ceil(H / 4) x ceil(W / 4)."""
    rng = np.random.default_rng(size[0])
    colors = (rng.random((3, *size), dtype=np.float32) * 300 - 20).astype(np.float32)  # clipped to 0..255 inside
    height, width = size[0] * 8 - 5, size[1] * 8 - 3
    grid = _estimate_field(colors.copy(), height, width)
    assert grid.shape == (-(-height // 4), -(-width // 4))
    got = grid.view(np.uint8).reshape(*grid.shape, 4)
    assert (got[:, :, 3] == 255).all()
    levels = np.floor(np.clip(colors, 0, 255) + 0.5)
    padded = np.pad(levels, ((0, 0), (1, 1), (1, 1)), mode="edge")

    def doubled(x: np.ndarray, axis: int) -> np.ndarray:  # out 2i = (x[i-1] + 3 x[i]) / 4, 2i+1 = (3 x[i] + x[i+1]) / 4
        inner = np.take(x, range(1, x.shape[axis] - 1), axis)
        before, after = np.take(x, range(x.shape[axis] - 2), axis), np.take(x, range(2, x.shape[axis]), axis)
        return np.stack([before + 3 * inner, 3 * inner + after], axis=axis + 1).reshape(
            *inner.shape[:axis], -1, *inner.shape[axis + 1 :]
        )

    both = doubled(doubled(padded, 2), 1)  # across (rows still padded), then down
    exact = np.floor((both + 8) / 16)[:, : grid.shape[0], : grid.shape[1]]
    assert (np.moveaxis(got[:, :, :3], 2, 0) == exact).all()
    pillow = PILImage.fromarray(np.moveaxis(levels, 0, 2).astype(np.uint8), "RGB").resize(
        (size[1] * 2, size[0] * 2), PILImage.Resampling.BILINEAR
    )
    near = np.asarray(pillow)[: grid.shape[0], : grid.shape[1]].astype(int)
    assert np.abs(got[:, :, :3].astype(int) - near).max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(601, 999, 3), (577, 1001, 4), (723, 1283, 4), (2, 2000, 3)])
def test_noise_images_give_the_same_bits_on_one_and_two_threads(shape: tuple[int, int, int]) -> None:
    # A seeded slice of the fuzz run that found the guided filter's split dependence: noise images (every rounding
    # case is hit somewhere), full-size and smaller masks, every effect and refinement.
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, shape, np.uint8)
    height, width = shape[:2]
    full = rng.random((height, width), dtype=np.float32)
    small = rng.random((max(1, height // 3), max(1, width // 3)), dtype=np.float32)
    runs: dict[str, list[bytes]] = {}
    for threads in (2, 1):
        effects.set_num_threads(threads)
        try:
            for kind, m in (("full", full), ("small", small)):
                for refine in ("none", "feather", "guided"):
                    outs = {
                        "blur": effects.blur_background(image, m, refine=refine),
                        "cutout": effects.cutout(image, m, refine=refine),
                        "replace": effects.replace_background(image, m, image[::-1, ::-1], refine=refine),
                        "recolor": effects.recolor(image, m, "#c03080"),
                    }
                    for name, out in outs.items():
                        assert out.shape[:2] == (height, width)
                        runs.setdefault(f"{kind}/{refine}/{name}", []).append(out.tobytes())
            runs.setdefault("overlay", []).append(effects.overlay(image, full, labels=["a", "b"]).tobytes())
        finally:
            effects.set_num_threads(2)
    assert [key for key, (two, one) in runs.items() if two != one] == []


@pytest.mark.parametrize("size", [(999, 601), (1001, 577)])
def test_guided_refinement_of_a_smaller_mask_is_bit_stable_across_threads(size: tuple[int, int]) -> None:
    # The guided filter's coefficients are upsampled per half of the rows; at sizes that are not a multiple of its
    # grid the mapping of rows to the grid once depended on where the halves met (seen on noise images).
    width, height = size
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (height, width, 3), np.uint8)
    small = rng.random((height // 3, width // 3), dtype=np.float32)
    first = effects.cutout(image, small, refine="guided")
    effects.set_num_threads(1)
    try:
        single = effects.cutout(image, small, refine="guided")
    finally:
        effects.set_num_threads(2)
    assert single.shape == (height, width, 4) and single.tobytes() == first.tobytes()


# --- refinement and smoothing -----------------------------------------------------------------------------------------


def test_refine_feather_and_guided(astronaut: np.ndarray) -> None:
    hard = (disc_mask(astronaut.shape[0], astronaut.shape[1], soft=1.0) >= 0.5).astype(np.float32)
    feathered = effects.refine_mask(hard, radius=6)
    assert feathered.dtype == np.float32 and feathered.shape == hard.shape
    assert ((feathered > 0.05) & (feathered < 0.95)).sum() > ((hard > 0.05) & (hard < 0.95)).sum()
    guided = effects.refine_mask(hard, astronaut, radius=8, method="guided")
    assert guided.shape == hard.shape and guided.min() >= 0 and guided.max() <= 1
    assert np.abs(guided - hard).mean() < 0.1
    assert (effects.refine_mask(hard, radius=0) == hard).all()
    with pytest.raises(ValueError, match="guide"):
        effects.refine_mask(hard, method="guided")


def test_temporal_smoother(selfie: ImageSegmenterResult) -> None:
    smoother = effects.TemporalSmoother(weight=0.5, reset_threshold=0.5)
    a = np.zeros((4, 4), np.float32)
    b = np.full((4, 4), 0.4, np.float32)
    assert (smoother(a) == 0).all()
    assert np.allclose(smoother(b), 0.2)
    assert np.allclose(smoother(b), 0.3)
    smoother.reset()
    assert np.allclose(smoother(b), 0.4)
    jumpy = effects.TemporalSmoother(weight=0.5, reset_threshold=0.1)
    jumpy(a)
    assert np.allclose(jumpy(np.ones((4, 4), np.float32)), 1.0)  # a cut: restart, no ghost
    assert effects.TemporalSmoother()(selfie).shape == (512, 512)  # a result, like every effect


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_effects_work_in_a_forked_child(astronaut: np.ndarray, mask: np.ndarray) -> None:
    """The helper thread does not survive fork; a child (multiprocessing's default on Linux) must not hang."""
    large = np.ascontiguousarray(np.asarray(PILImage.fromarray(astronaut).resize((1280, 720))))
    alpha = effects.subject_mask(mask, shape=(720, 1280))
    expected = effects.blur_background(large, alpha)  # starts the helper thread in this process
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the split work finishes with the same bytes
        same = effects.blur_background(large, alpha).tobytes() == expected.tobytes()
        os._exit(0 if same else 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    pytest.fail("the forked child hung in an effect")
