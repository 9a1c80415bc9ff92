"""The public API in IMAGE mode: MediaPipe's own segmenter test cases, its error contract, and segkit's extras."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import segkit
from segkit import (
    BaseOptions,
    Image,
    ImageFormat,
    ImageProcessingOptions,
    ImageSegmenter,
    ImageSegmenterOptions,
    RectF,
    RunningMode,
)
from tests.conftest import data_file, load_rgb, model_path
from tests.modelbuilder import probe_model

DEEPLAB = "deeplabv3.tflite"
MAGNIFICATION = 10


def options(model: str = DEEPLAB, **kwargs: Any) -> ImageSegmenterOptions:
    return ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(model_path(model))), **kwargs)


def similarity(mask: Image, golden: np.ndarray) -> float:
    return float(np.mean(mask.numpy_view()[:, :, 0].astype(np.int32) * MAGNIFICATION == golden))


def test_public_names_match_mediapipe() -> None:
    assert segkit.VisionTaskRunningMode is RunningMode
    assert [m.value for m in RunningMode] == ["IMAGE", "VIDEO", "LIVE_STREAM"]
    opts = ImageSegmenterOptions(base_options=BaseOptions(model_asset_path="x"))
    assert (opts.running_mode, opts.output_confidence_masks, opts.output_category_mask) == (
        RunningMode.IMAGE,
        True,
        False,
    )
    assert opts.display_names_locale == "en" and opts.result_callback is None
    assert [int(d) for d in BaseOptions.Delegate] == [0, 1, 2]
    assert RectF(0.1, 0.2, 0.3, 0.4).bottom == 0.3


def test_create_from_model_path_and_buffer(test_image: Image, golden: np.ndarray) -> None:
    with ImageSegmenter.create_from_model_path(model_path(DEEPLAB)) as seg:
        assert isinstance(seg, ImageSegmenter)
        assert len(seg.labels) == 21 and seg.labels[15] == "person"
    buffer = model_path(DEEPLAB).read_bytes()
    opts = ImageSegmenterOptions(base_options=BaseOptions(model_asset_buffer=buffer), output_category_mask=True)
    with ImageSegmenter.create_from_options(opts) as seg:
        result = seg.segment(test_image)
        assert result.category_mask is not None and similarity(result.category_mask, golden) >= 0.98


def test_buffer_wins_over_bad_path() -> None:
    buffer = model_path(DEEPLAB).read_bytes()
    opts = ImageSegmenterOptions(base_options=BaseOptions(model_asset_path="/nonexistent", model_asset_buffer=buffer))
    with ImageSegmenter.create_from_options(opts) as seg:
        assert len(seg.labels) == 21


@pytest.mark.parametrize(
    "base, error, message",
    [
        (BaseOptions(model_asset_path=""), ValueError, "ExternalFile must specify at least one of"),
        (BaseOptions(model_asset_buffer=b""), ValueError, "ExternalFile must specify at least one of"),
        (BaseOptions(), ValueError, "ExternalFile must specify at least one of"),
        (BaseOptions(model_asset_path="/nonexistent/m.tflite"), FileNotFoundError, "Unable to open file at"),
        (BaseOptions(model_asset_buffer=b"\x89PNG\r\n\x1a\n" + bytes(100)), ValueError, "not a valid Flatbuffer"),
        (BaseOptions(model_asset_buffer=bytes(range(256)) * 4), ValueError, "not a valid Flatbuffer"),
    ],
)
def test_creation_errors(base: BaseOptions, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ImageSegmenter.create_from_options(ImageSegmenterOptions(base_options=base))


def test_truncated_model_is_a_value_error() -> None:
    data = model_path("selfie_segmenter.tflite").read_bytes()
    for size in (7, 100, len(data) // 2):
        with pytest.raises(ValueError):
            ImageSegmenter.create_from_options(ImageSegmenterOptions(BaseOptions(model_asset_buffer=data[:size])))


def test_bytearray_and_memoryview_buffers_work() -> None:
    data = model_path("selfie_segmenter.tflite").read_bytes()
    for buffer in (bytearray(data), memoryview(data)):
        with ImageSegmenter.create_from_options(ImageSegmenterOptions(BaseOptions(model_asset_buffer=buffer))) as seg:
            assert seg.labels == ["selfie"]


def test_both_outputs_false() -> None:
    with pytest.raises(ValueError, match="At least one of `output_confidence_masks` and `output_category_mask`"):
        ImageSegmenter.create_from_options(options(output_confidence_masks=False, output_category_mask=False))


def test_callback_rules() -> None:
    with pytest.raises(ValueError, match="result callback must be provided"):
        ImageSegmenter.create_from_options(options(running_mode=RunningMode.LIVE_STREAM))
    for mode in (RunningMode.IMAGE, RunningMode.VIDEO):
        with pytest.raises(ValueError, match="result callback should not be provided"):
            ImageSegmenter.create_from_options(options(running_mode=mode, result_callback=lambda *a: None))


def test_float_model_without_normalization_is_refused_unless_overridden() -> None:
    legacy = model_path("legacy/selfie_segmentation.tflite")
    with pytest.raises(FileNotFoundError, match="requires specifying NormalizationOptions"):
        ImageSegmenter.create_from_model_path(legacy)
    opts = ImageSegmenterOptions(BaseOptions(model_asset_path=str(legacy)), normalization=(0.0, 255.0))
    with ImageSegmenter.create_from_options(opts) as seg:
        assert seg.labels == []
        result = seg.segment(load_rgb("astronaut.png"))
        assert result.confidence_masks is not None and len(result.confidence_masks) == 1


def test_legacy_model_equals_tasks_model_with_override() -> None:
    pixels = load_rgb("astronaut.png")
    opts = ImageSegmenterOptions(
        BaseOptions(model_asset_path=str(model_path("legacy/selfie_segmentation.tflite"))),
        normalization=(0.0, 255.0),
        output_category_mask=True,
    )
    with (
        ImageSegmenter.create_from_options(opts) as legacy,
        ImageSegmenter.create_from_options(options("selfie_segmenter.tflite", output_category_mask=True)) as tasks,
    ):
        a, b = legacy.segment(pixels), tasks.segment(pixels)
    assert a.category_mask is not None and b.category_mask is not None
    assert np.array_equal(a.category_mask.numpy_view(), b.category_mask.numpy_view())


def test_rotation_and_roi_errors(test_image: Image) -> None:
    with ImageSegmenter.create_from_options(options()) as seg:
        with pytest.raises(ValueError, match=r"Expected rotation to be a multiple of 90°\."):
            seg.segment(test_image, ImageProcessingOptions(rotation_degrees=45))
        with pytest.raises(ValueError, match=r"This task doesn't support region-of-interest\."):
            seg.segment(test_image, ImageProcessingOptions(region_of_interest=RectF(0, 0, 1, 1)))
        assert seg.segment(test_image).confidence_masks is not None


def test_wrong_mode_messages(test_image: Image) -> None:
    with ImageSegmenter.create_from_options(options()) as seg:
        with pytest.raises(
            ValueError, match=r"^Task is not initialized with the video mode\. Current running mode:image mode$"
        ):
            seg.segment_for_video(test_image, 0)
        with pytest.raises(ValueError, match="not initialized with the live stream mode"):
            seg.segment_async(test_image, 0)


def test_masks_have_mediapipe_types(test_image: Image) -> None:
    with ImageSegmenter.create_from_options(options(output_category_mask=True)) as seg:
        result = seg.segment(test_image)
    assert result.confidence_masks is not None and len(result.confidence_masks) == 21
    for mask in result.confidence_masks:
        assert mask.image_format == ImageFormat.VEC32F1
        view = mask.numpy_view()
        assert view.shape == (257, 257, 1) and view.dtype == np.float32 and not view.flags.writeable
    assert result.category_mask is not None
    assert result.category_mask.image_format == ImageFormat.GRAY8
    assert result.category_mask.numpy_view().shape == (257, 257, 1)


def test_only_requested_outputs(test_image: Image) -> None:
    with ImageSegmenter.create_from_options(options(output_confidence_masks=False, output_category_mask=True)) as seg:
        result = seg.segment(test_image)
    assert result.confidence_masks is None and result.category_mask is not None


def test_numpy_and_pil_inputs_equal_image_input() -> None:
    from PIL import Image as PILImage

    pixels = load_rgb("astronaut.png")[:300, :200]
    with ImageSegmenter.create_from_options(options("selfie_segmenter.tflite", output_category_mask=True)) as seg:
        ref = seg.segment(Image(ImageFormat.SRGB, pixels))
        for variant in (pixels, PILImage.fromarray(pixels), np.asfortranarray(pixels), pixels[::1, ::1].copy()):
            got = seg.segment(variant)
            assert np.array_equal(got.category_mask.numpy_view(), ref.category_mask.numpy_view())


def test_non_contiguous_and_read_only_arrays_work() -> None:
    big = load_rgb("astronaut.png")
    view = big[::2, ::2]
    ro = np.ascontiguousarray(view)
    ro.flags.writeable = False
    with ImageSegmenter.create_from_options(options("selfie_segmenter.tflite")) as seg:
        a = seg.segment(Image(ImageFormat.SRGB, view)).confidence_masks[0].numpy_view()
        b = seg.segment(ro).confidence_masks[0].numpy_view()
    assert np.array_equal(a, b)


def test_gray_input_works_as_rgb() -> None:
    gray = load_rgb("astronaut.png")[:, :, 1].copy()
    with ImageSegmenter.create_from_options(options("selfie_segmenter.tflite", output_category_mask=True)) as seg:
        a = seg.segment(Image(ImageFormat.GRAY8, gray))
        b = seg.segment(np.repeat(gray[:, :, None], 3, axis=2))
        c = seg.segment(Image(ImageFormat.GRAY16, gray.astype(np.uint16) * 257))
    for r in (a, c):
        assert np.array_equal(r.category_mask.numpy_view(), b.category_mask.numpy_view())


def test_one_pixel_images_do_not_crash() -> None:
    with ImageSegmenter.create_from_options(options("selfie_segmenter.tflite", output_category_mask=True)) as seg:
        for shape in ((1, 1, 3), (1, 7, 3), (9, 1, 3)):
            result = seg.segment(np.full(shape, 128, np.uint8))
            assert result.category_mask is not None
            assert result.category_mask.numpy_view().shape == (*shape[:2], 1)
            assert set(np.unique(result.category_mask.numpy_view())) <= {0, 255}


@pytest.mark.parametrize(
    "data, error",
    [
        (np.zeros((0, 5, 3), np.uint8), ValueError),
        (np.zeros((4, 4, 2), np.uint8), ValueError),
        (np.zeros((4, 4, 3), np.float64), TypeError),
        (np.zeros((4,), np.uint8), ValueError),
        ("not an image", TypeError),
    ],
)
def test_bad_inputs_raise_and_segmenter_stays_usable(data: Any, error: type[Exception]) -> None:
    with ImageSegmenter.create_from_options(options("selfie_segmenter.tflite")) as seg:
        with pytest.raises(error):
            seg.segment(data)
        assert seg.segment(np.zeros((8, 8, 3), np.uint8)).confidence_masks is not None


def test_nan_float_image_is_refused() -> None:
    data = np.full((4, 4, 1), np.nan, np.float32)
    with ImageSegmenter.create_from_options(options("selfie_segmenter.tflite")) as seg, pytest.raises(ValueError):
        seg.segment(Image(ImageFormat.VEC32F1, data))


def test_image_constructor_errors_match_mediapipe() -> None:
    with pytest.raises(ValueError, match="Unsupported number of dimensions:1"):
        Image(ImageFormat.SRGB, np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="Unsupported numpy data type: float64"):
        Image(ImageFormat.SRGB, np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match=r"Unsupported image format: SRGB \(expected GRAY16, SRGB48, or SRGBA64"):
        Image(ImageFormat.SRGB, np.zeros((2, 2, 3), np.uint16))


def test_image_create_from_file() -> None:
    img = Image.create_from_file(data_file("astronaut.png"))
    assert (img.width, img.height, img.channels, img.image_format) == (512, 512, 3, ImageFormat.SRGB)
    assert np.array_equal(img.numpy_view(), load_rgb("astronaut.png"))
    with pytest.raises(FileNotFoundError, match="Can't find file"):
        Image.create_from_file("/nonexistent.png")


def test_create_from_file_applies_exif_orientation(tmp_path: object) -> None:
    from pathlib import Path

    from PIL import Image as PILImage

    pixels = load_rgb("astronaut.png")[:40, :60]
    path = Path(str(tmp_path)) / "rotated.png"
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    PILImage.fromarray(pixels).save(path, exif=exif)
    img = Image.create_from_file(path)
    assert (img.width, img.height) == (40, 60)
    assert np.array_equal(img.numpy_view(), np.rot90(pixels, -1))


def test_undecodable_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "broken.png"
    path.write_bytes(b"not a png")
    with pytest.raises(RuntimeError, match="Failed to load image from file"):
        Image.create_from_file(path)


def test_display_names_locale() -> None:
    name = "deeplabv3_softmax_locales.tflite"
    with ImageSegmenter.create_from_options(options(name, display_names_locale="fr")) as seg:
        assert seg.labels[1] == "aeroplane" and seg.display_names[1] == "avion"
    with ImageSegmenter.create_from_options(options(name)) as seg:
        assert seg.display_names == seg.labels


def test_rotation_keeps_input_size_and_upright_opt_in_swaps() -> None:
    pixels = load_rgb("astronaut.png")[:200, :320]
    with ImageSegmenter.create_from_options(options("selfie_segmenter.tflite")) as seg:
        plain = seg.segment(pixels, ImageProcessingOptions(rotation_degrees=90)).confidence_masks[0]
    assert (plain.width, plain.height) == (320, 200)
    with ImageSegmenter.create_from_options(options("selfie_segmenter.tflite", output_upright=True)) as seg:
        upright = seg.segment(pixels, ImageProcessingOptions(rotation_degrees=90)).confidence_masks[0]
        direct = seg.segment(np.ascontiguousarray(np.rot90(pixels, -1))).confidence_masks[0]
    assert (upright.width, upright.height) == (200, 320)
    # MediaPipe's rotated sampling grid is offset by up to a pixel from rotating first, so close, not equal.
    assert np.mean((upright.numpy_view() > 0.5) == (direct.numpy_view() > 0.5)) > 0.99
    assert np.mean(np.abs(upright.numpy_view() - direct.numpy_view())) < 0.02


def test_calls_after_close_raise() -> None:
    seg = ImageSegmenter.create_from_options(options("selfie_segmenter.tflite"))
    seg.close()
    seg.close()
    with pytest.raises(RuntimeError, match="closed"):
        seg.segment(np.zeros((8, 8, 3), np.uint8))


def test_uint8_probe_model_without_metadata_works() -> None:
    """A uint8 model needs no normalization metadata; its quantized output is dequantized (MediaPipe does both)."""
    model = probe_model((16, 12, 3), (16, 12, 3), dtype="uint8", with_metadata=False)
    pixels = np.random.default_rng(0).integers(0, 256, (16, 12, 3), dtype=np.uint8)
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(BaseOptions(model_asset_buffer=model))) as seg:
        assert seg.labels == []
        masks = seg.segment(pixels).confidence_masks
    assert masks is not None and len(masks) == 3
    assert np.array_equal(np.concatenate([m.numpy_view() for m in masks], axis=2), pixels.astype(np.float32))


def test_options_are_taken_at_creation() -> None:
    """One options object reused for a second segmenter (MediaPipe's sample notebook does it): changing it afterwards
    leaves the first one as it was created, as in MediaPipe, which copies the options into its graph."""
    options = ImageSegmenterOptions(BaseOptions(model_asset_path=str(model_path("selfie_segmenter.tflite"))))
    pixels = load_rgb("astronaut.png")
    with ImageSegmenter.create_from_options(options) as first:
        options.output_category_mask, options.output_confidence_masks = True, False
        options.base_options.model_asset_path = str(model_path("hair_segmenter.tflite"))
        with ImageSegmenter.create_from_options(options) as second:
            one, two = first.segment(pixels), second.segment(pixels)
            assert len(first.labels) == 1 and len(second.labels) == 2  # selfie, then hair
    assert one.category_mask is None and one.confidence_masks is not None and len(one.confidence_masks) == 1
    assert two.category_mask is not None and two.confidence_masks is None


@pytest.mark.parametrize("mode", ["VIDEO", "LIVE_STREAM", "IMAGE"])
def test_a_running_mode_given_as_its_name_works_in_that_mode(mode: str) -> None:
    """'VIDEO' passed the checks but built no timestamp guard, so the first frame failed a bare assert."""
    results: list[int] = []
    callback = (lambda result, image, ts: results.append(ts)) if mode == "LIVE_STREAM" else None
    options = ImageSegmenterOptions(
        BaseOptions(model_asset_path=str(model_path("selfie_segmenter.tflite"))), running_mode=mode,  # type: ignore[arg-type]
        result_callback=callback,
    )  # fmt: skip
    pixels = np.zeros((32, 48, 3), np.uint8)
    with ImageSegmenter.create_from_options(options) as segmenter:
        if mode == "VIDEO":
            segmenter.segment_for_video(pixels, 0)
            with pytest.raises(ValueError, match="monotonically increasing"):
                segmenter.segment_for_video(pixels, 0)
        elif mode == "LIVE_STREAM":
            segmenter.segment_async(pixels, 0)
        else:
            segmenter.segment(pixels)
            with pytest.raises(ValueError, match="not initialized with the video mode"):
                segmenter.segment_for_video(pixels, 0)
    assert results == ([0] if mode == "LIVE_STREAM" else [])


def test_mediapipe_style_code_runs_with_one_import_changed() -> None:
    """MediaPipe's documented snippet, with ``import mediapipe as mp`` replaced by ``import segkit as mp``."""
    import segkit as mp

    options = mp.tasks.vision.ImageSegmenterOptions(
        base_options=mp.tasks.BaseOptions(model_asset_path=str(model_path("deeplabv3.tflite"))),
        running_mode=mp.tasks.vision.RunningMode.IMAGE,
        output_category_mask=True,
    )
    with mp.tasks.vision.ImageSegmenter.create_from_options(options) as segmenter:
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=load_rgb("segmentation_input_rotation0.jpg"))
        result = segmenter.segment(image)
    assert isinstance(result, mp.tasks.vision.ImageSegmenterResult)
    assert result.category_mask is not None and result.category_mask.numpy_view().shape == (257, 257, 1)
    assert len(result.confidence_masks or []) == 21


def test_numpy_input_is_read_in_place_and_left_untouched() -> None:
    """IMAGE mode reads an ndarray without copying it, and neither freezes nor changes the caller's array."""
    pixels = load_rgb("astronaut.png")[:120, :160].copy()
    before = pixels.copy()
    with ImageSegmenter.create_from_options(options("selfie_segmenter.tflite")) as seg:
        a = seg.segment(pixels).confidence_masks[0].numpy_view().copy()
        b = seg.segment(Image(ImageFormat.SRGB, pixels)).confidence_masks[0].numpy_view()
    assert pixels.flags.writeable and np.array_equal(pixels, before)
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "delegate", [BaseOptions.Delegate.CPU, pytest.param(BaseOptions.Delegate.GPU, marks=[pytest.mark.gpu])]
)
def test_the_model_file_is_walked_once_at_creation(
    monkeypatch: pytest.MonkeyPatch, delegate: BaseOptions.Delegate
) -> None:
    """Verification, metadata and the backend share one walk of the flatbuffer (4-11 ms each on real models)."""
    import segkit.metadata.info as info
    import segkit.metadata.tflite as tflite

    walks: list[int] = []
    real = tflite.parse_model

    def counted(model: bytes) -> tflite.TFLiteModel:
        walks.append(len(model))
        return real(model)

    monkeypatch.setattr(tflite, "parse_model", counted)
    monkeypatch.setattr(info, "parse_model", counted)
    base = BaseOptions(model_asset_path=str(model_path("hair_segmenter.tflite")), delegate=delegate)
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(base_options=base)) as seg:
        assert seg.accelerator == ("gpu" if delegate == BaseOptions.Delegate.GPU else "cpu")
    assert len(walks) == 1


@pytest.mark.slow  # a subprocess
def test_a_segmenter_left_open_at_interpreter_exit_prints_nothing() -> None:
    """At exit, objects still alive are finalized after their modules' globals are set to None; the finalizer of a
    segmenter nobody closed then must neither raise nor print "Exception ignored" (it did, from contextlib)."""
    import subprocess
    import sys

    script = (
        "import gc, numpy as np, segkit, segkit.segmenter as module\n"
        f"s = segkit.ImageSegmenter.create_from_model_path({str(model_path('selfie_segmenter.tflite'))!r})\n"
        "s.segment(np.zeros((32, 32, 3), np.uint8))\n"
        "vars(module).update({k: None for k in list(vars(module)) if not k.startswith('__')})  # as at exit\n"
        "del s\n"
        "gc.collect()\n"
        "print('done')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "done", run.stderr
    assert "Exception ignored" not in run.stderr and "Traceback" not in run.stderr, run.stderr
