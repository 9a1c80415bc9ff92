"""The HTTP API against the inputs a fuzzer found: odd digits, 16-bit images, outputs too large for their format,
aborted uploads, a model as a form field, unusual multipart headers and very long values."""

from __future__ import annotations

import io
import socket
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.serve.conftest import ServerProcess, decode, encode
from tests.serve.test_http import post

if TYPE_CHECKING:
    import httpx


def _tiff(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(values).save(buffer, format="TIFF")
    return buffer.getvalue()


def _ramp16() -> np.ndarray:
    """A 0..65535 horizontal ramp, 16 bits per pixel."""
    return np.tile(np.linspace(0, 65535, 512).round().astype(np.uint16), (8, 1))


def test_16_bit_and_32_bit_gray_are_scaled_to_8_bits_not_clipped():
    from segkit.serve.images import ApiError, decode_image

    ramp = _ramp16()
    png = encode(ramp)
    assert PILImage.open(io.BytesIO(png)).mode == "I;16"
    expected = ((ramp.astype(np.int64) + 128) // 257).astype(np.uint8)
    for data in (png, _tiff(ramp.astype(np.int32))):  # I;16 PNG, 32-bit I TIFF
        pixels = decode_image(data, 10**6).pixels
        assert pixels.shape == (8, 512, 3) and pixels.dtype == np.uint8
        np.testing.assert_array_equal(pixels[:, :, 0], expected)
        np.testing.assert_array_equal(pixels[:, :, 2], expected)
    for bad in (np.array([[0, 70000]], np.int32), np.array([[-5, 10]], np.int32)):
        with pytest.raises(ApiError) as caught:
            decode_image(_tiff(bad), 10**6)
        assert caught.value.status == 400 and "0..65535" in caught.value.message


def test_postscript_uploads_never_reach_ghostscript(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's EPS plugin runs Ghostscript on the file: an upload in a format outside the allow-list is refused
    before any plugin but the identifying ones sees it (the fuzz run found EPS reaching that plugin)."""
    from PIL import EpsImagePlugin

    from segkit.serve.images import ApiError, decode_image

    calls: list[object] = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *args, **kwargs: calls.append(args))
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), "red").save(buffer, format="EPS")
    with pytest.raises(ApiError) as caught:
        decode_image(buffer.getvalue(), 10**6)
    assert caught.value.status == 400 and "accepted format" in caught.value.message and "PNG" in caught.value.message
    assert calls == []
    assert decode_image(encode(np.zeros((4, 4, 3), np.uint8)), 10**6).pixels.shape == (4, 4, 3)


def test_output_size_limits_are_also_checked_when_encoding():
    from segkit.serve.images import ApiError, encode_image

    wide = np.zeros((2, 16384, 3), np.uint8)
    with pytest.raises(ApiError, match="16383"):
        encode_image(wide, "webp")
    with pytest.raises(ApiError, match="65500"):
        encode_image(np.zeros((65501, 1), np.uint8), "jpeg")
    assert encode_image(wide, "jpeg")[1] == "image/jpeg"


def test_long_values_are_cut_short_in_messages():
    from segkit.serve import ops
    from segkit.serve.images import ApiError

    with pytest.raises(ApiError) as caught:
        ops.check_options(ops.EffectOptions("blur", categories="x" * 60000), ["selfie"])
    assert caught.value.status == 400 and len(caught.value.message) < 300 and "60000 characters" in caught.value.message
    with pytest.raises(ApiError) as caught:
        ops.check_options(ops.EffectOptions("recolor", color="#" + "f" * 60000), ["hair"])
    assert len(caught.value.message) < 300
    with pytest.raises(ApiError, match="not a class"):  # 5000 digits: int() itself would refuse it with ValueError
        ops.check_options(ops.EffectOptions("blur", categories="1" * 5000), ["selfie"])


# --- against the server ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        "/v1/blur?categories=%C2%B2",
        "/v1/segment?model=deeplabv3&categories=%E2%91%A0",
        "/v1/recolor?color=1,2,%C2%B3",
        "/api/remove?bgc=%C2%B2,0,0,0",
    ],
)
def test_unicode_digits_are_a_400_not_a_500(server: ServerProcess, astronaut_png: bytes, path: str):
    response = post(server, path, astronaut_png)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert any(name in detail for name in ("category", "color", "bgc")), detail


@pytest.mark.slow
def test_16_bit_gray_upload_is_processed_as_its_8_bit_image(server: ServerProcess):
    ramp = _ramp16()
    out = post(server, "/v1/blur?strength=0&format=png", encode(ramp))  # strength 0: the decoded image comes back
    assert out.status_code == 200, out.text
    pixels = decode(out.content)
    assert pixels.shape == (8, 512, 3)
    assert (pixels == 255).mean() < 0.05, "the 16-bit image was clipped to white"
    assert abs(float(pixels.mean()) - 127.5) < 1


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "limit"), [("jpeg", 65500), ("webp", 16383)])
def test_output_too_large_for_its_format_is_a_400_naming_the_limit(server: ServerProcess, fmt: str, limit: int):
    wide = encode(np.full((16, 70000, 3), 128, np.uint8))
    response = post(server, f"/v1/blur?format={fmt}", wide)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert str(limit) in detail and "png" in detail and "70000x16" in detail


def _log_after(server: ServerProcess, offset: int, wait: float = 1.0) -> str:
    time.sleep(wait)
    return server.log.read_bytes()[offset:].decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["raw", "multipart", "chunked"])
def test_a_client_hanging_up_mid_upload_is_not_an_internal_error(server: ServerProcess, kind: str):
    import httpx

    offset = len(server.log.read_bytes())
    body = b"\xff\xd8" + b"\0" * 50000
    if kind == "raw":
        head = f"Content-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        part = body[:1000]
    elif kind == "multipart":
        start = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        length = len(start) + 50000
        head = f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {length}\r\n\r\n".encode()
        part = start + body[:1000]
    else:
        head = b"Content-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
        part = b"%x\r\n" % 1000 + body[:1000] + b"\r\n"
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/blur HTTP/1.1\r\nHost: x\r\n" + head + part)
        time.sleep(0.3)
    log = _log_after(server, offset)
    assert "Traceback" not in log and "unexpected error" not in log, log
    assert httpx.get(f"{server.url}/healthz").json()["in_flight"]["selfie_segmenter"] == 0


def _form(server: ServerProcess, path: str, png: bytes, **fields: str) -> httpx.Response:
    import httpx

    return httpx.post(f"{server.url}{path}", files={"file": ("a.png", png)}, data=fields, timeout=60)


@pytest.mark.slow
def test_a_model_form_field_is_refused_unless_it_is_the_query_model(server: ServerProcess, astronaut_png: bytes):
    for path in ("/v1/segment", "/v1/blur"):
        for name in ("hair_segmenter", "no_such_model"):
            response = _form(server, path, astronaut_png, model=name)
            assert response.status_code == 400, response.text
            assert "query parameter" in response.json()["detail"]
    same = _form(server, "/v1/segment?model=hair_segmenter", astronaut_png, model="hair_segmenter")
    assert same.status_code == 200 and same.headers["x-segkit-model"] == "hair_segmenter"


@pytest.mark.slow
def test_rembg_model_form_field(server: ServerProcess, astronaut_png: bytes):
    """rembg names mean the default cutout model; a served model other than the query's is refused with a hint to
    pass it as a query parameter; an unknown name is the query parameter's 404."""
    for name in ("u2net", "isnet-general-use", "selfie_segmenter"):
        response = _form(server, "/api/remove", astronaut_png, model=name)
        assert response.status_code == 200, (name, response.text)
        assert response.headers["x-segkit-model"] == "selfie_segmenter"
    other = _form(server, "/api/remove", astronaut_png, model="hair_segmenter")
    assert other.status_code == 400 and "/api/remove?model=hair_segmenter" in other.json()["detail"]
    unknown = _form(server, "/api/remove", astronaut_png, model="no_such_model")
    query = post(server, "/api/remove?model=no_such_model", astronaut_png)
    assert unknown.status_code == query.status_code == 404
    assert unknown.json() == query.json()
    by_query = _form(server, "/api/remove?model=hair_segmenter", astronaut_png, model="hair_segmenter")
    assert by_query.status_code == 200 and by_query.headers["x-segkit-model"] == "hair_segmenter"


@pytest.mark.slow
def test_multipart_oddities(server: ServerProcess, astronaut_png: bytes):
    import httpx

    # a) media types are case-insensitive
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        + astronaut_png
        + b"\r\n--xyz--\r\n"
    )
    upper = httpx.post(
        f"{server.url}/v1/blur", content=body, headers={"Content-Type": "Multipart/Form-Data; boundary=xyz"}, timeout=60
    )
    assert upper.status_code == 200, upper.text
    # b) an empty background upload: the message names the field, not the body
    files = {"file": ("a.png", astronaut_png), "background": ("b.png", b"")}
    empty = httpx.post(f"{server.url}/v1/replace", files=files, timeout=60)
    assert empty.status_code == 400 and "'background'" in empty.json()["detail"]
    assert "body" not in empty.json()["detail"]
    # d) a background image where the effect uses none is refused, undecoded (even when it is garbage)
    files = {"file": ("a.png", astronaut_png), "background": ("b.png", b"not an image")}
    for effect in ("blur", "cutout", "recolor", "overlay"):
        unused = httpx.post(f"{server.url}/v1/{effect}", files=files, timeout=60)
        assert unused.status_code == 400 and "/v1/replace" in unused.json()["detail"], unused.text
    # e) a 60 KB value is not echoed back whole
    long = _form(server, "/v1/blur", astronaut_png, categories="x" * 60000)
    assert long.status_code == 400 and len(long.text) < 500
    for invalid in (
        _form(server, "/v1/blur", astronaut_png, refine="x" * 60000),
        post(server, "/v1/blur?refine=" + "x" * 60000, astronaut_png),
    ):
        assert invalid.status_code == 422 and len(invalid.text) < 500, invalid.text[:200]
        assert invalid.json()["detail"][0]["loc"][-1] == "refine"


@pytest.mark.slow
def test_sigterm_answers_waiting_requests_503_lets_the_running_one_finish_and_exits_0(tmp_path):
    """Stopping with one request running and two waiting for the worker: JSON answers only, no traceback."""
    import threading

    import httpx

    from tests.serve.conftest import SERVE_MODULES, require

    require(*SERVE_MODULES)
    server = ServerProcess(["--models", "deeplabv3", "--threads", "1", "--queue", "4"], tmp_path / "log")
    try:
        image = encode(np.random.default_rng(0).integers(0, 256, (1500, 1500, 3), dtype=np.uint8), "JPEG")
        answers: list[httpx.Response] = []

        def one() -> None:
            url = f"{server.url}/v1/segment?format=json&model=deeplabv3"
            answers.append(httpx.post(url, content=image, headers={"content-type": "image/jpeg"}, timeout=120))

        threads = [threading.Thread(target=one) for _ in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/healthz").json()["in_flight"]["deeplabv3"] < 3:
            assert time.monotonic() < deadline, "the three requests were never in flight together"
            time.sleep(0.05)
        time.sleep(0.3)  # the first one has the worker by now
        stopped = time.monotonic()
        assert server.stop() == 0, server.log.read_text()
        for thread in threads:
            thread.join(timeout=60)
        assert time.monotonic() - stopped < 60
        statuses = sorted(r.status_code for r in answers)
        assert len(statuses) == 3 and set(statuses) <= {200, 503} and statuses.count(200) <= 1, statuses
        assert statuses.count(503) >= 2
        for response in answers:
            assert response.headers["content-type"] == "application/json" and response.json()
        log = server.log.read_text()
        assert "Traceback" not in log and "CancelledError" not in log, log
    finally:
        server.stop()


@pytest.mark.slow
def test_legacy_models_are_served_when_named_with_the_registrys_normalization(tmp_path, astronaut_png: bytes):
    """`--models selfie_segmentation` failed to start ("requires NormalizationOptions"); with the registry's (mean,
    std) its masks are selfie_segmenter's (the same weights). A default start leaves the legacy models out."""
    from segkit.serve.config import local_models

    assert "selfie_segmentation" not in local_models() and "selfie_segmenter" in local_models()
    server = ServerProcess(
        ["--models", "selfie_segmentation,selfie_segmenter", "--workers", "1", "--threads", "1"], tmp_path / "log"
    )
    try:
        legacy = post(server, "/v1/segment?model=selfie_segmentation", astronaut_png)
        current = post(server, "/v1/segment?model=selfie_segmenter", astronaut_png)
    finally:
        assert server.stop() == 0
    assert legacy.status_code == 200 and current.status_code == 200, legacy.text
    assert legacy.headers["X-Segkit-Model"] == "selfie_segmentation"
    np.testing.assert_array_equal(decode(legacy.content), decode(current.content))
