"""``WS /v1/live``: a camera stream through a LIVE_STREAM segmenter per connection, dropping what it cannot keep up.

Wire format, both directions, binary messages: a 4-byte little-endian length N, N bytes of UTF-8 JSON, then the
image bytes. The client sends ``{"timestamp": <ms, increasing>}`` + a JPEG frame; the server answers each frame it
processed with ``{"type": "frame", "timestamp", "server_ms", "received", "delivered", "dropped", ...}`` + the
processed JPEG (PNG for ``mask`` and ``cutout``). Text messages carry JSON control: the server sends ``ready`` at
the start and ``error`` for a bad frame (the session goes on); the client may send ``{"type": "stats"}``.

Frames are dropped at three points, all counted in ``dropped``: a frame still waiting to be decoded when a newer one
arrives, the segmenter's own flow limiter (one frame in flight, one waiting), and a processed frame the client is
too slow to read. So latency stays bounded by about two frames whatever rate the client sends at.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segkit import Image, ImageSegmenter, ImageSegmenterResult, RunningMode
from segkit.serve import ops
from segkit.serve.images import ApiError, decode_image, encode_image
from segkit.serve.pool import new_segmenter

LIVE_EFFECTS = ("blur", "replace", "cutout", "recolor", "overlay", "mask")
_OUTBOX_LIMIT = 2
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
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError("header must be a JSON object")
    return header, message[_HEADER.size + length :]


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
        self._outbox: asyncio.Queue[bytes | str] = asyncio.Queue()
        self._meta: dict[int, tuple[float, float]] = {}  # segmenter timestamp -> (client timestamp, received_at)
        self._meta_lock = threading.Lock()
        self._last_ts = -1
        self.segmenter: ImageSegmenter = new_segmenter(
            path, threads, running_mode=RunningMode.LIVE_STREAM, result_callback=self._on_result
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
            timestamp = header.get("timestamp")
            if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or not np.isfinite(timestamp):
                raise ValueError(f"header needs a numeric 'timestamp' in milliseconds, got {timestamp!r}")
        except ValueError as e:
            self.failed += 1
            self.post_text({"type": "error", "message": f"bad frame: {e}"})
            return
        if self._pending is not None:
            self.dropped += 1
        self._pending = _Frame(float(timestamp), payload, time.monotonic())
        self._wake.set()

    def post_text(self, message: Mapping[str, Any]) -> None:
        """Queue a JSON text message for the client."""
        self._outbox.put_nowait(json.dumps(message))

    def _post_frame(self, message: bytes) -> None:
        # Runs on the loop (scheduled from the worker thread). A slow reader loses the oldest processed frame.
        while self._outbox.qsize() >= _OUTBOX_LIMIT:
            dropped = self._outbox.get_nowait()
            if isinstance(dropped, bytes):
                self.delivered -= 1
                self.dropped += 1
        self._outbox.put_nowait(message)

    async def feed(self) -> None:
        """Decode the newest parked frame (off the loop) and hand it to the segmenter, forever."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            frame, self._pending = self._pending, None
            if frame is None:
                continue
            try:
                decoded = await asyncio.to_thread(decode_image, frame.data, self.max_pixels, "frame")
            except ApiError as e:
                self.failed += 1
                self.post_text({"type": "error", "message": e.message, "timestamp": frame.client_timestamp})
                continue
            ts = int(frame.client_timestamp * 1000)
            if ts <= self._last_ts:
                self.failed += 1
                self.post_text(
                    {"type": "error", "message": "timestamps must increase", "timestamp": frame.client_timestamp}
                )
                continue
            self._last_ts = ts
            with self._meta_lock:
                self._meta[ts] = (frame.client_timestamp, frame.received_at)
            before = self._segmenter_dropped()
            try:
                self.segmenter.segment_async(decoded.pixels, ts)
            except Exception as e:  # an error of an earlier frame, re-raised here by the segmenter
                self.failed += 1
                self.post_text({"type": "error", "message": f"processing failed: {e}"})
                continue
            self.dropped += self._segmenter_dropped() - before

    def _segmenter_dropped(self) -> int:
        stats = self.segmenter.live_stream_stats
        return stats.dropped if stats is not None else 0

    async def next_message(self) -> bytes | str:
        """The next message for the client (the sender task's source)."""
        return await self._outbox.get()

    def close(self) -> None:
        """Finish the frames in flight and free the segmenter (blocking: call off the loop)."""
        self.segmenter.close()

    # --- worker-thread side -------------------------------------------------------------------------------------

    def _on_result(self, result: ImageSegmenterResult, image: Image, timestamp_ms: int) -> None:
        """LIVE_STREAM callback: the effect and encoding run here, on the segmenter's worker thread."""
        with self._meta_lock:
            client_ts, received_at = self._meta.pop(timestamp_ms, (timestamp_ms / 1000.0, time.monotonic()))
            for stale in [t for t in self._meta if t < timestamp_ms]:
                del self._meta[stale]  # frames the flow limiter dropped
        pixels = image.numpy_view()
        try:
            out = ops.apply_effect(pixels, result, self.segmenter, self.options)
        except (ValueError, TypeError) as e:
            self.loop.call_soon_threadsafe(self._fail, str(e), client_ts)
            return
        fmt = "png" if self.options.effect in ("mask", "cutout") else "jpeg"
        payload, media_type = encode_image(out, fmt, self.quality)
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

    def _fail(self, message: str, client_ts: float) -> None:
        self.failed += 1
        self.post_text({"type": "error", "message": message, "timestamp": client_ts})
