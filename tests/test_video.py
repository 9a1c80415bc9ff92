"""segkit.video: round trips through the pipelined transcoder with a real VIDEO-mode segmenter, and its failures.

The clips are made in the test from a real photo (tests/video_clip.py). PyAV is the ``video`` extra, which CI
installs: without it these tests fail (in CI) or skip with the reason (elsewhere).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from segkit import (
    BaseOptions,
    ImageSegmenter,
    ImageSegmenterOptions,
    ImageSegmenterResult,
    RunningMode,
    batch,
    effects,
    video,
)
from tests.conftest import load_rgb, model_path
from tests.video_clip import pan_zoom_frames, write_clip

if not os.environ.get("CI"):
    pytest.importorskip("av", reason="PyAV is the optional video extra: pip install 'segkit[video]'")
import av  # after the skip above, which explains a missing extra outside CI

FRAMES, RATE, WIDTH, HEIGHT = 24, 24, 320, 240
LOSSLESS = video.VideoOptions(codec="libx264rgb", crf=0, pix_fmt="rgb24")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    write_clip(path, pan_zoom_frames(load_rgb("astronaut.png"), FRAMES, WIDTH, HEIGHT), rate=RATE, faststart=True)
    return path


def decode(path: Path) -> tuple[list[np.ndarray], Fraction, int]:
    """Every frame of a file as RGB, its video frame rate, and its number of audio packets."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or 0)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    with av.open(str(path)) as container:
        audio = sum(1 for p in container.demux(container.streams.audio) if p.size) if container.streams.audio else 0
    return frames, rate, audio


def blur_with_segmenter(segmenter: ImageSegmenter, seen: list[tuple[int, np.ndarray]]) -> video.Process:
    """The CLI's blur as a ``process`` function, recording each timestamp and output."""

    def process(rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        out = effects.blur_background(rgb, segmenter.segment_for_video(rgb, timestamp_ms))
        seen.append((timestamp_ms, out))
        return out

    return process


def video_segmenter() -> ImageSegmenter:
    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model_path("selfie_segmenter.tflite"))),
        running_mode=RunningMode.VIDEO,
    )
    return ImageSegmenter.create_from_options(options)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


@pytest.mark.slow
def test_lossless_round_trip_keeps_frames_timing_size_and_audio(clip: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.mkv"
    seen: list[tuple[int, np.ndarray]] = []
    done: list[tuple[int, int | None]] = []
    with video_segmenter() as segmenter:
        report = video.transcode(
            clip, target, blur_with_segmenter(segmenter, seen), options=LOSSLESS,
            progress=lambda n, total: done.append((n, total)),
        )  # fmt: skip
    frames, rate, audio = decode(target)
    source_frames, source_rate, source_audio = decode(clip)
    assert report.frames == len(frames) == len(source_frames) == FRAMES
    assert rate == source_rate == RATE and report.rate == RATE
    assert frames[0].shape == (HEIGHT, WIDTH, 3) and (report.width, report.height) == (WIDTH, HEIGHT)
    assert report.audio_copied and audio == source_audio > 0
    assert [t for t, _ in seen] == [round(i * 1000 / RATE) for i in range(FRAMES)]
    for (_, expected), got in zip(seen, frames, strict=True):
        assert (got == expected).all()  # lossless RGB: exactly the library's per-frame effect output
    assert done[-1] == (FRAMES, FRAMES) and len(done) == FRAMES
    assert leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # the usual permissions, not a temporary file's 0600


@pytest.mark.parametrize("channels", [3, 4])
def test_a_process_refilling_one_buffer_has_each_frame_written_as_returned(
    clip: Path, tmp_path: Path, channels: int
) -> None:
    buffer = np.empty((HEIGHT, WIDTH, channels), np.uint8)
    returned: list[np.ndarray] = []

    def process(rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        time.sleep(0.002)  # the encoder stays behind, so several frames of the one buffer are in flight
        buffer[:, :, :3] = 255 - rgb
        buffer[:, :, 3:] = 255
        returned.append(buffer[:, :, :3].copy())
        return buffer

    video.transcode(clip, tmp_path / "out.mkv", process, options=LOSSLESS)
    frames, _, _ = decode(tmp_path / "out.mkv")
    assert len(frames) == len(returned) == FRAMES
    for expected, got in zip(returned, frames, strict=True):
        assert np.array_equal(got, expected)


def test_two_stages_write_the_one_stage_frames(clip: Path, tmp_path: Path) -> None:
    """With ``finish``, segmentation runs in a helper thread and the effect here: the same frames, bit for bit, with
    each stage called in order and ``finish`` on the calling thread."""
    import threading

    one, two = tmp_path / "one.mkv", tmp_path / "two.mkv"
    with video_segmenter() as segmenter:
        video.transcode(clip, one, blur_with_segmenter(segmenter, []), options=LOSSLESS)
    stamps: list[int] = []
    finishers: set[str] = set()
    with video_segmenter() as segmenter:

        def process(rgb: np.ndarray, timestamp_ms: int) -> ImageSegmenterResult:
            stamps.append(timestamp_ms)
            return segmenter.segment_for_video(rgb, timestamp_ms)

        def finish(rgb: np.ndarray, result: ImageSegmenterResult) -> np.ndarray:
            finishers.add(threading.current_thread().name)
            return effects.blur_background(rgb, result)

        report = video.transcode(clip, two, process, finish=finish, options=LOSSLESS)
    assert report.frames == FRAMES and stamps == sorted(stamps) and len(stamps) == FRAMES
    assert finishers == {threading.current_thread().name}
    for a, b in zip(decode(one)[0], decode(two)[0], strict=True):
        assert (a == b).all()


def test_lanes_deal_the_frames_in_turn_and_write_the_one_stage_frames(clip: Path, tmp_path: Path) -> None:
    """Two VIDEO-mode segmenters as lanes: frame i goes to lane i % 2, each lane in a thread of its own with its
    frames in order (increasing timestamps, as segment_for_video requires), finish here in order; the frames are
    the one-stage ones, bit for bit. Without finish a lane's value is the output."""
    import threading

    one, two, plain = tmp_path / "one.mkv", tmp_path / "two.mkv", tmp_path / "plain.mkv"
    with video_segmenter() as segmenter:
        video.transcode(clip, one, blur_with_segmenter(segmenter, []), options=LOSSLESS)
    calls: list[list[tuple[int, str]]] = [[], []]
    finished: list[int] = []
    with video_segmenter() as first, video_segmenter() as second:

        def lane(k: int, segmenter: ImageSegmenter) -> Callable[[np.ndarray, int], ImageSegmenterResult]:
            def process(rgb: np.ndarray, timestamp_ms: int) -> ImageSegmenterResult:
                calls[k].append((timestamp_ms, threading.current_thread().name))
                return segmenter.segment_for_video(rgb, timestamp_ms)

            return process

        def finish(rgb: np.ndarray, result: ImageSegmenterResult) -> np.ndarray:
            assert threading.current_thread() is threading.main_thread()
            finished.append(len(finished))
            return effects.blur_background(rgb, result)

        report = video.transcode(clip, two, [lane(0, first), lane(1, second)], finish=finish, options=LOSSLESS)
    stamps = [round(i * 1000 / RATE) for i in range(FRAMES)]
    assert report.frames == FRAMES and finished == list(range(FRAMES))
    assert [t for t, _ in calls[0]] == stamps[0::2] and [t for t, _ in calls[1]] == stamps[1::2]
    names = [{name for _, name in c} for c in calls]
    assert len(names[0]) == len(names[1]) == 1 and names[0] != names[1]
    assert threading.main_thread().name not in names[0] | names[1]
    for a, b in zip(decode(one)[0], decode(two)[0], strict=True):
        assert (a == b).all()
    inverted = [lambda rgb, t: 255 - rgb, lambda rgb, t: 255 - rgb]
    video.transcode(clip, plain, inverted, options=LOSSLESS)
    for a, b in zip(decode(clip)[0], decode(plain)[0], strict=True):
        assert np.abs(a.astype(int) + b - 255).max() <= 40  # the source is lossy H.264: its decode is close


def test_a_failing_lane_raises_its_own_exception_and_leaves_no_partial_output(clip: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")

    class LaneError(Exception):
        pass

    def failing(rgb: np.ndarray, timestamp_ms: int) -> int:
        if timestamp_ms > 200:
            raise LaneError("lane 1 failed")
        return timestamp_ms

    with pytest.raises(LaneError, match="lane 1 failed"):
        video.transcode(clip, target, [lambda rgb, t: t, failing], finish=lambda rgb, t: rgb)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("process", [[], [None], "blur", 3])
def test_process_must_be_callables(clip: Path, tmp_path: Path, process: object) -> None:
    with pytest.raises(TypeError, match="process must be a callable or a non-empty sequence of callables"):
        video.transcode(clip, tmp_path / "out.mp4", process)  # type: ignore[call-overload]  # the bad value is the test
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stage", ["process", "finish"])
def test_a_failing_stage_of_two_leaves_no_partial_output(clip: Path, tmp_path: Path, stage: str) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")

    def process(rgb: np.ndarray, timestamp_ms: int) -> int:
        if stage == "process" and timestamp_ms > 200:
            raise RuntimeError("segmentation failed")
        return timestamp_ms

    def finish(rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        if stage == "finish" and timestamp_ms > 200:
            raise RuntimeError("effect failed")
        return rgb

    with pytest.raises(RuntimeError, match="failed"):
        video.transcode(clip, target, process, finish=finish)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("shape", "pix_fmt"), [((38, 54, 3), "yuv420p"), ((37, 53, 3), "yuv444p")])
def test_the_encoders_frames_read_the_pixels_in_place(shape: tuple[int, int, int], pix_fmt: str) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, shape, np.uint8)  # rows of 162 and 159 bytes, unaligned
    frame = video._video_frame(av, pixels)
    assert np.shares_memory(np.frombuffer(memoryview(frame.planes[0]), np.uint8), pixels)  # no copy of its own
    copied = av.VideoFrame.from_ndarray(pixels, format="rgb24")
    # converted to the format the encoder picks for the size: the same as from a copy
    assert np.array_equal(frame.reformat(format=pix_fmt).to_ndarray(), copied.reformat(format=pix_fmt).to_ndarray())


def test_default_encoder_is_close_to_the_effect_output(clip: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    seen: list[tuple[int, np.ndarray]] = []
    with video_segmenter() as segmenter:
        report = video.transcode(clip, target, blur_with_segmenter(segmenter, seen))
    frames, rate, _ = decode(target)
    assert report.codec == "libx264" and len(frames) == FRAMES and rate == RATE
    errors = [np.mean((got.astype(float) - expected) ** 2) for (_, expected), got in zip(seen, frames, strict=True)]
    worst = 10 * np.log10(255**2 / max(errors))
    assert worst > 32.0, worst  # PSNR of CRF 21 with 4:2:0 chroma on a detailed 320x240 clip


def test_truncated_source_raises_and_keeps_the_old_target(clip: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    data = clip.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    target = tmp_path / "out.mp4"
    target.write_bytes(b"the previous output")
    with pytest.raises(video.VideoError, match=r"broken\.mp4.*decoded \d+ of the 24 frames"):
        video.transcode(broken, target, lambda rgb, t: rgb)
    assert target.read_bytes() == b"the previous output"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError("effect failed"), KeyboardInterrupt()])
def test_interrupted_run_leaves_no_partial_output(clip: Path, tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")

    def process(rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        if timestamp_ms > 200:
            raise error
        return rgb

    with pytest.raises(type(error)):
        video.transcode(clip, target, process)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_a_long_target_name_gets_a_legal_temporary_name(clip: Path, tmp_path: Path) -> None:
    """A 255-byte output name is legal; its temporary file's name must be too (it once was 21 bytes longer), and
    ``batch.remove_partials`` finds that file by the target's name."""
    target = tmp_path / ("V" * 251 + ".mp4")
    seen: list[str] = []

    def process(rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        seen.extend(leftovers(tmp_path))
        return rgb

    report = video.transcode(clip, target, process)
    assert report.frames == FRAMES and target.is_file() and leftovers(tmp_path) == []
    assert seen and all(name.startswith(batch.temporary_prefix(target)) and len(name) <= 50 for name in seen)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a video at all" * 100, "cannot open video"), (None, "cannot open video")],
)
def test_unreadable_sources(tmp_path: Path, content: bytes | None, message: str) -> None:
    source = tmp_path / "in.mp4"
    if content is not None:
        source.write_bytes(content)
    with pytest.raises(video.VideoError, match=message):
        video.transcode(source, tmp_path / "out.mp4", lambda rgb, t: rgb)
    assert not (tmp_path / "out.mp4").exists()


def test_audio_only_file_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "tone.m4a"
    with av.open(str(source), "w", format="mp4") as sink:
        stream = sink.add_stream("aac", rate=48000)
        samples = np.zeros((1, 48000), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 48000
        sink.mux(stream.encode(frame))
        sink.mux(stream.encode(None))
    with pytest.raises(video.VideoError, match="no video stream"):
        video.transcode(source, tmp_path / "out.mp4", lambda rgb, t: rgb)


@pytest.mark.parametrize(
    ("bad", "error"),
    [(lambda rgb: rgb[:10], ValueError), (lambda rgb: rgb.astype(np.float32), TypeError)],
)
def test_process_output_is_checked(
    clip: Path, tmp_path: Path, bad: Callable[[np.ndarray], np.ndarray], error: type[Exception]
) -> None:
    with pytest.raises(error, match="process must return"):
        video.transcode(clip, tmp_path / "out.mp4", lambda rgb, t: bad(rgb))
    assert leftovers(tmp_path) == []


def test_missing_pyav_names_the_pip_command(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(video.MissingDependencyError, match=r'pip install "segkit\[video\]"'):
        video.transcode(clip, tmp_path / "out.mp4", lambda rgb, t: rgb)
    assert issubclass(video.MissingDependencyError, ImportError)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="crf"):
        video.VideoOptions(crf=99)
    with pytest.raises(ValueError, match="queue_size"):
        video.VideoOptions(queue_size=0)
    with pytest.raises(ValueError, match="preset must be one of ultrafast, superfast"):
        video.VideoOptions(preset="turbo")


def test_odd_sized_video_keeps_its_size(tmp_path: Path) -> None:
    source = tmp_path / "odd.mkv"
    frames = pan_zoom_frames(load_rgb("astronaut.png"), 6, 161, 121)
    lossless = {"preset": "ultrafast", "crf": "0"}
    write_clip(source, frames, rate=12, audio=False, codec="libx264rgb", options=lossless, pix_fmt="rgb24")
    report = video.transcode(source, tmp_path / "out.mp4", lambda rgb, t: rgb)
    decoded, rate, audio = decode(tmp_path / "out.mp4")
    assert (report.width, report.height) == (161, 121) and decoded[0].shape == (121, 161, 3)
    assert len(decoded) == 6 and rate == 12 and audio == 0 and not report.audio_copied


def _timed_clip(path: Path, times_ms: list[int], container: str | None = None) -> None:
    """A small clip whose frames carry exactly ``times_ms`` (time base 1 ms): variable rates, late starts."""
    with av.open(str(path), "w", format=container) as sink:
        stream = sink.add_stream("libx264", rate=10, options={"preset": "ultrafast", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 20) % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            sink.mux(stream.encode(frame))
        sink.mux(stream.encode(None))


def _frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(f.pts * stream.time_base) for f in container.decode(stream)]


@pytest.mark.parametrize(("name", "times_ms"), [
    ("variable.mkv", [0, 100, 150, 400, 420, 900, 1000, 1600, 1700, 2000]),
    ("late.mp4", [1000 + 100 * i for i in range(10)]),
])  # fmt: skip
def test_frames_keep_the_sources_times(tmp_path: Path, name: str, times_ms: list[int]) -> None:
    """A variable frame rate and a video stream that starts late keep their times (they were renumbered from 0 at
    the average rate: the clip got shorter, and a late start drifted a second from its audio)."""
    source = tmp_path / name
    _timed_clip(source, times_ms)
    report = video.transcode(source, tmp_path / "out.mp4", lambda rgb, t: rgb)
    assert report.frames == len(times_ms)
    out = _frame_times(tmp_path / "out.mp4")
    assert np.abs(np.array(out) - np.array(times_ms) / 1000).max() < 0.006, out


def test_avi_output_declares_the_sources_rate_with_one_slot_a_frame(tmp_path: Path) -> None:
    """AVI counts frames, not time: with 4 ms ticks a 10 fps clip became a 250 fps file of mostly empty frames."""
    source = tmp_path / "steady.mp4"
    _timed_clip(source, [100 * i for i in range(10)])
    target = tmp_path / "out.avi"
    report = video.transcode(source, target, lambda rgb, t: rgb)
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert (stream.average_rate, stream.frames) == (10, 10)
        times = [float(f.time) for f in container.decode(stream)]
    assert report.frames == len(times) == 10
    assert np.allclose(np.diff(times), 0.1)


def test_a_truncated_matroska_file_without_a_frame_count_is_an_error(tmp_path: Path) -> None:
    """Matroska headers give no frame count, only a duration: half a file exited 0 with half the frames."""
    whole = tmp_path / "whole.mkv"
    _timed_clip(whole, [100 * i for i in range(30)])
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert video.transcode(whole, tmp_path / "fine.mp4", lambda rgb, t: rgb).frames == 30
    with pytest.raises(video.VideoError, match=r"decoded \d+ frames \(.*\) of the 3\.00 s its header promises"):
        video.transcode(cut, tmp_path / "out.mp4", lambda rgb, t: rgb)
    assert not (tmp_path / "out.mp4").exists()


def test_audio_the_container_cannot_hold_is_re_encoded_not_dropped(tmp_path: Path) -> None:
    """AAC cannot go into WebM: the sound is re-encoded to Opus there (it used to be dropped without a word), and
    keeps its length and start."""
    source = tmp_path / "clip.mp4"
    write_clip(source, [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(12)], rate=12)
    report = video.transcode(source, tmp_path / "out.webm", lambda rgb, timestamp_ms: rgb)
    assert report.audio_copied and report.frames == 12
    with av.open(str(source)) as container:
        tone = container.streams.audio[0]
        source_seconds = float(tone.duration * tone.time_base)
    with av.open(str(tmp_path / "out.webm")) as container:
        assert container.streams.audio[0].codec_context.name == "opus"
        packets = [p for p in container.demux(container.streams.audio[0]) if p.size and p.pts is not None]
        first, last = packets[0], packets[-1]
        start = float(first.pts * first.time_base)
        end = float((last.pts + last.duration) * last.time_base)
    assert abs(start) < 0.03 and abs(end - start - source_seconds) < 0.05


@pytest.mark.parametrize(("degrees", "white_rows"), [(90, slice(-8, None)), (-90, slice(0, 8)), (180, None)])
def test_a_rotation_tag_is_applied_so_frames_are_segmented_upright(
    tmp_path: Path, degrees: int, white_rows: slice | None
) -> None:
    """A phone video is stored sideways with a display matrix: frames reach ``process`` upright (as a player shows
    them) and are written upright without the tag; they used to be segmented sideways and the tag lost."""
    source = tmp_path / "phone.mp4"
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:, :8] = 255  # a white left edge, as stored
    with av.open(str(source), "w") as sink:
        stream = sink.add_stream("libx264", rate=10, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv444p"
        stream.set_display_rotation(degrees)
        for _ in range(3):
            sink.mux(stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        sink.mux(stream.encode(None))
    seen: list[tuple[int, ...]] = []

    def process(rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        seen.append(rgb.shape)
        return rgb

    report = video.transcode(source, tmp_path / "out.mkv", process, options=LOSSLESS)
    upright = (32, 64, 3) if degrees == 180 else (64, 32, 3)
    assert seen == [upright] * 3 and (report.height, report.width) == upright[:2]
    with av.open(str(tmp_path / "out.mkv")) as container:
        frame = next(container.decode(container.streams.video[0]))
        assert not frame.rotation
        pixels = frame.to_ndarray(format="rgb24")
    assert pixels.shape == upright
    expected = np.rot90(stored, round(degrees / 90) % 4)
    assert np.abs(pixels.astype(int) - expected).max() <= 2
    if white_rows is not None:
        assert (pixels[white_rows] > 250).all()
