"""Pipelined video transcoding: decode, process and encode a clip frame by frame, each in its own thread.

The one entry point::

    from segkit import video

    def process(rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:   # (H, W, 3) uint8 in, (H, W, 3|4) uint8 out
        result = segmenter.segment_for_video(rgb, timestamp_ms)     # a VIDEO-mode segmenter, owned by the caller
        return effects.blur_background(rgb, result)

    report = video.transcode(Path("clip.mp4"), Path("clip_blurred.mp4"), process,
                             options=video.VideoOptions(preset="superfast", crf=21),
                             progress=lambda done, total: bar.update(1))

- ``process`` runs in the calling thread, once per frame, in presentation order, with ``timestamp_ms`` the frame's
  presentation time in milliseconds, forced strictly increasing (what ``segment_for_video`` requires). Decoding
  runs in one helper thread and encoding + muxing in another, linked by bounded queues
  (``VideoOptions.queue_size``); FFmpeg releases the GIL, so the three stages overlap on separate cores. The
  returned pixels are copied as they are returned, so ``process`` may refill one array frame after frame.
- Two stages instead of one: with ``finish``, ``process(rgb, timestamp_ms)`` returns anything (the segmentation
  result) and runs in a helper thread, in order, while ``finish(rgb, value)`` makes the output pixels in the calling
  thread, in order too, so frame n's effect overlaps frame n+1's segmentation (LiteRT and Pillow release the GIL)::

      video.transcode(source, target, segmenter.segment_for_video,
                      finish=lambda rgb, result: effects.blur_background(rgb, result))

- Lanes: ``process`` may be a sequence of n callables (e.g. the ``segment_for_video`` of n VIDEO-mode segmenters
  of a model that keeps no state between frames). Frame i goes to ``process[i % n]``, each callable in its own
  thread and called with its frames in order (so its timestamps increase), so n frames are segmented at once;
  ``finish`` (or, without it, the calling thread taking the value as the output pixels) still sees every frame in
  order. For a segmentation slower than the effect: on 2 cores, two hair-model lanes take 720p recolor from 29 to
  31-32 fps.

- The output has the source's frame count, frame rate and (upright) size; the first audio stream is copied packet for
  packet (no re-encode), or re-encoded where the target's container cannot hold its codec (AAC into WebM becomes
  Opus). A RGBA result loses its alpha (video codecs here carry none).
- A rotation tag (a phone's display matrix) is applied as players apply it: frames are decoded upright, so they are
  segmented the right way up, and written upright without the tag (as FFmpeg does). Flips in the matrix are not.
- The output is written to a hidden temporary file in the target's folder and renamed over ``target`` only when
  complete: an exception or Ctrl-C (KeyboardInterrupt) leaves no partial file and an existing target intact.
- A source that cannot be opened, has no video stream, fails to decode mid-way, or decodes fewer frames than its
  header promises raises ``VideoError`` (a ValueError) naming the file and how many frames were decoded. An
  exception raised by ``process`` propagates unchanged (after the threads are stopped and the file removed).
- ``progress(frames_done, frames_total)`` (``frames_total`` from the header, None when unknown) is called in the
  calling thread after each frame is processed; drawing a bar (tqdm, with fps) is the caller's choice.
- PyAV is the optional ``video`` extra: without it ``transcode`` raises ``MissingDependencyError`` (an
  ImportError) whose message is the pip command.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, overload

import numpy as np

from segkit._common import temporary_prefix

__all__ = [
    "PRESETS",
    "MissingDependencyError",
    "VideoError",
    "VideoOptions",
    "VideoReport",
    "transcode",
]

PIP_COMMAND = 'pip install "segkit[video]"'
_CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".avi": "avi", ".mkv": "matroska", ".webm": "webm"}
_DEFAULT_CODECS = {".webm": ("libvpx-vp9", "libvpx"), ".avi": ("libx264", "mpeg4")}
_FALLBACK_CODECS = ("libx264", "h264", "mpeg4")
_AUDIO_CODECS = {
    ".webm": "libopus", ".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "libopus", ".avi": "libmp3lame"
}  # fmt: skip
"""Each container's audio codec, for a source audio it cannot hold as it is (re-encoded)."""
_AUDIO_RATES = {"libopus": 48000}  # Opus takes 48 kHz (and a few lower rates); the encoder resamples to it
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
"""x264's and x265's speed presets, fastest first."""
_POLL_S = 0.1
_DURATION_SHARE = 0.9  # a source without a frame count must decode to this share of its declared duration


class MissingDependencyError(ImportError):
    """PyAV (the ``video`` extra) is not installed; the message is the pip command that installs it."""


class VideoError(ValueError):
    """A source video that cannot be read completely, or an output that cannot be written; names the file."""


@dataclass(frozen=True)
class VideoOptions:
    """Encoder settings, chosen by default for speed with good quality (H.264, x264 preset superfast, CRF 21).

    ``codec`` None picks libx264 (VP9 for .webm); any FFmpeg encoder name works, e.g. ``"libx264rgb"`` with
    ``crf=0`` and ``pix_fmt="rgb24"`` for a lossless RGB file. ``preset`` and ``crf`` apply to x264/x265 (CRF also
    to VP9); ``threads`` 0 lets the encoder choose; ``pix_fmt`` None is yuv420p (yuv444p for odd sizes, which 4:2:0
    cannot hold); ``encoder_options`` are passed to FFmpeg as they are and win over the fields above.
    superfast encodes 720p about twice as fast as veryfast (what a 2-core machine needs to keep 30 fps with the
    segmentation running beside it) for files about twice as large at the same CRF; pass ``preset="veryfast"`` or
    slower for smaller files.
    """

    codec: str | None = None
    preset: str = "superfast"
    crf: int = 21
    threads: int = 0
    pix_fmt: str | None = None
    encoder_options: dict[str, str] = field(default_factory=dict)
    queue_size: int = 8
    copy_audio: bool = True

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 63:
            raise ValueError(f"crf must be an int in 0..63, got {self.crf!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an int >= 0, got {self.threads!r}")
        if isinstance(self.queue_size, bool) or not isinstance(self.queue_size, int) or self.queue_size < 1:
            raise ValueError(f"queue_size must be an int >= 1, got {self.queue_size!r}")


@dataclass(frozen=True)
class VideoReport:
    """What ``transcode`` wrote: frame count, rate, size, codec, whether the audio was kept (copied or re-encoded),
    and the time it took."""

    source: Path
    target: Path
    frames: int
    rate: Fraction
    width: int
    height: int
    codec: str
    audio_copied: bool
    seconds: float

    @property
    def fps(self) -> float:
        """Processing speed: frames written per second of wall time (decode + process + encode)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


Process = Callable[[np.ndarray, int], np.ndarray]
Progress = Callable[[int, "int | None"], None]
_T = TypeVar("_T")


def _import_av() -> ModuleType:
    """PyAV, or MissingDependencyError with the pip command."""
    try:
        import av
    except ImportError:
        raise MissingDependencyError(f"videos need PyAV: {PIP_COMMAND}") from None
    return av


def _video_frame(av: ModuleType, pixels: np.ndarray) -> Any:
    """A PyAV frame reading the contiguous (H, W, 3) pixels in place (the pipeline's own copy): the encoder converts
    them to its own format at once, so the frame needs no second copy (a fresh buffer per frame, page-faulted in)."""
    wrap = getattr(av.VideoFrame, "from_numpy_buffer", None)
    return av.VideoFrame.from_ndarray(pixels, format="rgb24") if wrap is None else wrap(pixels, format="rgb24")


def _output_time_base(rate: Fraction, suffix: str) -> Fraction:
    """The output's time base: ticks of about 4 ms, a whole fraction of a frame, so that a variable frame rate keeps
    its timing and a constant one whose source times are rounded to the ms (Matroska) lands exactly on its grid.

    AVI counts frames, not time: its stream rate is one over the time base (ticks of 4 ms made a 30 fps clip a
    240 fps file of mostly empty frames), so there a tick is one frame."""
    if suffix == ".avi":
        return Fraction(1) / rate
    return Fraction(1) / (rate * max(1, int(250 / rate)))


def _declared_seconds(stream: Any) -> float | None:
    """How long the video stream says it is (its own duration, or Matroska's per-stream DURATION tag), for files
    whose header has no frame count; None when it does not say (the container's duration may be the audio's)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION")
    if isinstance(tag, str):
        hours, minutes, seconds = [*tag.split(":"), "", "", ""][:3]
        with contextlib.suppress(ValueError):
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return None


def _pick_codec(av: ModuleType, suffix: str, wanted: str | None) -> str:
    """The encoder to use: ``wanted`` if this PyAV build has it, else the container's default."""
    candidates = (wanted,) if wanted else _DEFAULT_CODECS.get(suffix, _FALLBACK_CODECS)
    for name in candidates:
        try:
            av.codec.Codec(name, "w")
        except av.FFmpegError:
            continue
        except ValueError:
            continue
        return name
    raise VideoError(f"this PyAV build has no encoder for {suffix or 'this'} video (tried {', '.join(candidates)})")


def _encoder_options(codec: str, options: VideoOptions, suffix: str = ".mp4") -> dict[str, str]:
    """FFmpeg private options for the codec from ``options`` (x264/x265: preset + crf; VP9: realtime + crf); no
    B-frames in AVI, which cannot store frames out of order (its timestamps came out scrambled)."""
    chosen: dict[str, str] = {}
    if codec.startswith(("libx264", "libx265")):
        chosen = {"preset": options.preset, "crf": str(options.crf)}
        if suffix == ".avi":
            chosen["bf"] = "0"
    elif codec.startswith("libvpx"):
        chosen = {"deadline": "realtime", "cpu-used": "8", "crf": str(options.crf), "b": "0"}
    elif codec == "mpeg4":
        chosen = {"qscale": "3"}
    chosen.update(options.encoder_options)
    return chosen


@dataclass
class _Frame:
    """One decoded frame on its way through the pipeline."""

    index: int
    timestamp_ms: int
    pixels: np.ndarray
    value: object = None  # ``process``'s result, on its way to ``finish``


@dataclass
class _Audio:
    """One demuxed audio packet, copied to the output as it is."""

    packet: Any


class _Stop(Exception):
    """Raised inside a helper thread when the pipeline is being shut down."""


class _Pipe:
    """A bounded queue whose put/get give up (with ``_Stop``) once the pipeline's stop event is set."""

    def __init__(self, size: int, stop: threading.Event) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=size)
        self._stop = stop

    def put(self, item: object) -> None:
        while True:
            if self._stop.is_set():
                raise _Stop
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self) -> object:
        while True:
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    raise _Stop from None


_END = object()
_Stages = tuple[Sequence[Callable[[np.ndarray, int], Any]], "Callable[[np.ndarray, Any], np.ndarray] | None"]


class _Worker(threading.Thread):
    """A pipeline thread that keeps the first exception it meets and sets the stop event on failure."""

    def __init__(self, name: str, body: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._body = body
        self._stop_event = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._body()
        except _Stop:
            pass
        except BaseException as e:
            self.error = e
            self._stop_event.set()


def _timestamps(frames: Iterator[Any], rate: Fraction) -> Iterator[tuple[Any, int]]:
    """Each decoded frame with its presentation time in ms, forced strictly increasing."""
    last = -1
    for index, frame in enumerate(frames):
        seconds = frame.time if frame.time is not None else index / rate
        last = max(round(float(seconds) * 1000), last + 1)
        yield frame, last


@overload
def transcode(
    source: Path,
    target: Path,
    process: Process | Sequence[Process],
    *,
    finish: None = None,
    options: VideoOptions | None = None,
    progress: Progress | None = None,
) -> VideoReport: ...


@overload
def transcode(
    source: Path,
    target: Path,
    process: Callable[[np.ndarray, int], _T] | Sequence[Callable[[np.ndarray, int], _T]],
    *,
    finish: Callable[[np.ndarray, _T], np.ndarray],
    options: VideoOptions | None = None,
    progress: Progress | None = None,
) -> VideoReport: ...


def transcode(
    source: Path,
    target: Path,
    process: Callable[[np.ndarray, int], Any] | Sequence[Callable[[np.ndarray, int], Any]],
    *,
    finish: Callable[[np.ndarray, Any], np.ndarray] | None = None,
    options: VideoOptions | None = None,
    progress: Progress | None = None,
) -> VideoReport:
    """Decode ``source``, run ``process(rgb, timestamp_ms)`` (then ``finish(rgb, value)``, when given) on every
    frame, encode the results into ``target``. ``process`` may be a sequence of callables (lanes, dealt the frames
    in turn).

    See the module docstring for the threading, lanes, timing, audio, atomic-write and error rules.
    """
    lanes = _lanes(process)
    av = _import_av()
    opts = options or VideoOptions()
    source, target = Path(source), Path(target)
    started = time.perf_counter()
    try:
        container = av.open(str(source))
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"cannot open video {source}: {e}") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"cannot decode video {source}: it has no video stream")
        video_in = container.streams.video[0]
        video_in.thread_type = "AUTO"
        audio_in = container.streams.audio[0] if opts.copy_audio and container.streams.audio else None
        if video_in.codec_context is None or not video_in.codec_context.width or not video_in.codec_context.height:
            raise VideoError(f"cannot decode video {source}: its video stream header is damaged (no decoder, no size)")
        rate = Fraction(video_in.average_rate or video_in.guessed_rate or 30)
        width, height = int(video_in.codec_context.width), int(video_in.codec_context.height)
        turns = _quarter_turns(av, source)
        if turns % 2:
            width, height = height, width
        expected = int(video_in.frames) or None
        declared = _declared_seconds(video_in)
        suffix = target.suffix.lower()
        codec = _pick_codec(av, suffix, opts.codec)
        target.parent.mkdir(parents=True, exist_ok=True)
        # A unique hidden name that FFmpeg creates itself, so the file gets the usual permissions (umask), which
        # mkstemp's 0600 would not give. Its fixed-length start (temporary_prefix) keeps it legal for any
        # legal target name and lets batch.remove_partials find it after a killed run.
        partial = target.with_name(f"{temporary_prefix(target)}.{uuid.uuid4().hex[:12]}.partial{target.suffix}")
        try:
            with av.open(str(partial), "w", format=_CONTAINER_FORMATS.get(suffix)) as sink:
                video_out = sink.add_stream(codec, rate=rate, options=_encoder_options(codec, opts, suffix))
                video_out.codec_context.time_base = _output_time_base(rate, suffix)
                video_out.width, video_out.height = width, height
                odd = width % 2 or height % 2
                video_out.pix_fmt = opts.pix_fmt or ("yuv444p" if odd and codec.startswith("libx264") else "yuv420p")
                if opts.threads:
                    video_out.codec_context.thread_count = opts.threads
                video_out.codec_context.thread_type = "AUTO"
                audio_out, recoded = (None, False) if audio_in is None else _audio_stream(av, sink, audio_in, suffix)
                count, span = _run_pipeline(
                    av, container, sink, video_in, audio_in if audio_out is not None else None, video_out,
                    (audio_out, recoded), rate, (width, height), turns, source, (lanes, finish), opts.queue_size,
                    expected, progress,
                )  # fmt: skip
            if expected is not None and count < expected:
                raise VideoError(
                    f"cannot decode video {source}: decoded {count} of the {expected} frames its header promises"
                )
            if expected is None and declared is not None and count and span < declared * _DURATION_SHARE:
                raise VideoError(
                    f"cannot decode video {source}: decoded {count} frames ({span:.2f} s) of the {declared:.2f} s its "
                    "header promises"
                )
            if count == 0:
                raise VideoError(f"cannot decode video {source}: no frames decoded")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return VideoReport(
        source, target, count, rate, width, height, codec, audio_out is not None, time.perf_counter() - started
    )


def _lanes(process: object) -> list[Callable[[np.ndarray, int], Any]]:
    """``process`` as a list of lanes (one callable, or a non-empty sequence of them); TypeError otherwise."""
    if callable(process):
        return [process]
    if isinstance(process, Sequence) and not isinstance(process, (str, bytes)):
        lanes: list[Callable[[np.ndarray, int], Any]] = [lane for lane in process if callable(lane)]
        if lanes and len(lanes) == len(process):
            return lanes
    raise TypeError(f"process must be a callable or a non-empty sequence of callables, got {process!r}")


def _quarter_turns(av: ModuleType, source: Path) -> int:
    """How many quarter turns counter-clockwise (0-3) the source's display matrix asks for: phone videos are stored
    sideways with such a tag. Read from the first frame of a separate opening (the output's size depends on it
    before decoding starts); 0 when there is none or it cannot be read."""
    with contextlib.suppress(av.FFmpegError, OSError, IndexError, StopIteration), av.open(str(source)) as probe:
        rotation = getattr(next(probe.decode(probe.streams.video[0])), "rotation", 0)  # older PyAV: no such property
        return round(rotation / 90) % 4 if rotation else 0
    return 0


def _audio_stream(av: ModuleType, sink: Any, audio_in: Any, suffix: str) -> tuple[Any, bool]:
    """The output's audio stream and whether its packets must be re-encoded: a copy of the source's where the
    container takes its codec, else the container's own codec (AAC cannot go into WebM: Opus there); (None, False)
    when neither can be written."""
    with contextlib.suppress(av.FFmpegError, ValueError):
        return sink.add_stream_from_template(audio_in), False
    codec = _AUDIO_CODECS.get(suffix)
    if codec is None or audio_in.codec_context is None:
        return None, False
    with contextlib.suppress(av.FFmpegError, ValueError):
        stream = sink.add_stream(codec, rate=_AUDIO_RATES.get(codec, audio_in.rate or 48000))
        stream.layout = "mono" if (audio_in.channels or 1) == 1 else "stereo"
        return stream, True
    return None, False


def _run_pipeline(
    av: ModuleType, container: Any, sink: Any, video_in: Any, audio_in: Any, video_out: Any, audio: tuple[Any, bool],
    rate: Fraction, size: tuple[int, int], turns: int, source: Path, stages: _Stages, queue_size: int,
    expected: int | None, progress: Progress | None,
) -> tuple[int, float]:  # fmt: skip
    """Runs decode (helper thread) -> [process (helper thread, or one per lane) ->] process or finish (this thread)
    -> encode + mux (helper thread); returns the frames written and the seconds they span (first frame's start to
    last one's end, one frame at the average rate)."""
    lanes, finish = stages
    process = lanes[0]
    audio_out, recoded = audio
    stop = threading.Event()
    staged = finish is not None or len(lanes) > 1
    decoded: _Pipe = _Pipe(queue_size, stop)
    analyzed: _Pipe = _Pipe(queue_size, stop) if staged else decoded
    pools = [ThreadPoolExecutor(1, f"segkit-video-lane-{k}") for k in range(len(lanes))] if len(lanes) > 1 else []
    processed: _Pipe = _Pipe(queue_size, stop)
    time_base = video_out.codec_context.time_base
    width, height = size
    counts = {"decoded": 0}

    def decode() -> None:
        streams = [video_in] + ([audio_in] if audio_in is not None else [])
        try:
            packets = container.demux(streams)

            def frames() -> Iterator[Any]:
                for packet in packets:
                    if packet.stream is video_in:
                        yield from packet.decode()
                    elif packet.dts is not None:
                        decoded.put(_Audio(packet))

            for index, (frame, timestamp_ms) in enumerate(_timestamps(frames(), rate)):
                pixels = frame.to_ndarray(format="rgb24")
                if turns:  # upright, as a player shows it
                    pixels = np.ascontiguousarray(np.rot90(pixels, turns))
                decoded.put(_Frame(index, timestamp_ms, pixels))
                counts["decoded"] = index + 1
        except av.FFmpegError as e:
            raise VideoError(
                f"cannot decode video {source}: failed after {counts['decoded']} frames"
                + (f" of {expected}" if expected else "")
                + f": {e}"
            ) from None
        decoded.put(_END)

    def analyze() -> None:
        while True:
            item = decoded.get()
            if isinstance(item, _Frame) and pools:  # a future, which the calling thread waits for in order
                lane = item.index % len(lanes)
                item.value = pools[lane].submit(lanes[lane], item.pixels, item.timestamp_ms)
            elif isinstance(item, _Frame):
                item.value = process(item.pixels, item.timestamp_ms)
            analyzed.put(item)
            if item is _END:
                break

    def encode() -> None:
        last_pts = -1
        while True:
            item = processed.get()
            if item is _END:
                break
            if isinstance(item, _Frame):
                frame = _video_frame(av, item.pixels)
                # The source's time: its start offset (audio stays in sync) and a variable frame rate kept.
                last_pts = max(round(item.timestamp_ms / (1000 * time_base)), last_pts + 1)
                frame.pts = last_pts
                frame.time_base = time_base
                sink.mux(video_out.encode(frame))
            elif isinstance(item, _Audio) and not recoded:
                item.packet.stream = audio_out
                sink.mux(item.packet)
            elif isinstance(item, _Audio):
                for samples in audio_in.codec_context.decode(item.packet):
                    sink.mux(audio_out.encode(samples))
        sink.mux(video_out.encode(None))
        if recoded:
            for samples in audio_in.codec_context.decode(None):
                sink.mux(audio_out.encode(samples))
            sink.mux(audio_out.encode(None))

    encoder = _Worker("segkit-video-encode", encode, stop)
    workers = [_Worker("segkit-video-decode", decode, stop), encoder]
    if staged:
        workers.append(_Worker("segkit-video-process", analyze, stop))
    for worker in workers:
        worker.start()
    written = 0
    first_ms = last_ms = 0
    try:
        while True:
            try:
                item = analyzed.get()
            except _Stop:
                break
            if item is _END:
                processed.put(_END)
                break
            if not isinstance(item, _Frame):
                processed.put(item)
                continue
            if not staged:
                pixels = process(item.pixels, item.timestamp_ms)
            else:  # a lane's exception is raised here, by result(), unchanged
                value = item.value.result() if isinstance(item.value, Future) and pools else item.value
                pixels = value if finish is None else finish(item.pixels, value)
            item.pixels, item.value = _checked_output(pixels, width, height), None
            first_ms = item.timestamp_ms if written == 0 else first_ms
            last_ms = item.timestamp_ms
            written += 1
            processed.put(item)
            if progress is not None:
                progress(written, expected)
        encoder.join()
    except _Stop:
        pass
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        for pool in pools:  # each lane ends its current frame, if any; the frames still queued are dropped
            pool.shutdown(wait=True, cancel_futures=True)
    for worker in workers:
        if worker.error is not None:
            error = worker.error
            if isinstance(error, VideoError):
                raise error
            if isinstance(error, av.FFmpegError):
                raise VideoError(f"cannot write video for {source}: {error}") from error
            raise error
    return written, (last_ms - first_ms) / 1000 + float(1 / rate)


def _checked_output(pixels: object, width: int, height: int) -> np.ndarray:
    """A copy of ``process``'s return value as a contiguous (H, W, 3) uint8 array, made at once in the calling thread:
    the encoder reads it later, in its own thread, and the caller may refill its array for the next frame meanwhile.
    TypeError/ValueError naming the problem."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        kind = type(pixels).__name__ if not isinstance(pixels, np.ndarray) else f"{pixels.dtype} array"
        raise TypeError(f"process must return a uint8 numpy array, got {kind}")
    if pixels.ndim != 3 or pixels.shape[:2] != (height, width) or pixels.shape[2] not in (3, 4):
        raise ValueError(f"process must return shape ({height}, {width}, 3) like its input, got {pixels.shape}")
    return np.array(pixels[:, :, :3], order="C")
