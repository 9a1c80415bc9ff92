"""VIDEO and LIVE_STREAM modes at the segmenter level.

MediaPipe's own segmenter test cases for these modes (callback rules, wrong-mode calls, out-of-order timestamps,
video and live-stream loops with golden checks), differential tests of VIDEO mode against IMAGE mode and against
mediapipe's VIDEO mode, and segkit's extras: errors re-raised, close() semantics, no leaks, thread safety, the
hair-mask feedback opt-in, and a live-stream stress test.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from typing import Any

import numpy as np
import pytest

from segkit import (
    BaseOptions,
    Image,
    ImageFormat,
    ImageProcessingOptions,
    ImageSegmenter,
    ImageSegmenterOptions,
    ImageSegmenterResult,
    RectF,
    RunningMode,
    postprocess,
    preprocess,
)
from segkit.modes import WorkerStats
from tests.conftest import REPO, load_rgb, model_path
from tests.oracle import mediapipe_masks
from tests.preprocess.reference import with_alpha

DEEPLAB = "deeplabv3.tflite"
SELFIE = "selfie_segmenter.tflite"
HAIR = "hair_segmenter.tflite"
MAGNIFICATION = 10
JOIN_S = 10.0  # generous bound on any wait: a deadlock fails the test instead of hanging it
MONOTONIC = "Input timestamp must be monotonically increasing."
CLOSED = "ImageSegmenter is closed"


def options(model: str = DEEPLAB, **kwargs: Any) -> ImageSegmenterOptions:
    kwargs.setdefault("num_threads", 1)  # a shared 2-core machine: keep the tests' CPU use modest
    return ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(model_path(model))), **kwargs)


def live(model: str = DEEPLAB, callback: Any = None, **kwargs: Any) -> ImageSegmenter:
    return ImageSegmenter.create_from_options(
        options(model, running_mode=RunningMode.LIVE_STREAM, result_callback=callback or (lambda *a: None), **kwargs)
    )


def wait_until(predicate: Any, timeout: float = JOIN_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def live_threads() -> int:
    return sum(t.name == "segkit-live-stream" for t in threading.enumerate())


def proc_status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    """A small real frame for the tests that only need some image."""
    return np.ascontiguousarray(load_rgb("astronaut.png")[::4, ::4])


def similarity(mask: Image, golden: np.ndarray) -> float:
    return float(np.mean(mask.numpy_view()[:, :, 0].astype(np.int32) * MAGNIFICATION == golden))


def stats_of(seg: ImageSegmenter) -> WorkerStats:
    """A LIVE_STREAM segmenter's counters (None only in the other modes)."""
    stats = seg.live_stream_stats
    assert stats is not None
    return stats


def masks_of(result: ImageSegmenterResult) -> tuple[list[np.ndarray] | None, np.ndarray | None]:
    conf = [m.numpy_view().copy() for m in result.confidence_masks] if result.confidence_masks else None
    cat = result.category_mask.numpy_view().copy() if result.category_mask is not None else None
    return conf, cat


# --- MediaPipe's test cases ---------------------------------------------------------------------------------------


def test_missing_result_callback() -> None:
    with pytest.raises(
        ValueError, match=r"^The vision task is in live stream mode, a user-defined result callback must be provided\.$"
    ):
        ImageSegmenter.create_from_options(options(running_mode=RunningMode.LIVE_STREAM))


@pytest.mark.parametrize("mode", [RunningMode.IMAGE, RunningMode.VIDEO])
def test_illegal_result_callback(mode: RunningMode) -> None:
    with pytest.raises(
        ValueError,
        match=r"^The vision task is in image or video mode, a user-defined result callback should not be provided\.$",
    ):
        ImageSegmenter.create_from_options(options(running_mode=mode, result_callback=lambda *a: None))


WRONG_MODE = [
    (RunningMode.IMAGE, "segment_for_video", "video mode", "image mode"),
    (RunningMode.IMAGE, "segment_async", "live stream mode", "image mode"),
    (RunningMode.VIDEO, "segment", "image mode", "video mode"),
    (RunningMode.VIDEO, "segment_async", "live stream mode", "video mode"),
    (RunningMode.LIVE_STREAM, "segment", "image mode", "live stream mode"),
    (RunningMode.LIVE_STREAM, "segment_for_video", "video mode", "live stream mode"),
]


@pytest.mark.parametrize("mode, method, wanted, current", WRONG_MODE)
def test_calling_a_method_of_another_mode(
    test_image: Image, mode: RunningMode, method: str, wanted: str, current: str
) -> None:
    callback = (lambda *a: None) if mode == RunningMode.LIVE_STREAM else None
    with ImageSegmenter.create_from_options(options(running_mode=mode, result_callback=callback)) as seg:
        args = (test_image,) if method == "segment" else (test_image, 0)
        with pytest.raises(ValueError) as e:
            getattr(seg, method)(*args)
        assert str(e.value) == f"Task is not initialized with the {wanted}. Current running mode:{current}"


def test_segment_for_video_with_out_of_order_timestamp(test_image: Image) -> None:
    with ImageSegmenter.create_from_options(options(running_mode=RunningMode.VIDEO)) as seg:
        seg.segment_for_video(test_image, 1)
        with pytest.raises(ValueError) as e:
            seg.segment_for_video(test_image, 0)
        assert str(e.value) == MONOTONIC


def test_segment_async_calls_with_illegal_timestamp(test_image: Image) -> None:
    with live() as seg:
        seg.segment_async(test_image, 100)
        with pytest.raises(ValueError) as e:
            seg.segment_async(test_image, 0)
        assert str(e.value) == MONOTONIC


@pytest.mark.parametrize("mode", [RunningMode.VIDEO, RunningMode.LIVE_STREAM])
def test_timestamp_rules_5_5_4_6_and_negative_first(small: np.ndarray, mode: RunningMode) -> None:
    """A rejected timestamp is not remembered; the first may be negative (MediaPipe's observed behaviour)."""
    callback = (lambda *a: None) if mode == RunningMode.LIVE_STREAM else None
    with ImageSegmenter.create_from_options(options(SELFIE, running_mode=mode, result_callback=callback)) as seg:
        call = seg.segment_for_video if mode == RunningMode.VIDEO else seg.segment_async
        call(small, -5)
        call(small, 5)
        for bad in (5, 4):
            with pytest.raises(ValueError, match=MONOTONIC):
                call(small, bad)
        call(small, 6)
        not_an_int: Any = 7.0
        with pytest.raises(TypeError):
            call(small, not_an_int)


def test_check_order_is_rotation_roi_mode_closed_timestamp(small: np.ndarray) -> None:
    roi = ImageProcessingOptions(region_of_interest=RectF(0, 0, 1, 1))
    seg = ImageSegmenter.create_from_options(options(SELFIE, running_mode=RunningMode.VIDEO))
    seg.segment_for_video(small, 10)
    with pytest.raises(ValueError, match="multiple of 90"):  # rotation before ROI and timestamp
        seg.segment_for_video(
            small, 0, ImageProcessingOptions(region_of_interest=RectF(0, 0, 1, 1), rotation_degrees=45)
        )
    with pytest.raises(ValueError, match="region-of-interest"):  # ROI before the mode
        seg.segment_async(small, 0, roi)
    with pytest.raises(ValueError, match="not initialized with the live stream mode"):  # mode before timestamp
        seg.segment_async(small, 0)
    seg.close()
    with pytest.raises(ValueError, match="not initialized with the image mode"):  # mode before closed
        seg.segment(small)
    with pytest.raises(RuntimeError, match=CLOSED):  # closed before timestamp
        seg.segment_for_video(small, 0)


def test_segment_for_video_in_category_mask_mode(test_image: Image, golden: np.ndarray) -> None:
    opts = options(output_category_mask=True, output_confidence_masks=False, running_mode=RunningMode.VIDEO)
    with ImageSegmenter.create_from_options(opts) as seg:
        for timestamp in range(0, 300, 30):
            result = seg.segment_for_video(test_image, timestamp)
            assert result.confidence_masks is None and result.category_mask is not None
            assert similarity(result.category_mask, golden) == 1.0  # MediaPipe asks >= 0.98


@pytest.mark.slow
def test_segment_for_video_in_confidence_mask_mode() -> None:
    """MediaPipe's golden (cat_mask.jpg) is not shared here: mediapipe's own IMAGE-mode masks are the reference."""
    cat = load_rgb("cat.jpg")
    expected, _ = mediapipe_masks(model_path(DEEPLAB), cat, confidence=True, category=False)
    assert expected is not None
    opts = options(output_category_mask=False, output_confidence_masks=True, running_mode=RunningMode.VIDEO)
    with ImageSegmenter.create_from_options(opts) as seg:
        for timestamp in range(0, 300, 30):
            masks = seg.segment_for_video(Image(ImageFormat.SRGB, cat), timestamp).confidence_masks
            assert masks is not None and len(masks) == 21
            for got, want in zip(masks, expected, strict=True):
                assert np.array_equal(got.numpy_view()[:, :, 0], want)


def _live_loop(image: Image, check: Any, **kwargs: Any) -> None:
    """MediaPipe's live-stream loop: one frame at a time, waiting (3 s at most) for each callback."""
    event = threading.Event()
    errors: list[BaseException] = []
    observed = [-1]

    def callback(result: ImageSegmenterResult, output_image: Image, timestamp_ms: int) -> None:
        try:
            check(result)
            assert (output_image.width, output_image.height) == (image.width, image.height)
            assert observed[0] < timestamp_ms
            observed[0] = timestamp_ms
        except BaseException as exc:
            errors.append(exc)
        finally:
            event.set()

    with live(callback=callback, **kwargs) as seg:
        for timestamp in range(0, 300, 30):
            seg.segment_async(image, timestamp)
            assert event.wait(3)
            if errors:
                raise errors[0]
            event.clear()
    assert observed[0] == 270


@pytest.mark.slow
def test_segment_async_calls_in_category_mask_mode(test_image: Image, golden: np.ndarray) -> None:
    def check(result: ImageSegmenterResult) -> None:
        assert result.confidence_masks is None and result.category_mask is not None
        assert similarity(result.category_mask, golden) == 1.0

    _live_loop(test_image, check, output_category_mask=True, output_confidence_masks=False)


@pytest.mark.slow
def test_segment_async_calls_in_confidence_mask_mode() -> None:
    cat = load_rgb("cat.jpg")
    expected, _ = mediapipe_masks(model_path(DEEPLAB), cat, confidence=True, category=False)
    assert expected is not None

    def check(result: ImageSegmenterResult) -> None:
        assert result.confidence_masks is not None and len(result.confidence_masks) == 21
        assert np.array_equal(result.confidence_masks[8].numpy_view()[:, :, 0], expected[8])

    _live_loop(Image(ImageFormat.SRGB, cat), check, output_category_mask=False, output_confidence_masks=True)


# --- differential: a synthetic video -------------------------------------------------------------------------------


def synthetic_video(frames: int = 64) -> list[np.ndarray]:
    """Pan and zoom across astronaut.png at 320x240, then a few portrait frames (a size change mid-stream)."""
    from PIL import Image as PILImage

    src = PILImage.fromarray(load_rgb("astronaut.png"))  # 512x512
    video = []
    for i in range(frames):
        t = i / (frames - 1)
        w = 400 - 200 * t  # zoom in
        h = w * 0.75
        cx = 256 + 50 * np.sin(2 * np.pi * t)  # pan
        cy = 280 - 60 * t
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        size = (320, 240) if i < frames - 4 else (180, 240)
        video.append(np.ascontiguousarray(np.asarray(src.resize(size, PILImage.Resampling.BILINEAR, box=box))))
    return video


@pytest.fixture(scope="module")
def video() -> list[np.ndarray]:
    return synthetic_video()


def mediapipe_video_masks(model: str, video: list[np.ndarray]) -> list[tuple[list[np.ndarray], np.ndarray]]:
    from mediapipe.tasks.python import BaseOptions as MpBaseOptions
    from mediapipe.tasks.python import vision as mp_vision
    from mediapipe.tasks.python.vision.core.image import Image as MpImage
    from mediapipe.tasks.python.vision.core.image import ImageFormat as MpImageFormat

    opts = mp_vision.ImageSegmenterOptions(
        base_options=MpBaseOptions(model_asset_path=str(model_path(model))),
        running_mode=mp_vision.RunningMode.VIDEO,
        output_confidence_masks=True,
        output_category_mask=True,
    )
    segmenter = mp_vision.ImageSegmenter.create_from_options(opts)
    out = []
    try:
        for i, frame in enumerate(video):
            result = segmenter.segment_for_video(
                MpImage(image_format=MpImageFormat.SRGB, data=np.ascontiguousarray(frame, np.uint8)), i * 33
            )
            conf = [m.numpy_view()[:, :, 0].copy() for m in result.confidence_masks]
            out.append((conf, result.category_mask.numpy_view()[:, :, 0].copy()))
    finally:
        segmenter.close()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model", [DEEPLAB, HAIR])
def test_video_mode_equals_image_mode_and_mediapipe_video_mode(model: str, video: list[np.ndarray]) -> None:
    expected = mediapipe_video_masks(model, video)
    both = {"output_confidence_masks": True, "output_category_mask": True}
    with (
        ImageSegmenter.create_from_options(options(model, running_mode=RunningMode.VIDEO, **both)) as vid,
        ImageSegmenter.create_from_options(options(model, **both)) as img,
    ):
        for i, frame in enumerate(video):
            v_conf, v_cat = masks_of(vid.segment_for_video(frame, i * 33))
            i_conf, i_cat = masks_of(img.segment(frame))
            assert v_conf is not None and i_conf is not None and v_cat is not None and i_cat is not None
            m_conf, m_cat = expected[i]
            assert np.array_equal(v_cat, i_cat), f"frame {i}: VIDEO != IMAGE (category)"
            assert np.array_equal(v_cat[:, :, 0], m_cat), f"frame {i}: segkit != mediapipe VIDEO (category)"
            assert len(v_conf) == len(i_conf) == len(m_conf)
            for c, (v, im, m) in enumerate(zip(v_conf, i_conf, m_conf, strict=True)):
                assert np.array_equal(v, im), f"frame {i} mask {c}: VIDEO != IMAGE"
                assert np.array_equal(v[:, :, 0], m), f"frame {i} mask {c}: segkit != mediapipe VIDEO"


def test_live_stream_delivers_what_image_mode_computes(video: list[np.ndarray]) -> None:
    """Waiting for each callback (no drops), LIVE_STREAM results equal IMAGE mode's, frame by frame."""
    got: dict[int, np.ndarray] = {}

    def callback(result: ImageSegmenterResult, output_image: Image, timestamp_ms: int) -> None:
        assert result.category_mask is not None
        got[timestamp_ms] = result.category_mask.numpy_view().copy()

    frames = video[::8]
    with (
        live(SELFIE, callback, output_category_mask=True) as seg,
        ImageSegmenter.create_from_options(options(SELFIE, output_category_mask=True)) as img,
    ):
        for i, frame in enumerate(frames):
            seg.segment_async(frame, i)
            wait_until(lambda i=i: i in got)
        for i, frame in enumerate(frames):
            cat = img.segment(frame).category_mask
            assert cat is not None and np.array_equal(got[i], cat.numpy_view())


# --- LIVE_STREAM: callback arguments, errors ---------------------------------------------------------------------


@pytest.mark.parametrize("as_array", [False, True])
def test_callback_output_image_is_the_input_image(test_image: Image, as_array: bool) -> None:
    seen: list[tuple[Image, int, threading.Thread]] = []
    frame: Any = np.array(test_image.numpy_view()) if as_array else test_image
    with live(SELFIE, lambda r, img, ts: seen.append((img, ts, threading.current_thread()))) as seg:
        seg.segment_async(frame, 7)
    ((out, ts, thread),) = seen
    assert ts == 7 and thread is not threading.main_thread()
    assert isinstance(out, Image)
    assert (out.width, out.height, out.image_format) == (test_image.width, test_image.height, ImageFormat.SRGB)
    assert np.array_equal(out.numpy_view(), test_image.numpy_view())
    if not as_array:
        assert out is test_image


def test_callback_error_is_logged_and_raised_on_next_segment_async(
    small: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def callback(result: ImageSegmenterResult, image: Image, timestamp_ms: int) -> None:
        calls.append(timestamp_ms)
        if timestamp_ms == 1:
            raise KeyError("user bug")

    with caplog.at_level(logging.ERROR, logger="segkit"), live(SELFIE, callback) as seg:
        seg.segment_async(small, 1)
        wait_until(lambda: stats_of(seg).failed == 1)
        with pytest.raises(KeyError, match="user bug"):
            seg.segment_async(small, 2)  # raised here; this frame is not queued ...
        seg.segment_async(small, 2)  # ... and its timestamp is still free: the call can be retried
        seg.segment_async(small, 3)
    assert "Error in callback at timestamp 1 ms" in caplog.text
    assert "Traceback" in caplog.text and "KeyError: 'user bug'" in caplog.text
    assert calls[0] == 1 and calls[-1] == 3 and calls == sorted(calls)


def test_callback_error_without_later_call_is_raised_by_close(small: np.ndarray) -> None:
    def callback(result: ImageSegmenterResult, image: Image, timestamp_ms: int) -> None:
        raise RuntimeError(f"user bug at {timestamp_ms}")

    seg = live(SELFIE, callback)
    seg.segment_async(small, 5)
    with pytest.raises(RuntimeError, match="user bug at 5"):
        seg.close()
    seg.close()  # idempotent; nothing left to raise
    with pytest.raises(RuntimeError, match=CLOSED):
        seg.segment_async(small, 6)


def test_frame_error_is_raised_on_next_call_and_segmenter_stays_usable(
    small: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    bad = Image(ImageFormat.VEC32F1, np.full((8, 8), np.nan, np.float32))  # the pipeline refuses NaN pixels
    delivered: list[int] = []
    with caplog.at_level(logging.ERROR, logger="segkit"), live(SELFIE, lambda r, i, ts: delivered.append(ts)) as seg:
        seg.segment_async(bad, 1)  # returns at once: the error happens on the worker
        wait_until(lambda: stats_of(seg).failed == 1)
        with pytest.raises(ValueError):
            seg.segment_async(small, 2)
        seg.segment_async(small, 2)  # usable (MediaPipe would refuse every later call)
        seg.segment_async(small, 3)
    assert "Error in async operation at timestamp 1 ms" in caplog.text
    assert delivered[-1] == 3 and 1 not in delivered


def test_frame_error_in_video_mode_is_raised_at_once_and_segmenter_stays_usable(small: np.ndarray) -> None:
    bad = Image(ImageFormat.VEC32F1, np.full((8, 8), np.nan, np.float32))
    with ImageSegmenter.create_from_options(options(SELFIE, running_mode=RunningMode.VIDEO)) as seg:
        with pytest.raises(ValueError):
            seg.segment_for_video(bad, 1)
        with pytest.raises(ValueError, match=MONOTONIC):  # the failed frame was sent: its timestamp is used
            seg.segment_for_video(small, 1)
        assert seg.segment_for_video(small, 2).confidence_masks is not None


# --- LIVE_STREAM: flow limiting and close() ----------------------------------------------------------------------


def test_back_to_back_frames_drop_the_waiting_ones_and_close_delivers_the_last(small: np.ndarray) -> None:
    """MediaPipe observed: 60 frames sent back to back gave callbacks for 0 and 59 (here: first and last at least)."""
    gate = threading.Event()
    delivered: list[int] = []

    def callback(result: ImageSegmenterResult, image: Image, timestamp_ms: int) -> None:
        assert gate.wait(JOIN_S)
        delivered.append(timestamp_ms)

    seg = live(SELFIE, callback)
    for ts in range(60):
        seg.segment_async(small, ts)
        stats = seg.live_stream_stats
        assert stats is not None and stats.outstanding <= 2
    gate.set()
    seg.close()
    assert delivered == [0, 59]
    stats = seg.live_stream_stats
    assert stats is not None
    assert (stats.submitted, stats.delivered, stats.dropped, stats.failed, stats.outstanding) == (60, 2, 58, 0, 0)


def test_segment_async_does_not_block_on_a_slow_callback(small: np.ndarray) -> None:
    release = threading.Event()
    with live(SELFIE, lambda *a: release.wait(JOIN_S)) as seg:
        for ts in range(20):
            seg.segment_async(small, ts)
        # every call returned while the first callback is still held: nothing waited for the worker
        stats = seg.live_stream_stats
        assert not release.is_set() and stats is not None and stats.outstanding <= 2
        release.set()


def test_close_drains_joins_and_is_idempotent(small: np.ndarray) -> None:
    delivered: list[int] = []
    base = live_threads()

    def callback(result: ImageSegmenterResult, image: Image, timestamp_ms: int) -> None:
        time.sleep(0.05)
        delivered.append(timestamp_ms)

    seg = live(SELFIE, callback)
    seg.segment_async(small, 0)
    seg.segment_async(small, 1)  # waits behind 0
    seg.close()  # drains both before returning
    assert delivered == [0, 1]
    assert live_threads() == base
    seg.close()
    with seg:  # the context manager closes again, harmlessly
        pass
    with pytest.raises(RuntimeError, match=CLOSED):
        seg.segment_async(small, 2)
    assert delivered == [0, 1]


@pytest.mark.parametrize("mode", [RunningMode.IMAGE, RunningMode.VIDEO])
def test_calls_after_close_raise(small: np.ndarray, mode: RunningMode) -> None:
    seg = ImageSegmenter.create_from_options(options(SELFIE, running_mode=mode))
    with seg:
        pass
    seg.close()
    with pytest.raises(RuntimeError, match=CLOSED):
        if mode == RunningMode.IMAGE:
            seg.segment(small)
        else:
            seg.segment_for_video(small, 0)


def test_close_from_inside_the_callback(small: np.ndarray) -> None:
    """Returns at once (no self-join); the waiting frame is dropped, no callback follows, nothing is left running."""
    base = live_threads()
    delivered: list[int] = []
    entered, proceed, closed = threading.Event(), threading.Event(), threading.Event()
    holder: list[ImageSegmenter] = []

    def callback(result: ImageSegmenterResult, image: Image, timestamp_ms: int) -> None:
        delivered.append(timestamp_ms)
        if timestamp_ms == 0:
            entered.set()
            assert proceed.wait(JOIN_S)
            holder[0].close()
            holder[0].close()  # idempotent here too
            closed.set()

    seg = live(SELFIE, callback)
    holder.append(seg)
    seg.segment_async(small, 0)
    assert entered.wait(JOIN_S)
    seg.segment_async(small, 1)  # waiting while the callback of 0 runs
    proceed.set()
    assert closed.wait(JOIN_S)
    with pytest.raises(RuntimeError, match=CLOSED):
        seg.segment_async(small, 2)
    seg.close()  # from here: joins the worker thread
    assert delivered == [0]
    stats = seg.live_stream_stats
    assert stats is not None and (stats.delivered, stats.dropped, stats.outstanding) == (1, 1, 0)
    assert live_threads() == base


def test_close_while_image_calls_run_in_other_threads(small: np.ndarray) -> None:
    seg = ImageSegmenter.create_from_options(options(SELFIE))
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def work() -> None:
        start.wait()
        for _ in range(20):
            try:
                assert seg.segment(small).confidence_masks is not None
                outcomes.append("ok")
            except RuntimeError as exc:
                assert CLOSED in str(exc)
                outcomes.append("closed")

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(0.02)
    seg.close()
    for t in threads:
        t.join(JOIN_S)
        assert not t.is_alive()
    assert len(outcomes) == 60 and "closed" in outcomes


# --- lifetime: finalizer, interpreter exit, leaks ---------------------------------------------------------------


def test_unclosed_live_segmenter_is_collected_and_its_thread_ends(small: np.ndarray) -> None:
    base = live_threads()
    delivered: list[int] = []
    seg = live(SELFIE, lambda r, i, ts: delivered.append(ts))
    seg.segment_async(small, 0)
    seg.segment_async(small, 1)
    ref = weakref.ref(seg)
    del seg
    # The worker keeps the segmenter alive while it has frames, so none is lost; then the thread idles out.
    wait_until(lambda: delivered == [0, 1] or delivered == [1])
    wait_until(lambda: gc.collect() >= 0 and ref() is None and live_threads() == base)


def test_finalizer_never_raises() -> None:
    raised: list[Any] = []
    old = sys.unraisablehook
    sys.unraisablehook = raised.append
    try:
        with pytest.raises(FileNotFoundError):  # __init__ fails half way: __del__ must cope
            ImageSegmenter.create_from_options(ImageSegmenterOptions(BaseOptions(model_asset_path="/no/such.tflite")))

        def callback(result: ImageSegmenterResult, image: Image, timestamp_ms: int) -> None:
            raise RuntimeError("pending at finalization")

        base = live_threads()
        seg = live(SELFIE, callback)
        seg.segment_async(np.zeros((16, 16, 3), np.uint8), 0)
        wait_until(lambda: stats_of(seg).failed == 1)
        # A pending error is dropped by the finalizer (it was logged). Called directly: the logged record, kept
        # by pytest's log capture, holds the traceback and so the segmenter, which then outlives this test.
        start = time.monotonic()
        seg.__del__()
        # a hang, not speed: the finalizer waits at most 1 s for the worker; JOIN_S tolerates a loaded machine
        assert time.monotonic() - start < JOIN_S
        assert live_threads() == base
        with pytest.raises(RuntimeError, match=CLOSED):
            seg.segment_async(np.zeros((16, 16, 3), np.uint8), 1)
        seg.__del__()
    finally:
        sys.unraisablehook = old
    assert raised == []


@pytest.mark.slow
def test_unclosed_live_segmenter_does_not_hang_interpreter_exit() -> None:
    script = textwrap.dedent(
        f"""
        import numpy as np, segkit, time
        delivered = []
        def callback(result, image, ts):
            time.sleep(0.05)
            delivered.append(ts)
            print("delivered", ts, flush=True)
        seg = segkit.ImageSegmenter.create_from_options(segkit.ImageSegmenterOptions(
            base_options=segkit.BaseOptions(model_asset_path={str(model_path(SELFIE))!r}),
            running_mode=segkit.RunningMode.LIVE_STREAM, result_callback=callback, num_threads=1))
        for ts in range(10):
            seg.segment_async(np.zeros((64, 64, 3), np.uint8), ts)
        keep = seg  # never closed
        """
    )
    # a hang at interpreter exit raises TimeoutExpired (60 s: generous for a loaded machine, still a clear failure)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "delivered 9" in proc.stdout  # the last frame still reaches the callback before exit


_LEAK_CHECK = """
import gc, json, sys, threading
import numpy as np
from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions, RunningMode
from tests.conftest import load_rgb, model_path

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

frame = np.ascontiguousarray(load_rgb("astronaut.png")[::2, ::2])
model = model_path("selfie_segmenter.tflite").read_bytes()
modes = [RunningMode.IMAGE, RunningMode.VIDEO, RunningMode.LIVE_STREAM]

def one(i):
    mode, got = modes[i % 3], []
    live = mode == RunningMode.LIVE_STREAM
    callback = (lambda r, im, ts: got.append(ts)) if live else None
    opts = ImageSegmenterOptions(base_options=BaseOptions(model_asset_buffer=model), running_mode=mode,
                                 output_category_mask=True, result_callback=callback)
    with ImageSegmenter.create_from_options(opts) as seg:
        if mode == RunningMode.IMAGE:
            seg.segment(frame)
        elif mode == RunningMode.VIDEO:
            seg.segment_for_video(frame, i)
        else:
            seg.segment_async(frame, i)
    assert not live or got == [i], (i, got)

for i in range(21):
    one(i)
gc.collect()
before = (threading.active_count(), status("Threads"), status("VmRSS"))
for i in range(21, 221):
    one(i)
gc.collect()
after = (threading.active_count(), status("Threads"), status("VmRSS"))
print(json.dumps({"before": before, "after": after}))
"""


@pytest.mark.slow
def test_two_hundred_segmenters_leave_threads_and_memory_flat() -> None:
    """200 segmenters in every mode (LIVE_STREAM ones start and join a worker; XNNPACK starts its threads), created
    and closed in a fresh process so other tests' heap history does not blur the RSS reading."""
    import json

    proc = subprocess.run([sys.executable, "-c", _LEAK_CHECK], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    (threads0, os_threads0, rss0), (threads1, os_threads1, rss1) = figures["before"], figures["after"]
    assert threads1 == threads0
    assert os_threads1 == os_threads0  # XNNPACK's and the workers' threads are gone too
    growth_mb = (rss1 - rss0) / 1024
    assert growth_mb < 20, f"RSS grew by {growth_mb:.1f} MB over 200 segmenters"


# --- thread safety ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_image_mode_from_several_threads_never_mixes_results(video: list[np.ndarray]) -> None:
    frames = video[::6][:8]
    with ImageSegmenter.create_from_options(options(SELFIE, output_category_mask=True, num_threads=None)) as seg:
        expected = [masks_of(seg.segment(f)) for f in frames]
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def work(offset: int) -> None:
            try:
                start.wait()
                for k in range(12):
                    j = (offset + k) % len(frames)
                    conf, cat = masks_of(seg.segment(frames[j]))
                    want_conf, want_cat = expected[j]
                    assert conf is not None and want_conf is not None and np.array_equal(conf[0], want_conf[0])
                    assert cat is not None and want_cat is not None and np.array_equal(cat, want_cat)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_S * 3)
    assert not errors, errors[0]


def test_video_mode_from_several_threads_processes_in_timestamp_order(
    small: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepting a timestamp and processing its frame is one step: the feedback sees frames in timestamp order."""
    order: list[int] = []
    with ImageSegmenter.create_from_options(options(SELFIE, running_mode=RunningMode.VIDEO)) as seg:
        real = seg._process

        def spy(image: Image, rotation: int) -> ImageSegmenterResult:
            order.append(int(image.numpy_view()[0, 0, 0]))
            return real(image, rotation)

        monkeypatch.setattr(seg, "_process", spy)
        counter = iter(range(1, 10_000))
        lock = threading.Lock()

        def work() -> None:
            for _ in range(15):
                with lock:
                    ts = next(counter)
                frame = small.copy()
                frame[0, 0, 0] = ts % 256
                with contextlib.suppress(ValueError):  # lost the race to a later timestamp: MediaPipe's rule
                    seg.segment_for_video(frame, ts)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_S * 3)
    assert order == sorted(order) and len(order) > 10


# --- hair-mask feedback (segkit opt-in) ---------------------------------------------------------------------------


def reference_feedback_masks(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The hair masks with feedback, computed step by step with the stage functions (the definition)."""
    with ImageSegmenter.create_from_options(options(HAIR)) as ref:
        pre = ref._pre
        assert pre is not None
        previous = None
        out = []
        for frame in frames:
            pixels = preprocess.to_pixels(frame, ImageFormat.SRGB, 4)
            tensor = pre(with_alpha(pixels, previous), 0, keep_alpha=True) if previous is not None else pre(pixels, 0)
            logits = ref._runtime.run(tensor)[-1]
            conf, _ = ref._post.masks(logits, frame.shape[1], frame.shape[0], confidence=True, category=False)
            assert conf is not None
            previous = postprocess.to_alpha(conf[-1])
            out.append(conf[-1].copy())
    return out


@pytest.mark.slow
def test_hair_mask_feedback_is_opt_in_and_reuses_its_buffers(video: list[np.ndarray]) -> None:
    frames = video[:12]
    expected = reference_feedback_masks(frames)
    with (
        ImageSegmenter.create_from_options(
            options(HAIR, running_mode=RunningMode.VIDEO, hair_mask_feedback=True)
        ) as seg,
        ImageSegmenter.create_from_options(options(HAIR)) as plain,
    ):
        buffers = None
        differs = 0
        for i, frame in enumerate(frames):
            masks = seg.segment_for_video(frame, i).confidence_masks
            assert masks is not None
            assert np.array_equal(masks[-1].numpy_view()[:, :, 0], expected[i]), f"frame {i}"
            without = plain.segment(frame).confidence_masks[-1].numpy_view()
            if i == 0:
                assert np.array_equal(masks[-1].numpy_view(), without)  # nothing to feed yet
            differs += not np.array_equal(masks[-1].numpy_view(), without)
            current = (id(seg._feedback_rgba), id(seg._feedback_tmp))
            assert buffers is None or current == buffers, "feedback buffers reallocated for a same-size frame"
            buffers = current
        assert differs > 0
    # Default off: VIDEO mode matches IMAGE mode (hence mediapipe), checked for the hair model above.
    assert ImageSegmenterOptions(BaseOptions(model_asset_path="x")).hair_mask_feedback is False


@pytest.mark.slow
def test_hair_mask_feedback_in_live_stream_mode(video: list[np.ndarray]) -> None:
    frames = video[:6]
    expected = reference_feedback_masks(frames)
    got: dict[int, np.ndarray] = {}

    def callback(result: ImageSegmenterResult, image: Image, timestamp_ms: int) -> None:
        got[timestamp_ms] = result.confidence_masks[-1].numpy_view()[:, :, 0].copy()

    with live(HAIR, callback, hair_mask_feedback=True) as seg:
        for i, frame in enumerate(frames):
            seg.segment_async(frame, i)
            wait_until(lambda i=i: i in got)
    for i in range(len(frames)):
        assert np.array_equal(got[i], expected[i]), f"frame {i}"


# --- stress ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_live_stream_stress_200fps_slow_callback(video: list[np.ndarray]) -> None:
    """A 200 fps producer for 5 s against a ~30 fps callback: bounded memory, no deadlock, ordered delivery,
    every frame delivered or counted as dropped, and the last one delivered before close() returns."""
    delivered: list[int] = []
    frames = video[:32]

    def callback(result: ImageSegmenterResult, image: Image, timestamp_ms: int) -> None:
        time.sleep(0.03)
        delivered.append(timestamp_ms)

    seg = live(SELFIE, callback, output_category_mask=True)
    for ts in range(5):  # warm up the size-keyed caches before measuring memory
        seg.segment_async(frames[0], -10 + ts)
    wait_until(lambda: stats_of(seg).outstanding == 0)
    delivered.clear()
    before = seg.live_stream_stats
    assert before is not None
    gc.collect()
    rss0 = peak = proc_status("VmRSS")
    slowest = 0.0
    period = 1 / 200
    start = time.monotonic()
    ts = 0
    while time.monotonic() - start < 5.0:
        frame = frames[ts % len(frames)].copy()  # a fresh camera buffer each time
        t0 = time.monotonic()
        seg.segment_async(frame, ts)
        slowest = max(slowest, time.monotonic() - t0)
        stats = seg.live_stream_stats
        assert stats is not None and stats.outstanding <= 2
        if ts % 50 == 0:
            peak = max(peak, proc_status("VmRSS"))
        ts += 1
        time.sleep(max(0.0, start + ts * period - time.monotonic()))
    last = ts - 1

    closer = threading.Thread(target=seg.close)
    closer.start()
    closer.join(JOIN_S)
    assert not closer.is_alive(), "close() deadlocked"
    peak = max(peak, proc_status("VmRSS"))

    stats = seg.live_stream_stats
    assert stats is not None
    assert ts > 200  # of ~1000 paced submissions: a loaded machine may fall behind the 200 fps pace
    assert (peak - rss0) / 1024 < 50, f"RSS grew by {(peak - rss0) / 1024:.1f} MB"
    # a call that waited for the slow callback would take its full length; 2 s tolerates a loaded scheduler
    assert slowest < 2.0, f"segment_async blocked for {slowest:.3f} s"
    assert delivered == sorted(delivered) and len(set(delivered)) == len(delivered) and len(delivered) > 50
    assert delivered[-1] == last  # the last frame is delivered before close() returns
    assert stats.failed == 0 and stats.outstanding == 0
    assert stats.submitted - before.submitted == ts and stats.delivered - before.delivered == len(delivered)
    assert stats.delivered + stats.dropped == stats.submitted  # every other frame is counted as dropped
