"""The model registry: content vs the shared files, local resolution, and downloads from a local HTTP server only."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import segkit.models as models
from tests.conftest import model_dir, model_path

EXPECTED = {
    "selfie_segmenter": ((1, 256, 256, 3), 1),
    "selfie_segmenter_landscape": ((1, 144, 256, 3), 1),
    "hair_segmenter": ((1, 512, 512, 4), 2),
    "selfie_multiclass_256x256": ((1, 256, 256, 3), 6),
    "deeplab_v3": ((1, 257, 257, 3), 21),
    "deeplabv3": ((1, 257, 257, 3), 21),
    "selfie_segmentation": ((1, 256, 256, 3), 1),
    "selfie_segmentation_landscape": ((1, 144, 256, 3), 1),
}
SHARED = [
    "selfie_segmenter",
    "selfie_segmenter_landscape",
    "hair_segmenter",
    "deeplabv3",
    "selfie_segmentation",
    "selfie_segmentation_landscape",
]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuses every connection that is not to 127.0.0.1, so no test can reach the real model hosts."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"network access blocked in tests: {address}")
        real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise socket.gaierror(f"network access blocked in tests: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty per-test cache directory, and no SEGKIT_MODEL_DIR."""
    directory = tmp_path / "cache"
    monkeypatch.setattr(models, "cache_dir", lambda: directory)
    monkeypatch.delenv(models.ENV_VAR, raising=False)
    return directory


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A quiet HTTP server on 127.0.0.1 serving `tmp_path / "served"`; yields (base URL, folder)."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def _fake_entry(monkeypatch: pytest.MonkeyPatch, url: str, data: bytes, **overrides: Any) -> models.RegistryEntry:
    """Registers a model "fake" whose official URL is `url` and whose checksum is that of `data`."""
    entry = models.RegistryEntry(
        name="fake",
        file="fake.tflite",
        url=url,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        input_shape=(1, 2, 2, 3),
        output_shape=(1, 2, 2, 1),
        labels=("x",),
        description="test",
    )
    entry = dataclasses.replace(entry, **overrides)
    monkeypatch.setattr(models, "_registry", lambda: {"fake": entry, **_real_registry()})
    return entry


_real_registry = models._registry


def test_registry_names_shapes_and_labels() -> None:
    assert set(models.names()) == set(EXPECTED)
    for name, (shape, classes) in EXPECTED.items():
        entry = models.info(name)
        assert entry.name == name and entry.input_shape == shape and entry.num_classes == classes
        assert entry.output_shape == (*shape[:3], classes)
        assert entry.url.startswith("https://storage.googleapis.com/") and entry.file.endswith(".tflite")
        assert len(entry.sha256) == 64 and entry.size > 0 and entry.description


def test_registry_info_is_frozen() -> None:
    with pytest.raises(AttributeError):
        models.info("selfie_segmenter").size = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", SHARED)
def test_registry_matches_the_shared_files(name: str) -> None:
    entry = models.info(name)
    data = model_path(entry.file).read_bytes()
    assert len(data) == entry.size
    assert hashlib.sha256(data).hexdigest() == entry.sha256


@pytest.mark.parametrize("bad", ["nope", "", "selfie_segmenter.tflite"])
def test_unknown_name_lists_known_names(bad: str) -> None:
    with pytest.raises(ValueError, match=r"known models: .*selfie_segmenter.*deeplab_v3"):
        models.info(bad)
    with pytest.raises(ValueError, match="known models"):
        models.path(bad)


def test_env_var_wins(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.ENV_VAR, str(model_dir()))
    for name in SHARED:
        assert models.path(name) == model_dir() / models.info(name).file
        assert models.cached(name) == model_dir() / models.info(name).file
    assert not cache.exists(), "nothing is downloaded or created when the env var folder has the file"


def test_download_keeps_a_verified_copy_in_the_env_folder(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`segkit download NAME` offline, with the model in $SEGKIT_MODEL_DIR: that copy, no network (it went to the
    network and told the user to set the variable that was set); --force still fetches, and then fails offline."""
    monkeypatch.setenv(models.ENV_VAR, str(model_dir()))
    entry = models.info("selfie_segmenter")
    assert models.download("selfie_segmenter", progress=False) == model_dir() / entry.file
    assert not cache.exists()
    with pytest.raises(models.ModelUnavailableError) as e:
        models.download("selfie_segmenter", force=True, progress=False)
    assert f"put {entry.file} in {model_dir()}" in str(e.value) and "set SEGKIT_MODEL_DIR" not in str(e.value)
    monkeypatch.setenv(models.ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(models.ModelUnavailableError, match=r"put hair_segmenter\.tflite in "):
        models.path("hair_segmenter", download=False)


@pytest.mark.parametrize(
    ("legacy", "current"),
    [("selfie_segmentation", "selfie_segmenter"), ("selfie_segmentation_landscape", "selfie_segmenter_landscape")],
)
def test_legacy_entries_carry_the_normalization_their_files_lack(
    legacy: str, current: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The legacy files are the current models' weights without metadata: with the registry's (mean, std) they give
    the current models' masks exactly (without it a float model without metadata cannot be loaded at all)."""
    from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions
    from tests.conftest import load_rgb

    monkeypatch.setenv(models.ENV_VAR, str(model_dir()))
    assert models.info(legacy).normalization == (0.0, 255.0) and models.info(current).normalization is None
    image = load_rgb("astronaut.png")

    def mask(name: str) -> Any:
        options = ImageSegmenterOptions(
            BaseOptions(model_asset_path=str(models.path(name))), normalization=models.info(name).normalization
        )
        with ImageSegmenter.create_from_options(options) as segmenter:
            masks = segmenter.segment(image).confidence_masks
            assert masks is not None
            return masks[0].numpy_view().copy()

    assert (mask(legacy) == mask(current)).all()


def test_cache_is_used_when_verified(cache: Path) -> None:
    cache.mkdir()
    entry = models.info("selfie_segmenter")
    (cache / entry.file).write_bytes(model_path(entry.file).read_bytes())
    assert models.path("selfie_segmenter", download=False) == cache / entry.file
    (cache / entry.file).write_bytes(b"truncated")
    assert models.cached("selfie_segmenter") is None


def test_tampered_cache_copy_of_the_same_size_is_caught(cache: Path) -> None:
    cache.mkdir()
    entry = models.info("selfie_segmenter")
    file = cache / entry.file
    good = model_path(entry.file).read_bytes()
    file.write_bytes(good)
    assert models.cached("selfie_segmenter") == file
    stamp = cache / f".{entry.file}.sha256"
    assert stamp.is_file() and entry.sha256 in stamp.read_text(), "the verified hash is remembered next to the file"
    before = file.stat()
    tampered = bytearray(good)
    tampered[len(good) // 2] ^= 0xFF
    file.write_bytes(bytes(tampered))
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size and mtime: only the hash can tell
    assert models.cached("selfie_segmenter") is None
    with pytest.raises(models.ModelUnavailableError, match="no verified local copy and downloading is off"):
        models.path("selfie_segmenter", download=False)


def test_env_dir_copy_must_match_the_registry(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    entry = models.info("selfie_segmenter")
    data = bytearray(model_path(entry.file).read_bytes())
    data[100] ^= 1
    (folder / entry.file).write_bytes(bytes(data))
    monkeypatch.setenv(models.ENV_VAR, str(folder))
    with pytest.raises(models.ModelUnavailableError) as e:
        models.path("selfie_segmenter")
    message = str(e.value)
    assert "\n" not in message and str(folder / entry.file) in message and entry.sha256 in message
    assert "pass the file's path instead of the name" in message
    assert models.resolve(str(folder / entry.file)) == folder / entry.file, "a path is used as is (custom models)"
    assert not cache.exists(), "a mismatch is an error, not a reason to download"


def test_no_file_and_no_download_says_where_it_looked(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(models.ENV_VAR, str(tmp_path / "empty"))
    assert models.cached("hair_segmenter") is None
    with pytest.raises(models.ModelUnavailableError) as e:
        models.path("hair_segmenter", download=False)
    message = str(e.value)
    assert str(tmp_path / "empty" / "hair_segmenter.tflite") in message
    assert str(cache / "hair_segmenter.tflite") in message
    assert models.ENV_VAR in message and models.info("hair_segmenter").url in message
    assert "segkit download hair_segmenter" in message and "\n" not in message


def test_download_verifies_and_writes_atomically(
    cache: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = server
    data = model_path("legacy/1x256x256x3_softmax.tflite").read_bytes()
    (root / "fake.tflite").write_bytes(data)
    _fake_entry(monkeypatch, f"{base}/fake.tflite", data)
    assert models.cached("fake") is None
    got = models.path("fake")
    assert got == cache / "fake.tflite" and got.read_bytes() == data
    assert sorted(p.name for p in cache.iterdir()) == [".fake.tflite.sha256", "fake.tflite"], "no .part file left"
    (root / "fake.tflite").unlink()
    assert models.path("fake") == got, "the second call is served from the cache"


def test_download_into_a_registry_subfolder(
    cache: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registry files such as the legacy models live in a subfolder of the cache: it is created on download."""
    base, root = server
    data = model_path("legacy/1x256x256x3_softmax.tflite").read_bytes()
    (root / "fake.tflite").write_bytes(data)
    _fake_entry(monkeypatch, f"{base}/fake.tflite", data, file="legacy/fake.tflite")
    got = models.path("fake")
    assert got == cache / "legacy" / "fake.tflite" and got.read_bytes() == data
    assert not list((cache / "legacy").glob("*.part")), "no .part file left"


@pytest.mark.parametrize("corruption", ["sha256", "size"])
def test_bad_download_is_deleted(
    corruption: str, cache: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = server
    data = b"pretend model bytes" * 100
    served = data[:-1] + b"!" if corruption == "sha256" else data + b"extra"
    (root / "fake.tflite").write_bytes(served)
    _fake_entry(monkeypatch, f"{base}/fake.tflite", data)
    pattern = r"corrupt.*expected 1900 bytes" if corruption == "sha256" else r"more than the expected 1900 bytes"
    with pytest.raises(models.ModelUnavailableError, match=pattern):
        models.path("fake")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_unreachable_server_is_a_clear_error(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _fake_entry(monkeypatch, f"http://127.0.0.1:{port}/fake.tflite", b"x")
    with pytest.raises(models.ModelUnavailableError) as e:
        models.path("fake")
    message = str(e.value)
    assert str(cache / "fake.tflite") in message and models.ENV_VAR in message and "refused" in message.lower()
    assert "segkit download fake" in message and "\n" not in message
    assert e.value.__cause__ is None and e.value.__suppress_context__, "one line, no chained traceback"
    assert list(cache.iterdir()) == []


def test_http_error_is_a_clear_error(cache: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = server
    _fake_entry(monkeypatch, f"{base}/missing.tflite", b"x")
    with pytest.raises(models.ModelUnavailableError, match=r"HTTP 404.*SEGKIT_MODEL_DIR"):
        models.path("fake")


def test_real_urls_are_never_fetched_in_tests(cache: Path) -> None:
    with pytest.raises(models.ModelUnavailableError, match="network access blocked"):
        models.path("selfie_multiclass_256x256")


def test_resolve(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = model_path("selfie_segmenter.tflite")
    assert models.resolve(file) == file
    assert models.resolve(str(file)) == file
    monkeypatch.setenv(models.ENV_VAR, str(model_dir()))
    assert models.resolve("deeplabv3") == model_dir() / "deeplabv3.tflite"
    with pytest.raises(ValueError, match=r"neither an existing file nor a known model; known models: "):
        models.resolve("/no/such/model.tflite")
    with pytest.raises(models.ModelUnavailableError):
        models.resolve("deeplab_v3", download=False)


def test_registry_file_is_found_from_a_source_checkout() -> None:
    assert any(p.is_file() for p in models._REGISTRY_FILES)
    assert models._REGISTRY_FILES[0].parts[-2:] == ("_registry", "registry.json")


def test_download_without_tqdm_prints_one_line(
    cache: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base, root = server
    (root / "fake.tflite").write_bytes(b"abc")
    _fake_entry(monkeypatch, f"{base}/fake.tflite", b"abc")
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert models.path("fake").read_bytes() == b"abc"
    assert "downloading fake.tflite (3 bytes)" in capsys.readouterr().err


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    """Serves `mode`: "trickle" (a byte every 0.2 s, the right length announced), "endless" (bytes without end,
    no length) or "stall" (headers, then nothing)."""

    mode = "trickle"
    body = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        if self.mode != "endless":
            self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        try:
            if self.mode == "trickle":
                for byte in self.body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            elif self.mode == "endless":
                while True:
                    self.wfile.write(b"\0" * 65536)
            else:
                time.sleep(30)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def misbehaving() -> Iterator[tuple[str, type[_Misbehaving]]]:
    """A server on 127.0.0.1 whose handler class a test configures; yields (URL, handler class)."""
    handler = type("Handler", (_Misbehaving,), {})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/fake.tflite", handler
    httpd.shutdown()
    httpd.server_close()


def test_trickling_server_is_cut_off_by_the_overall_deadline(
    cache: Path, misbehaving: tuple[str, type[_Misbehaving]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = misbehaving
    handler.mode, handler.body = "trickle", b"x" * 100  # 20 s at a byte per 0.2 s; each read is quick
    _fake_entry(monkeypatch, url, handler.body)
    monkeypatch.setattr(models, "DOWNLOAD_DEADLINE_S", 1.0)
    start = time.monotonic()
    with pytest.raises(models.ModelUnavailableError, match=r"did not finish within 1 s"):
        models.path("fake")
    assert time.monotonic() - start < 3.0
    assert list(cache.iterdir()) == [], "no .part file left"


def test_endless_server_is_cut_off_at_the_registry_size(
    cache: Path, misbehaving: tuple[str, type[_Misbehaving]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = misbehaving
    handler.mode = "endless"
    _fake_entry(monkeypatch, url, b"y" * 200_000)
    start = time.monotonic()
    with pytest.raises(models.ModelUnavailableError, match=r"more than the expected 200000 bytes"):
        models.path("fake")
    assert time.monotonic() - start < 3.0
    assert list(cache.iterdir()) == []


def test_stalled_server_times_out(
    cache: Path, misbehaving: tuple[str, type[_Misbehaving]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = misbehaving
    handler.mode, handler.body = "stall", b"z" * 10
    _fake_entry(monkeypatch, url, handler.body)
    monkeypatch.setattr(models, "READ_TIMEOUT_S", 0.5)
    with pytest.raises(models.ModelUnavailableError, match=r"timed out"):
        models.path("fake")
    assert list(cache.iterdir()) == []


INTERRUPTED = """
import sys
import segkit.models as models
entry = models.RegistryEntry("fake", "fake.tflite", sys.argv[1], "0" * 64, 100, (1,), (1,), ("x",), "test")
models._registry = lambda: {"fake": entry}
models.cache_dir = lambda: __import__("pathlib").Path(sys.argv[2])
print("start", flush=True)
models.download("fake", progress=False)
"""


def test_interrupted_download_leaves_no_part_file(tmp_path: Path, misbehaving: tuple[str, type[_Misbehaving]]) -> None:
    url, handler = misbehaving
    handler.mode, handler.body = "trickle", b"x" * 100
    cache = tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(INTERRUPTED), url, str(cache)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "start\n"
    deadline = time.monotonic() + 10
    while not list(cache.glob(".fake.tflite.*.part")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(cache.glob(".fake.tflite.*.part")), "the download started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert list(cache.iterdir()) == [], "the .part file is removed on KeyboardInterrupt"


def test_stale_part_files_are_removed(cache: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    base, root = server
    (root / "fake.tflite").write_bytes(b"abc")
    _fake_entry(monkeypatch, f"{base}/fake.tflite", b"abc")
    cache.mkdir()
    stale, fresh = cache / ".fake.tflite.dead.part", cache / ".fake.tflite.live.part"
    stale.write_bytes(b"left by a killed run")
    fresh.write_bytes(b"another process downloading now")
    old = time.time() - models.DOWNLOAD_DEADLINE_S - 3600
    os.utime(stale, (old, old))
    assert models.download("fake", progress=False) == cache / "fake.tflite"
    assert not stale.exists() and fresh.exists()


def test_unwritable_cache_is_one_clear_line(
    tmp_path: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = server
    (root / "fake.tflite").write_bytes(b"abc")
    _fake_entry(monkeypatch, f"{base}/fake.tflite", b"abc")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setattr(models, "cache_dir", lambda: blocker / "segkit")
    monkeypatch.delenv(models.ENV_VAR, raising=False)
    with pytest.raises(models.ModelUnavailableError) as e:
        models.path("fake")
    message = str(e.value)
    assert f"the model cache {blocker / 'segkit'} is not writable" in message and "\n" not in message


def test_download_reverifies_and_force_fetches_again(
    cache: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = server
    (root / "fake.tflite").write_bytes(b"abc")
    _fake_entry(monkeypatch, f"{base}/fake.tflite", b"abc")
    target = models.download("fake", progress=False)
    assert target == cache / "fake.tflite" and target.read_bytes() == b"abc"
    (root / "fake.tflite").unlink()
    assert models.download("fake", progress=False) == target, "a verified copy is kept without a request"
    with pytest.raises(models.ModelUnavailableError, match="HTTP 404"):
        models.download("fake", force=True, progress=False)
    target.write_bytes(b"abd")  # tampered: the next download() fetches again
    (root / "fake.tflite").write_bytes(b"abc")
    assert models.download("fake", progress=False).read_bytes() == b"abc"
