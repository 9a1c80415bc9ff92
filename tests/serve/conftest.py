"""A real ``segkit serve`` process on 127.0.0.1 for the server tests, and helpers to talk to it.

The serve extra (fastapi, uvicorn, python-multipart, websockets) and httpx are installed in CI through the test
extra; outside CI a test whose package is missing skips saying which, with ``CI`` set it fails.
"""

from __future__ import annotations

import importlib.util
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.conftest import data_file, model_dir

SERVE_MODULES = ("fastapi", "uvicorn", "multipart", "websockets", "httpx")
TEST_MODELS = "selfie_segmenter,hair_segmenter,deeplabv3"


def require(*modules: str) -> None:
    """Skip (outside CI) or fail (CI set) unless every module can be imported."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        why = f"needs {', '.join(missing)} (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI installs it, so its absence is an error", pytrace=False)
        pytest.skip(why)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``python -m segkit.serve`` in a subprocess, with its log in a file; ``url`` once ``/healthz`` answers."""

    def __init__(self, args: Sequence[str], log: Path, program: Sequence[str] = (sys.executable, "-m", "segkit.serve")):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "SEGKIT_MODEL_DIR": str(model_dir())}
        command = [*program, "--port", str(self.port), *args]
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"segkit serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"segkit serve did not answer /healthz within {timeout} s:\n{self.log.read_text()}")

    def rss_mb(self) -> float:
        """The server's resident memory in MB (from /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS in /proc status")

    def stop(self) -> int:
        """SIGTERM (uvicorn's graceful shutdown), then the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the session: three models, one worker and two waiting places per model, small limits."""
    require(*SERVE_MODULES)
    log = tmp_path_factory.mktemp("serve") / "server.log"
    args = ["--models", TEST_MODELS, "--workers", "1", "--queue", "2", "--threads", "1"]
    args += ["--max-upload-mb", "3", "--max-megapixels", "4", "--max-live", "2"]
    proc = ServerProcess(args, log)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def astronaut_png() -> bytes:
    return data_file("astronaut.png").read_bytes()


@pytest.fixture(scope="session")
def photo_640() -> np.ndarray:
    """A real portrait at 640x480 (the benchmark size)."""
    with PILImage.open(data_file("astronaut.png")) as im:
        return np.asarray(im.convert("RGB").resize((640, 480), PILImage.Resampling.BILINEAR))


def encode(pixels: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    """Pixels as image file bytes."""
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    """Image file bytes as an array in the file's own mode (L, RGB or RGBA)."""
    with PILImage.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def artifacts_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``$SEGKIT_TEST_ARTIFACTS`` (kept by CI) or the test's tmp_path."""
    folder = Path(os.environ.get("SEGKIT_TEST_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
