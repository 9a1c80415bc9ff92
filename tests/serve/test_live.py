"""WS /v1/live from a Python client: ordering, drops, errors, limits, and the segmenter's end with the socket."""

from __future__ import annotations

import json
import struct
import time
from typing import Any

import numpy as np
import pytest

from tests.serve.conftest import ServerProcess, decode, encode, require

pytestmark = pytest.mark.slow


def pack(header: dict[str, Any], payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<I", len(text)) + text + payload


def unpack(message: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack_from("<I", message)
    return json.loads(message[4 : 4 + length]), message[4 + length :]


def connect(server: ServerProcess, query: str) -> Any:
    require("websockets")
    from websockets.sync.client import connect as ws_connect

    return ws_connect(f"ws://127.0.0.1:{server.port}/v1/live?{query}", max_size=None, open_timeout=30)


def drain(ws: Any, quiet: float = 1.0) -> list[str | bytes]:
    """Every message until none has come for ``quiet`` seconds."""
    got: list[str | bytes] = []
    while True:
        try:
            got.append(ws.recv(timeout=quiet))
        except TimeoutError:
            return got


def until_frame(ws: Any, timestamp: float, timeout: float = 60.0) -> list[str | bytes]:
    """Every message up to and including the processed frame of ``timestamp``, then any stragglers."""
    got: list[str | bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        got.append(message)
        if isinstance(message, bytes) and unpack(message)[0]["timestamp"] == timestamp:
            return got + drain(ws, 0.5)
    pytest.fail(f"the frame of timestamp {timestamp} never came back")


def live_sessions(server: ServerProcess) -> int:
    import httpx

    count: int = httpx.get(f"{server.url}/healthz").json()["live_sessions"]
    return count


def wait_sessions(server: ServerProcess, expected: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while live_sessions(server) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return live_sessions(server)


def test_stream_keeps_order_drops_what_it_cannot_keep_up_with_and_closes(server, photo_640):
    frame = encode(photo_640, "JPEG", quality=85)
    with connect(server, "effect=mask&model=selfie_segmenter") as ws:
        ready = json.loads(ws.recv(timeout=30))
        assert ready["type"] == "ready" and ready["model"] == "selfie_segmenter" and ready["effect"] == "mask"
        assert wait_sessions(server, 1) == 1
        sent = [1000.0 + 33.3 * i for i in range(40)]
        for ts in sent:  # as fast as the socket takes them: far faster than one worker segments
            ws.send(pack({"timestamp": ts}, frame))
        messages = until_frame(ws, sent[-1])
        frames = [unpack(m) for m in messages if isinstance(m, bytes)]
        assert not [m for m in messages if isinstance(m, str)], messages
        stamps = [h["timestamp"] for h, _ in frames]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "frames came back out of order"
        assert set(stamps) <= set(sent)
        assert stamps[-1] == sent[-1], "the newest frame must never be dropped"
        assert 0 < len(frames) < len(sent), f"{len(frames)} of {len(sent)} frames came back: nothing was dropped"
        header, payload = frames[-1]
        assert header["media_type"] == "image/png" and (header["width"], header["height"]) == (640, 480)
        assert header["server_ms"] > 0
        mask = decode(payload)
        assert mask.shape == (480, 640) and mask[300, 320] > 200 and mask[10, 10] < 50  # the person is white
        ws.send(json.dumps({"type": "stats"}))
        stats = json.loads(ws.recv(timeout=10))
        assert stats["received"] == len(sent)
        assert stats["delivered"] == len(frames)
        assert stats["delivered"] + stats["dropped"] + stats["failed"] == len(sent)
        assert stats["failed"] == 0
    assert wait_sessions(server, 0) == 0, "the session (and its segmenter) outlived the socket"


def test_effect_frames_and_bad_frames(server, photo_640):
    frame = encode(photo_640, "JPEG", quality=85)
    with connect(server, "effect=replace&background=%23ff0000&quality=90") as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        ws.send(b"\x01\x00")  # not in the wire format
        ws.send(pack({"timestamp": 5.0}, b"not a jpeg"))
        ws.send(pack({"time": 6.0}, frame))  # no timestamp
        ws.send("hello")
        errors = [json.loads(ws.recv(timeout=30)) for _ in range(4)]
        assert len(errors) == 4 and all(e["type"] == "error" and e["message"] for e in errors), errors
        ws.send(pack({"timestamp": 10.0}, frame))
        header, payload = unpack(ws.recv(timeout=30))
        assert header["timestamp"] == 10.0 and header["media_type"] == "image/jpeg"
        out = decode(payload)
        assert np.abs(out[10, 10].astype(int) - (255, 0, 0)).max() < 20  # the background is now red
        ws.send(pack({"timestamp": 9.0}, frame))  # older than the last one
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and "increase" in error["message"]


def test_bad_parameters_and_session_limit(server):
    with connect(server, "effect=explode") as ws:
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and "effect" in error["message"]
        with pytest.raises(Exception, match="1008"):
            ws.recv(timeout=10)
    with connect(server, "model=u2net") as ws:
        assert "not served" in json.loads(ws.recv(timeout=10))["message"]
    # The test server allows two live sessions: a third is refused with 1013 (try again later).
    with connect(server, "effect=mask") as first, connect(server, "effect=mask") as second:
        assert json.loads(first.recv(timeout=30))["type"] == "ready"
        assert json.loads(second.recv(timeout=30))["type"] == "ready"
        with connect(server, "effect=mask") as third:
            assert "too many" in json.loads(third.recv(timeout=10))["message"]
            with pytest.raises(Exception, match="1013"):
                third.recv(timeout=10)
    assert wait_sessions(server, 0) == 0


def test_each_effect_gets_its_model_and_sessions_leave_no_memory_behind(server, photo_640):
    """recolor streams through the hair model, overlay through DeepLab; 12 sessions opened and closed in turn
    (each with its own LIVE_STREAM segmenter) leave the server's memory where the first ones left it."""
    frame = encode(photo_640, "JPEG", quality=85)

    def session(query: str) -> tuple[dict[str, Any], dict[str, Any]]:
        with connect(server, query) as ws:
            ready = json.loads(ws.recv(timeout=30))
            for i in range(3):
                ws.send(pack({"timestamp": 100.0 * (i + 1)}, frame))
            header: dict[str, Any] = {}
            while header.get("timestamp") != 300.0:
                header, _ = unpack(ws.recv(timeout=30))
        assert wait_sessions(server, 0) == 0
        return ready, header

    assert session("effect=recolor&color=teal")[0]["model"] == "hair_segmenter"
    assert session("effect=overlay")[0]["model"] == "deeplabv3"
    for _ in range(2):
        session("effect=blur")
    warm = server.rss_mb()
    for _ in range(10):
        ready, header = session("effect=blur")
        assert ready["model"] == "selfie_segmenter" and header["media_type"] == "image/jpeg"
    grown = server.rss_mb() - warm
    assert grown < 25, f"RSS grew {grown:.0f} MB over 10 live sessions"
