"""WS /v1/live against hostile or unlucky clients: every bad message is answered for itself and the session goes on.

The first tests drive a ``LiveSession`` in-process (its frame loop, its outbox) with the real selfie model; the
others talk to the session server of ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from tests.conftest import model_path
from tests.serve.conftest import ServerProcess, encode
from tests.serve.test_live import connect, pack, unpack

SMALL = np.full((48, 64, 3), 128, np.uint8)


def _session(effect: str = "mask") -> Any:
    from segkit.serve import ops
    from segkit.serve.live import LiveSession

    options = ops.EffectOptions(effect)
    path = model_path("selfie_segmenter.tflite")
    return LiveSession(path, 1, options, 4_000_000, 80, asyncio.get_running_loop())


async def _answers(session: Any, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The next ``count`` messages of the session, each as its JSON (a frame's header for a binary message)."""
    got = []
    for _ in range(count):
        message = await asyncio.wait_for(session.next_message(), timeout)
        got.append(unpack(message)[0] if isinstance(message, bytes) else json.loads(message))
    return got


def _run(body: Any) -> None:
    """``body(session)`` on a fresh event loop with the session's frame loop running, then the session closed."""

    async def main() -> None:
        session = _session()
        feed = asyncio.create_task(session.feed())
        try:
            await body(session)
        finally:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
            await asyncio.to_thread(session.close)

    asyncio.run(main())


def test_a_client_that_never_reads_cannot_grow_the_outbox():
    """Tiny bad frames (10 bytes on the wire) each earn an error message: the server must not keep them all."""

    async def body(session: Any) -> None:
        for _ in range(5000):
            session.accept_frame(b"\0\0\0\0")
        assert session.stats()["failed"] == 5000  # every frame is still counted
        kept = 0
        while True:
            try:
                message = await asyncio.wait_for(session.next_message(), 0.2)
            except TimeoutError:
                break
            assert json.loads(message)["type"] == "error"
            kept += 1
        assert 0 < kept <= 100, f"{kept} error messages were held for a client that reads none"
        session.accept_frame(pack({"timestamp": 1.0}, encode(SMALL, "JPEG")))  # and the session still works
        assert (await _answers(session, 1))[0]["type"] == "frame"

    _run(body)


def test_an_unexpected_error_in_one_frame_does_not_stop_the_frame_loop(monkeypatch):
    from segkit.serve import live
    from segkit.serve.images import decode_image as decode

    calls = []

    def flaky(data: bytes, max_pixels: int, name: str = "file") -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OverflowError("an error nobody planned for")
        return decode(data, max_pixels, name)

    monkeypatch.setattr(live, "decode_image", flaky)

    async def body(session: Any) -> None:
        frame = encode(SMALL, "JPEG")
        session.accept_frame(pack({"timestamp": 1.0}, frame))
        error = (await _answers(session, 1))[0]
        assert error["type"] == "error" and error["timestamp"] == 1.0 and "OverflowError" in error["message"]
        session.accept_frame(pack({"timestamp": 2.0}, frame))
        header = (await _answers(session, 1))[0]
        assert header["type"] == "frame" and header["timestamp"] == 2.0
        assert (header["received"], header["delivered"], header["failed"], header["dropped"]) == (2, 1, 1, 0)

    _run(body)


def test_an_encoder_failure_is_the_error_of_its_own_frame(monkeypatch):
    """An exception while encoding a result (on the segmenter's thread) must not be re-raised for the next frame."""
    from segkit.serve import live
    from segkit.serve.images import encode_image

    calls = []

    def flaky(pixels: np.ndarray, fmt: str, quality: int = 90) -> tuple[bytes, str]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("broken data stream when writing image file")
        return encode_image(pixels, fmt, quality)

    monkeypatch.setattr(live, "encode_image", flaky)

    async def body(session: Any) -> None:
        frame = encode(SMALL, "JPEG")
        session.accept_frame(pack({"timestamp": 1.0}, frame))
        error = (await _answers(session, 1))[0]
        assert error["type"] == "error" and error["timestamp"] == 1.0 and "broken data stream" in error["message"]
        session.accept_frame(pack({"timestamp": 2.0}, frame))
        header = (await _answers(session, 1))[0]
        assert header["type"] == "frame" and header["timestamp"] == 2.0
        assert (header["received"], header["delivered"], header["failed"]) == (2, 1, 1)

    _run(body)


def test_unpack_refuses_deeply_nested_headers_as_bad_frames():
    from segkit.serve.live import unpack as server_unpack

    nested = b"[" * 60000
    with pytest.raises(ValueError, match="nested too deeply"):
        server_unpack(len(nested).to_bytes(4, "little") + nested)
    digits = b'{"timestamp": ' + b"1" * 5000 + b"}"  # json refuses integers of more than 4300 digits
    with pytest.raises(ValueError, match="header is not JSON"):
        server_unpack(len(digits).to_bytes(4, "little") + digits)


# --- against the server ---------------------------------------------------------------------------------------------


def _expect_error(ws: Any, *words: str) -> dict[str, Any]:
    message = ws.recv(timeout=30)
    assert isinstance(message, str), "expected an error message, got a frame"
    error: dict[str, Any] = json.loads(message)
    assert error["type"] == "error", error
    for word in words:
        assert word in error["message"], error
    return error


def _expect_frame(ws: Any, timestamp: float) -> dict[str, Any]:
    message = ws.recv(timeout=30)
    assert isinstance(message, bytes), f"expected the frame of {timestamp}, got {message!r}"
    header: dict[str, Any] = unpack(message)[0]
    assert header["timestamp"] == timestamp
    return header


@pytest.mark.slow
def test_nested_json_and_huge_timestamps_are_bad_frames_and_the_session_goes_on(server: ServerProcess):
    frame = encode(SMALL, "JPEG")
    with connect(server, "effect=mask") as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        ws.send("[" * 100000)  # a text message nested far deeper than json's recursion limit
        _expect_error(ws, "JSON")
        nested = b"[" * 60000  # a binary frame's header, under the 64 KiB cap
        ws.send(len(nested).to_bytes(4, "little") + nested + frame)
        _expect_error(ws, "bad frame", "nested")
        ws.send(pack({"timestamp": 1.0}, frame))
        _expect_frame(ws, 1.0)
        for timestamp in (10**20, int("1" + "0" * 400), 1e306, -1e20):  # beyond int64, or beyond it once x 1000
            text = json.dumps({"timestamp": timestamp}).encode()
            ws.send(len(text).to_bytes(4, "little") + text + frame)
            _expect_error(ws, "bad frame", "timestamp")
        ws.send(pack({"timestamp": 2.0}, frame))
        header = _expect_frame(ws, 2.0)
        assert (header["received"], header["delivered"], header["failed"], header["dropped"]) == (7, 2, 5, 0)


@pytest.mark.slow
def test_a_frame_too_large_for_jpeg_is_refused_before_inference_and_not_blamed_on_the_next(server: ServerProcess):
    wide = encode(np.full((16, 70000, 3), 128, np.uint8))  # a PNG: JPEG holds at most 65500 px per side
    with connect(server, "effect=blur") as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        ws.send(pack({"timestamp": 1.0}, wide))
        error = _expect_error(ws, "65500")
        assert error["timestamp"] == 1.0
        ws.send(pack({"timestamp": 2.0}, encode(SMALL, "JPEG")))
        header = _expect_frame(ws, 2.0)
        assert (header["received"], header["delivered"], header["failed"], header["dropped"]) == (2, 1, 1, 0)


@pytest.mark.slow
def test_recolor_strength_is_checked_at_connect(server: ServerProcess):
    with connect(server, "effect=recolor&strength=5") as ws:
        error = json.loads(ws.recv(timeout=30))
        assert error["type"] == "error" and "strength" in error["message"] and "[0, 1]" in error["message"]
        with pytest.raises(Exception, match="1008"):
            ws.recv(timeout=10)
    with connect(server, "effect=blur&strength=5") as ws:  # blur's strength is a sigma in pixels
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"


@pytest.mark.slow
def test_unicode_digits_in_categories_close_the_socket_with_the_reason(server: ServerProcess):
    with connect(server, "categories=%C2%B2") as ws:  # '²' passes str.isdigit but not int()
        error = json.loads(ws.recv(timeout=30))
        assert error["type"] == "error" and "category" in error["message"]
        with pytest.raises(Exception, match="1008"):
            ws.recv(timeout=10)


@pytest.mark.slow
def test_an_empty_frame_says_where_the_image_goes(server: ServerProcess):
    with connect(server, "effect=mask") as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        ws.send(pack({"timestamp": 1.0}, b""))
        error = _expect_error(ws, "frame is empty", "header")
        assert "multipart" not in error["message"] and "body" not in error["message"]
