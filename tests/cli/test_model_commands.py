"""``segkit models``, ``info`` and ``download`` against a local HTTP server on 127.0.0.1, and the one-line exit 3
when a model cannot be had offline."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from segkit import models
from tests.cli.conftest import SCRIPT, cli_env
from tests.cli.conftest import segkit as run
from tests.conftest import model_dir

# Loaded by the child's interpreter at start-up (PYTHONPATH): sends the registry's official URLs to the local server.
REDIRECT = """
import os, urllib.request
_open = urllib.request.OpenerDirector.open
def _local(self, url, *args, **kwargs):
    if isinstance(url, str) and url.startswith("https://storage.googleapis.com/"):
        url = os.environ["SEGKIT_TEST_SERVER"] + url[len("https://storage.googleapis.com"):]
    return _open(self, url, *args, **kwargs)
urllib.request.OpenerDirector.open = _local
"""


@pytest.fixture()
def server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A server on 127.0.0.1 answering each URL path with the bytes put in the dict (404 otherwise)."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(urllib.parse.urlsplit(self.path).path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()
    httpd.server_close()


def offline_env(tmp_path: Path, server_url: str) -> dict[str, str]:
    """No local models, an empty cache, and every download sent to ``server_url``."""
    (tmp_path / "site").mkdir(exist_ok=True)
    (tmp_path / "site" / "sitecustomize.py").write_text(REDIRECT)
    (tmp_path / "empty").mkdir(exist_ok=True)
    return {
        "PYTHONPATH": str(tmp_path / "site"),
        "SEGKIT_TEST_SERVER": server_url,
        "SEGKIT_MODEL_DIR": str(tmp_path / "empty"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def official_path(name: str) -> str:
    return urllib.parse.urlsplit(models.info(name).url).path


@pytest.mark.slow
def test_models_lists_the_registry_and_local_files() -> None:
    done = run("models")
    assert done.code == 0, done.err
    text = done.out.decode()
    assert str(model_dir() / "selfie_segmenter.tflite") in text
    assert "not cached (segkit download selfie_multiclass_256x256)" in text
    lines = text.splitlines()
    starts = {line.index(where) for line in lines[::2] for where in (line.split()[1],)}  # the second column
    assert len(starts) == 1 and all(line[: min(starts)].strip() == "" for line in lines[1::2])  # one column for all


@pytest.mark.slow
def test_info_prints_the_metadata() -> None:
    done = run("info", "deeplabv3")
    assert done.code == 0, done.err
    assert "deeplabv3.tflite" in done.out.decode() and "257" in done.out.decode()


@pytest.mark.slow
def test_download_fetches_verifies_and_keeps(tmp_path: Path, server: tuple[str, dict[str, bytes]]) -> None:
    url, files = server
    for name in ("selfie_segmenter", "hair_segmenter"):
        files[official_path(name)] = (model_dir() / models.info(name).file).read_bytes()
    env = offline_env(tmp_path, url)
    done = run("download", "selfie_segmenter", "hair_segmenter", "-q", env=env)
    assert done.code == 0, done.err
    cached = [Path(line) for line in done.out.decode().split()]
    assert [p.name for p in cached] == ["selfie_segmenter.tflite", "hair_segmenter.tflite"]
    assert all(p.read_bytes() == (model_dir() / p.name).read_bytes() for p in cached)
    assert str(tmp_path / "cache") in str(cached[0])
    files.clear()  # offline from now on: the verified copies serve
    again = run("download", "selfie_segmenter", env=env)
    assert again.code == 0 and Path(again.out.decode().strip()) == cached[0]
    blurred = run("blur", model_dir().parent / "testdata" / "cat.jpg", "-o", tmp_path / "b.jpg", env=env)
    assert blurred.code == 0, blurred.err


@pytest.mark.slow
def test_corrupt_download_is_exit_3(tmp_path: Path, server: tuple[str, dict[str, bytes]]) -> None:
    url, files = server
    files[official_path("selfie_segmenter")] = b"x" * 1000
    done = run("download", "selfie_segmenter", env=offline_env(tmp_path, url))
    assert done.code == 3
    assert "selfie_segmenter" in done.err and "Traceback" not in done.err
    assert not list((tmp_path / "cache").rglob("*.tflite"))


def test_unavailable_model_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on: the connection is refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    image = tmp_path / "p.jpg"
    image.write_bytes((model_dir().parent / "testdata" / "cat.jpg").read_bytes())
    done = run("blur", image, env=offline_env(tmp_path, f"http://127.0.0.1:{port}"))
    assert done.code == 3
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.err
    assert "'selfie_segmenter'" in lines[0] and "SEGKIT_MODEL_DIR" in lines[0]
    assert "segkit download selfie_segmenter" in lines[0] and str(tmp_path / "empty") in lines[0]
    assert not image.with_name("p.blur.jpg").exists()


@pytest.mark.parametrize("args", [["models"], ["info", "deeplabv3"]])
def test_a_closed_pipe_is_one_line_not_a_traceback(args: list[str]) -> None:
    """``segkit models | head -1``: the reader is gone before the first write; exit 1 with one line."""
    with subprocess.Popen([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env()) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1
    assert err.strip().splitlines() == ["segkit: error: standard output was closed before everything was written"]
