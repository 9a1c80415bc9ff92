"""``WS /v1/live``: a camera stream through a LIVE_STREAM segmenter per connection, dropping what it cannot keep up.

Wire format, both directions, binary messages: a 4-byte little-endian length N, N bytes of UTF-8 JSON, then the
image bytes. The client sends ``{"timestamp": <ms, increasing>}`` + a JPEG frame; the server answers each frame it
processed with ``{"type": "frame", "timestamp", "server_ms", "received", "delivered", "dropped", ...}`` + the
processed JPEG (PNG for ``mask`` and ``cutout``). Text messages carry JSON control: the server sends ``ready`` at
the start and ``error`` for a bad frame (the session goes on); the client may send ``{"type": "stats"}``.

Frames are dropped at three points, all counted in ``dropped``: a frame still waiting to be decoded when a newer one
arrives, the segmenter's own flow limiter (one frame in flight, one waiting), and a processed frame the client is
too slow to read. So latency stays bounded by about two frames whatever rate the client sends at. Text messages
waiting for a client that does not read are capped as well (beyond ``_TEXT_LIMIT``, new ones are discarded), so no
client can make the server hold its answers without bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit import Image, ImageSegmenter, ImageSegmenterResult, RunningMode
from segkit.serve import ops
from segkit.serve.images import ApiError, check_output_size, decode_image, encode_image
from segkit.serve.pool import new_segmenter

logger = logging.getLogger("segkit.serve")
LIVE_EFFECTS = ("blur", "replace", "cutout", "recolor", "overlay", "mask")
_OUTBOX_LIMIT = 2  # processed frames waiting for the client; a newer one replaces the oldest
_TEXT_LIMIT = 64  # text messages waiting for the client; more are discarded (a client that does not read)
# Client timestamps (ms) are kept at microsecond precision as the segmenter's timestamps, which it holds in
# microseconds as int64: |ms| * 1000 * 1000 must fit, so about 285 years either side of 0 (any epoch time).
MAX_TIMESTAMP_MS = 9_000_000_000_000
_HEADER = struct.Struct("<I")


def pack(header: Mapping[str, Any], payload: bytes) -> bytes:
    """One binary message: length-prefixed JSON header, then the payload."""
    text = json.dumps(header, separators=(",", ":")).encode()
    return _HEADER.pack(len(text)) + text + payload


def unpack(message: bytes) -> tuple[dict[str, Any], bytes]:
    """A binary message as (header, payload); ValueError when it is not in the wire format."""
    if len(message) < _HEADER.size:
        raise ValueError("message shorter than its 4-byte header length")
    (length,) = _HEADER.unpack_from(message)
    if length > len(message) - _HEADER.size or length > 64 * 1024:
        raise ValueError(f"header length {length} does not fit the {len(message)}-byte message")
    try:
        header = json.loads(message[_HEADER.size : _HEADER.size + length])
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise ValueError(f"header is not JSON: {ops.clipped(str(e))}") from None
    except RecursionError:
        raise ValueError("header is not JSON this server reads: it is nested too deeply") from None
    if not isinstance(header, dict):
        raise ValueError("header must be a JSON object")
    return header, message[_HEADER.size + length :]


def _client_timestamp(header: Mapping[str, Any]) -> float:
    """The header's ``timestamp`` (ms); ValueError unless it is a number within +-MAX_TIMESTAMP_MS.

    Plain comparisons, not np.isfinite: they hold for ints of any size (np.isfinite raises TypeError beyond int64)
    and are False for NaN and the infinities; the range keeps the segmenter's timestamps within int64.
    """
    value = header.get("timestamp")
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and -MAX_TIMESTAMP_MS <= value <= MAX_TIMESTAMP_MS
    ):
        return float(value)
    got = ops.clipped(repr(value))
    raise ValueError(f"header needs a numeric 'timestamp' in milliseconds within +-{MAX_TIMESTAMP_MS}, got {got}")


@dataclass
class _Frame:
    """A received frame waiting to be decoded."""

    client_timestamp: float
    data: bytes
    received_at: float


class LiveSession:
    """The state of one connection: its segmenter, the latest undecoded frame, the counters and the outbox.

    ``send`` is the coroutine function that writes one message to the socket; the session calls it from its own
    sender task only, so messages never interleave.
    """

    def __init__(
        self,
        path: Path,
        threads: int,
        options: ops.EffectOptions,
        max_pixels: int,
        quality: int,
        loop: asyncio.AbstractEventLoop,
        normalization: tuple[float, float] | None = None,
    ) -> None:
        self.options = options
        self.max_pixels = max_pixels
        self.quality = quality
        self.loop = loop
        self.received = 0
        self.delivered = 0
        self.dropped = 0
        self.failed = 0
        self._pending: _Frame | None = None
        self._wake = asyncio.Event()
        self._outbox: deque[bytes | str] = deque()  # in sending order: at most _OUTBOX_LIMIT frames, _TEXT_LIMIT texts
        self._queued_frames = 0
        self._queued_texts = 0
        self._outbox_ready = asyncio.Event()
        self._meta: dict[int, tuple[float, float]] = {}  # segmenter timestamp -> (client timestamp, received_at)
        self._meta_lock = threading.Lock()
        self._last_ts: int | None = None
        self._segmenter_failed = 0  # the segmenter's failed frames already counted here
        self._format = "png" if options.effect in ("mask", "cutout") else "jpeg"
        self.segmenter: ImageSegmenter = new_segmenter(
            path, threads, normalization, running_mode=RunningMode.LIVE_STREAM, result_callback=self._on_result
        )

    def stats(self) -> dict[str, int]:
        """The frame counters; ``received == delivered + dropped + failed + in progress``."""
        return {"received": self.received, "delivered": self.delivered, "dropped": self.dropped, "failed": self.failed}

    # --- event-loop side ----------------------------------------------------------------------------------------

    def accept_frame(self, message: bytes) -> None:
        """A client frame: parked as the newest one to decode, replacing (dropping) an older undecoded frame."""
        self.received += 1
        try:
            header, payload = unpack(message)
            timestamp = _client_timestamp(header)
        except ValueError as e:
            self.failed += 1
            self.post_text({"type": "error", "message": f"bad frame: {e}"})
            return
        if self._pending is not None:
            self.dropped += 1
        self._pending = _Frame(timestamp, payload, time.monotonic())
        self._wake.set()

    def post_text(self, message: Mapping[str, Any]) -> None:
        """Queue a JSON text message for the client; discarded when _TEXT_LIMIT are already waiting, so a client
        that sends but never reads cannot make the server hold its answers without bound."""
        if self._queued_texts >= _TEXT_LIMIT:
            return
        self._queued_texts += 1
        self._outbox.append(json.dumps(message))
        self._outbox_ready.set()

    def _post_frame(self, message: bytes) -> None:
        # Runs on the loop (scheduled from the worker thread). A slow reader loses the oldest processed frame.
        if self._queued_frames >= _OUTBOX_LIMIT:
            oldest = next(m for m in self._outbox if isinstance(m, bytes))
            self._outbox.remove(oldest)
            self._queued_frames -= 1
            self.delivered -= 1
            self.dropped += 1
        self._queued_frames += 1
        self._outbox.append(message)
        self._outbox_ready.set()

    async def feed(self) -> None:
        """Decode the newest parked frame (off the loop) and hand it to the segmenter, forever.

        Whatever goes wrong with one frame is that frame's error for the client (counted in ``failed``); the loop
        itself never stops before it is cancelled.
        """
        while True:
            await self._wake.wait()
            self._wake.clear()
            frame, self._pending = self._pending, None
            if frame is None:
                continue
            try:
                await self._submit(frame)
            except ApiError as e:
                self._fail(e.message, frame.client_timestamp)
            except Exception as e:
                logger.error("live frame at timestamp %s failed", frame.client_timestamp, exc_info=e)
                self._fail(f"processing failed: {type(e).__name__}: {e}", frame.client_timestamp)

    async def _submit(self, frame: _Frame) -> None:
        """One frame decoded, checked and handed to the segmenter; ApiError for the client when it cannot be."""
        decoded = await asyncio.to_thread(decode_image, frame.data, self.max_pixels, "frame")
        height, width = decoded.pixels.shape[:2]
        check_output_size(width, height, self._format, "the processed frame", "send smaller frames")
        ts = int(frame.client_timestamp * 1000)
        if self._last_ts is not None and ts <= self._last_ts:
            raise ApiError(400, "timestamps must increase")
        self._last_ts = ts
        with self._meta_lock:
            self._meta[ts] = (frame.client_timestamp, frame.received_at)
        before = self._segmenter_dropped()
        try:
            self.segmenter.segment_async(decoded.pixels, ts)
        except Exception as e:
            if not self._earlier_frame_failed():
                raise
            # An earlier frame's inference failed: the segmenter raises that error here and leaves this frame out
            # (its timestamp unused), so that frame is the failed one and this one is submitted again.
            self._fail(f"processing failed: {e}", None)
            self.segmenter.segment_async(decoded.pixels, ts)
        self.dropped += self._segmenter_dropped() - before

    def _segmenter_dropped(self) -> int:
        stats = self.segmenter.live_stream_stats
        return stats.dropped if stats is not None else 0

    def _earlier_frame_failed(self) -> bool:
        """Whether the segmenter counted a failed frame not yet counted here (then it is counted now)."""
        stats = self.segmenter.live_stream_stats
        failed = stats.failed if stats is not None else 0
        if failed <= self._segmenter_failed:
            return False
        self._segmenter_failed = failed
        return True

    async def next_message(self) -> bytes | str:
        """The next message for the client (the sender task's source)."""
        while not self._outbox:
            self._outbox_ready.clear()
            await self._outbox_ready.wait()
        message = self._outbox.popleft()
        if isinstance(message, bytes):
            self._queued_frames -= 1
        else:
            self._queued_texts -= 1
        return message

    def close(self) -> None:
        """Finish the frames in flight and free the segmenter (blocking: call off the loop)."""
        try:
            self.segmenter.close()
        except Exception as e:  # a last frame's inference error, re-raised by close: the client has gone
            logger.warning("live session closed with a frame error: %s", e)

    # --- worker-thread side -------------------------------------------------------------------------------------

    def _on_result(self, result: ImageSegmenterResult, image: Image, timestamp_ms: int) -> None:
        """LIVE_STREAM callback: the effect and encoding run here, on the segmenter's worker thread."""
        with self._meta_lock:
            client_ts, received_at = self._meta.pop(timestamp_ms, (timestamp_ms / 1000.0, time.monotonic()))
            for stale in [t for t in self._meta if t < timestamp_ms]:
                del self._meta[stale]  # frames the flow limiter dropped
        # Everything that fails here is this frame's error: raised into the segmenter, it would be re-raised by the
        # next frame's segment_async and lose that frame instead.
        try:
            out = ops.apply_effect(image.numpy_view(), result, self.segmenter, self.options)
            payload, media_type = encode_image(out, self._format, self.quality)
        except ApiError as e:
            self.loop.call_soon_threadsafe(self._fail, e.message, client_ts)
            return
        except (ValueError, TypeError) as e:  # the effects' checks
            self.loop.call_soon_threadsafe(self._fail, str(e), client_ts)
            return
        except Exception as e:
            logger.error("live frame at timestamp %s failed", client_ts, exc_info=e)
            self.loop.call_soon_threadsafe(self._fail, f"processing failed: {type(e).__name__}: {e}", client_ts)
            return
        header = {
            "type": "frame",
            "timestamp": client_ts,
            "width": int(out.shape[1]),
            "height": int(out.shape[0]),
            "media_type": media_type,
            "server_ms": round((time.monotonic() - received_at) * 1000.0, 2),
        }
        self.loop.call_soon_threadsafe(self._deliver, header, payload)

    def _deliver(self, header: dict[str, Any], payload: bytes) -> None:
        self.delivered += 1
        self._post_frame(pack({**header, **self.stats()}, payload))

    def _fail(self, message: str, client_ts: float | None) -> None:
        """One frame failed: counted, and its error (with its timestamp when known) sent to the client."""
        self.failed += 1
        error: dict[str, Any] = {"type": "error", "message": message}
        if client_ts is not None:
            error["timestamp"] = client_ts
        self.post_text(error)
