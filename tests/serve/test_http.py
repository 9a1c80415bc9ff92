"""The HTTP API against a real server process: every endpoint, every bad input, the limits and the exit codes."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image as PILImage

from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions, effects
from tests.conftest import REPO, data_file, load_rgb, model_dir, model_path
from tests.serve.conftest import SERVE_MODULES, ServerProcess, decode, encode, require

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.slow

EFFECT_TYPES = {"blur": "RGB", "replace": "RGB", "recolor": "RGB", "overlay": "RGB", "cutout": "RGBA"}


def post(server: ServerProcess, path: str, data: bytes, *, raw: bool = False) -> httpx.Response:
    """POST an image as multipart field ``file`` (or as the raw body)."""
    import httpx

    url = f"{server.url}{path}"
    if raw:
        return httpx.post(url, content=data, headers={"content-type": "image/png"}, timeout=60)
    return httpx.post(url, files={"file": ("photo.png", data, "image/png")}, timeout=60)


def test_healthz_and_models(server):
    import httpx

    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok"
    assert health["models"] == ["selfie_segmenter", "hair_segmenter", "deeplabv3"]
    assert health["live_sessions"] == 0
    listing = httpx.get(f"{server.url}/v1/models").json()
    by_name = {m["name"]: m for m in listing["models"]}
    assert by_name["selfie_segmenter"]["labels"] == ["selfie"]
    assert by_name["selfie_segmenter"]["input"] == {"height": 256, "width": 256, "channels": 3}
    assert by_name["hair_segmenter"]["input"] == {"height": 512, "width": 512, "channels": 4}
    assert by_name["deeplabv3"]["labels"][15] == "person" and len(by_name["deeplabv3"]["labels"]) == 21
    assert listing["defaults"]["blur"] == "selfie_segmenter"
    assert listing["defaults"]["recolor"] == "hair_segmenter"
    assert listing["defaults"]["overlay"] == "deeplabv3"


def test_blur_is_the_library_result(server, astronaut_png):
    """The server's PNG is bit for bit what the public library computes for the same image and options."""
    response = post(server, "/v1/blur?strength=9", astronaut_png)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    rgb = load_rgb("astronaut.png")
    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model_path("selfie_segmenter.tflite"))), num_threads=1
    )
    with ImageSegmenter.create_from_options(options) as segmenter:
        alpha = effects.subject_mask(segmenter.segment(rgb), segmenter=segmenter)
    expected = effects.blur_background(rgb, alpha, strength=9)
    np.testing.assert_array_equal(decode(response.content), expected)


@pytest.mark.parametrize("raw", [False, True], ids=["multipart", "raw-body"])
@pytest.mark.parametrize("effect", sorted(EFFECT_TYPES))
def test_effects(server, astronaut_png, effect, raw):
    response = post(server, f"/v1/{effect}", astronaut_png, raw=raw)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"  # "auto": the input's format
    out = decode(response.content)
    rgb = load_rgb("astronaut.png")
    assert out.shape[:2] == rgb.shape[:2]
    assert PILImage.open(io.BytesIO(response.content)).mode == EFFECT_TYPES[effect]
    if effect != "cutout":  # a cutout keeps the colors and sets the alpha (checked below)
        assert not np.array_equal(out[:, :, :3], rgb), f"{effect} changed nothing"
    categories = json.loads(response.headers["x-segkit-categories"])
    assert abs(sum(c["fraction"] for c in categories) - 1) < 0.01
    if effect == "cutout":
        alpha = out[:, :, 3]
        assert alpha[0, 0] == 0 and alpha[256, 256] == 255  # the wall behind her is gone, her suit stays
    if effect == "replace":
        np.testing.assert_allclose(out[5, 5], (0, 177, 64), atol=2)  # the default green screen
    if effect == "overlay":
        assert response.headers["x-segkit-model"] == "deeplabv3"
        assert "person" in [c["label"] for c in categories]


def test_effect_options_and_formats(server, astronaut_png):
    response = post(server, "/v1/replace?background=%23ff0000&format=jpeg&quality=80", astronaut_png)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert np.abs(decode(response.content)[5, 5].astype(int) - (255, 0, 0)).max() < 12
    # Form fields work like query parameters.
    import httpx

    form = httpx.post(
        f"{server.url}/v1/recolor",
        files={"file": ("a.png", astronaut_png, "image/png")},
        data={"color": "#0000ff", "strength": "1"},
        timeout=60,
    )
    query = post(server, "/v1/recolor?color=%230000ff&strength=1", astronaut_png)
    assert form.status_code == query.status_code == 200
    assert form.content == query.content
    # A background image as the multipart field 'background'.
    background = encode(np.full((100, 200, 3), (10, 20, 250), np.uint8))
    replaced = httpx.post(
        f"{server.url}/v1/replace",
        files={"file": ("a.png", astronaut_png, "image/png"), "background": ("b.png", background, "image/png")},
        timeout=60,
    )
    assert replaced.status_code == 200
    np.testing.assert_allclose(decode(replaced.content)[5, 5], (10, 20, 250), atol=3)
    hair = post(server, "/v1/blur?model=hair_segmenter&categories=hair&refine=feather&refine_radius=6", astronaut_png)
    assert hair.status_code == 200 and hair.headers["x-segkit-model"] == "hair_segmenter"


def test_segment_png_and_json(server, astronaut_png):
    alpha = post(server, "/v1/segment", astronaut_png)
    assert alpha.status_code == 200 and alpha.headers["content-type"] == "image/png"
    mask = decode(alpha.content)
    assert mask.ndim == 2 and mask[0, 0] < 10 and mask[256, 256] > 245  # white = the person
    category = decode(post(server, "/v1/segment?masks=category", astronaut_png).content)
    assert set(np.unique(category).tolist()) <= {0, 255} and category[256, 256] == 0  # MediaPipe's selfie mask
    doc = post(server, "/v1/segment?format=json&model=deeplabv3", astronaut_png).json()
    assert doc["labels"][15] == "person" and (doc["width"], doc["height"]) == (512, 512)
    present = {c["label"]: c["fraction"] for c in doc["categories"]}
    assert present["person"] > 0.3
    classes = decode(base64.b64decode(doc["category_mask"]))
    assert classes[256, 256] == 15
    person = decode(base64.b64decode(doc["confidence_masks"][15]["png"]))
    assert doc["confidence_masks"][15]["label"] == "person" and person[256, 256] > 200
    assert len(doc["confidence_masks"]) == 21


def test_rembg_compatible_remove(server, astronaut_png):
    """rembg's client call (multipart 'file', form field 'model' with a rembg model name) gets an RGBA cutout."""
    import httpx

    cut = httpx.post(
        f"{server.url}/api/remove", files={"file": ("a.png", astronaut_png)}, data={"model": "u2net"}, timeout=60
    )
    assert cut.status_code == 200 and cut.headers["content-type"] == "image/png"
    rgba = decode(cut.content)
    assert rgba.shape == (512, 512, 4) and rgba[0, 0, 3] == 0 and rgba[256, 256, 3] == 255
    only_mask = decode(post(server, "/api/remove?om=true", astronaut_png).content)
    assert only_mask.ndim == 2 and only_mask[256, 256] == 255
    on_red = decode(post(server, "/api/remove?bgc=255,0,0,255", astronaut_png).content)
    assert tuple(on_red[0, 0]) == (255, 0, 0, 255)
    raw = post(server, "/api/remove?a=true&ppm=true", astronaut_png, raw=True)
    assert raw.status_code == 200 and decode(raw.content).shape == (512, 512, 4)


def _bomb() -> bytes:
    """A 25-megapixel PNG that compresses to a few kilobytes: over the test server's 4-megapixel limit."""
    return encode(np.zeros((5000, 5000), np.uint8), "PNG", optimize=True)


def _chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


BAD_INPUTS = {
    # name: (path, body maker, raw?, expected status)
    "garbage": ("/v1/blur", lambda png: b"this is not an image" * 10, True, 400),
    "empty": ("/v1/blur", lambda png: b"", True, 400),
    "truncated": ("/v1/blur", lambda png: png[: len(png) // 2], False, 400),
    "bomb": ("/v1/blur", lambda png: _bomb(), False, 413),
    "too-large": ("/v1/blur", lambda png: os.urandom(4 * 1024 * 1024), True, 413),
    "unknown-model": ("/v1/blur?model=u2net", lambda png: png, False, 404),
    "unknown-effect": ("/v1/explode", lambda png: png, False, 404),
    "bad-number": ("/v1/blur?strength=lots", lambda png: png, False, 422),
    "out-of-range": ("/v1/overlay?alpha=3", lambda png: png, False, 422),
    "unknown-parameter": ("/v1/blur?strenght=3", lambda png: png, False, 422),
    "bad-color": ("/v1/recolor?color=octarine", lambda png: png, False, 400),
    "bad-category": ("/v1/blur?categories=dog", lambda png: png, False, 400),
    "jpeg-cutout": ("/v1/cutout?format=jpeg", lambda png: png, False, 400),
    "bad-bgc": ("/api/remove?bgc=red", lambda png: png, False, 400),
    "segment-garbage": ("/v1/segment?format=json", lambda png: b"\x89PNG\r\n\x1a\n" + b"\0" * 64, True, 400),
    "remove-empty": ("/api/remove", lambda png: b"", True, 400),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_get_json_4xx(server, astronaut_png, case):
    path, make, raw, status = BAD_INPUTS[case]
    response = post(server, path, make(astronaut_png), raw=raw)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]


def test_bad_requests_of_other_shapes(server, astronaut_png):
    import httpx

    url = f"{server.url}/v1/blur"
    no_file = httpx.post(url, files={"image": ("a.png", astronaut_png)}, timeout=30)
    assert no_file.status_code == 400 and "'file'" in no_file.json()["detail"]
    text_field = httpx.post(url, data={"file": "hello"}, files={"x": ("x", b"x")}, timeout=30)
    assert text_field.status_code == 400
    broken = httpx.post(
        url, content=b"--xyz\r\nnonsense", headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert 400 <= broken.status_code < 500
    assert httpx.get(url).status_code == 405
    chunked = httpx.post(url, content=_chunks(os.urandom(4 * 1024 * 1024)), timeout=30)  # no Content-Length
    assert chunked.status_code == 413 and chunked.json()["detail"]
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"


def test_openapi_docs(server):
    import httpx

    schema = httpx.get(f"{server.url}/openapi.json").json()
    for path in ("/healthz", "/v1/models", "/v1/segment", "/v1/blur", "/v1/replace", "/v1/cutout", "/v1/recolor"):
        assert path in schema["paths"], path
    assert "/api/remove" in schema["paths"] and "/v1/overlay" in schema["paths"]
    blur = schema["paths"]["/v1/blur"]["post"]
    assert {p["name"] for p in blur["parameters"]} >= {"model", "strength", "categories", "refine", "format"}
    assert "multipart/form-data" in blur["requestBody"]["content"]
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_page_is_served_and_offline(server):
    import httpx

    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert httpx.get(f"{server.url}{asset}").status_code == 200, asset
    static = Path(__file__).resolve().parents[2] / "segkit" / "serve" / "static"
    for file in static.iterdir():
        assert not re.search(r"https?://|//cdn|@import", file.read_text()), f"{file.name} loads something remote"


def test_timeout_gives_504_and_frees_the_worker(tmp_path):
    require(*SERVE_MODULES)
    import httpx

    server = ServerProcess(["--models", "deeplabv3", "--timeout", "0.15", "--threads", "1"], tmp_path / "log")
    try:
        with PILImage.open(data_file("cat_large.jpg")) as im:
            big = encode(np.asarray(im.convert("RGB").resize((2048, 1250))), "JPEG")
        response = httpx.post(f"{server.url}/v1/overlay", content=big, timeout=60)
        assert response.status_code == 504, response.text
        assert "timeout" in response.json()["detail"]
        for _ in range(100):
            if httpx.get(f"{server.url}/healthz").json()["in_flight"]["deeplabv3"] == 0:
                break
        assert httpx.get(f"{server.url}/healthz").json()["in_flight"]["deeplabv3"] == 0
    finally:
        server.stop()


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segkit.serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SEGKIT_MODEL_DIR": str(model_dir()), **(env or {})},
    )


def test_command_line_errors(tmp_path):
    require(*SERVE_MODULES)
    unknown = _serve("--models", "u2net")
    assert unknown.returncode == 2 and "u2net" in unknown.stderr and "Traceback" not in unknown.stderr
    assert _serve("--workers", "0").returncode == 2
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"TFL3" * 100)
    bad_model = _serve("--models", str(corrupt))
    assert bad_model.returncode == 3 and "cannot load" in bad_model.stderr and "Traceback" not in bad_model.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = _serve("--models", "selfie_segmenter", "--port", str(port))
    assert busy.returncode == 1 and "cannot listen" in busy.stderr
    blocked = "import sys; sys.modules['fastapi'] = None; from segkit.serve import main; sys.exit(main([]))"
    no_extra = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60)
    assert no_extra.returncode == 3 and "pip install 'segkit[serve]'" in no_extra.stderr
    console = REPO / ".venv" / "bin" / "segkit"
    script = [str(console)] if console.exists() else [sys.executable, "-m", "segkit"]
    shown = subprocess.run([*script, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--workers" in shown.stdout and "127.0.0.1" in shown.stdout


def test_console_script_binds_to_loopback_and_stops_on_interrupt(tmp_path):
    """``segkit serve`` as users run it: 127.0.0.1 only without --host; Ctrl-C shuts it down and frees the port."""
    require(*SERVE_MODULES)
    console = REPO / ".venv" / "bin" / "segkit"
    program = [str(console), "serve"] if console.exists() else [sys.executable, "-m", "segkit", "serve"]
    server = ServerProcess(["--models", "selfie_segmenter"], tmp_path / "log", program)
    try:
        assert f"http://127.0.0.1:{server.port}/" in server.log.read_text()
        connections = Path("/proc/net/tcp").read_text().splitlines()[1:]
        listening = [c.split()[1] for c in connections if c.split()[3] == "0A"]  # state LISTEN
        ours = [a for a in listening if int(a.split(":")[1], 16) == server.port]
        assert ours == ["0100007F:" + f"{server.port:04X}"], ours  # 127.0.0.1, little-endian hex
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=30) == 0, server.log.read_text()
        assert "Traceback" not in server.log.read_text()
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", server.port)) != 0, "the port is still open"
    finally:
        server.stop()


def test_corrupted_images_never_get_5xx(server, photo_640):
    """Bit flips, overwritten headers and cut files of a real JPEG and PNG: always 200 or a JSON 4xx."""
    import httpx

    rng = np.random.default_rng(16)
    originals = [encode(photo_640, "JPEG", quality=80), encode(photo_640[:240, :320], "PNG")]
    statuses = []
    with httpx.Client(timeout=60) as http:
        for original in originals:
            for _ in range(12):
                data = bytearray(original)
                kind = rng.integers(3)
                if kind == 0:  # random bit flips
                    for pos in rng.integers(0, len(data), 20):
                        data[pos] ^= 1 << int(rng.integers(8))
                elif kind == 1:  # garbage over part of the header
                    start = int(rng.integers(0, 200))
                    data[start : start + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
                else:  # cut short
                    data = data[: int(rng.integers(1, len(data)))]
                r = http.post(f"{server.url}/v1/blur", content=bytes(data), headers={"content-type": "image/jpeg"})
                statuses.append(r.status_code)
                assert r.status_code == 200 or (400 <= r.status_code < 500 and r.json()["detail"]), r.text
    assert 400 in statuses  # some of them really were broken
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"


def test_rembg_url_variant_is_refused_clearly(server):
    import httpx

    r = httpx.get(f"{server.url}/api/remove", params={"url": "http://127.0.0.1:1/x.png"})
    assert r.status_code == 400 and "POST" in r.json()["detail"]


def test_listening_socket_lets_asyncio_disable_nagle():
    """asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; without it every keep-alive response
    waited ~40 ms for the client's delayed ACK (measured: /healthz 44 ms per request, 1 ms with it)."""
    import asyncio

    from segkit.serve import _listen

    seen: list[int] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    async def until_accepted() -> None:
        for _ in range(500):  # at most ~5 s
            if seen:
                return
            await asyncio.sleep(0.01)

    loop = asyncio.new_event_loop()
    listener = _listen("127.0.0.1", 0)
    try:
        server = loop.run_until_complete(asyncio.start_server(accepted, sock=listener))
        with socket.create_connection(listener.getsockname()[:2]):
            loop.run_until_complete(until_accepted())
        server.close()
    finally:
        loop.close()
        listener.close()
    assert seen and seen[0] != 0
