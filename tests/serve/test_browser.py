"""The Try-it page in real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

The camera is Chromium's fake capture device playing a y4m clip made from a real photo, so the camera mode runs
the whole path: getUserMedia -> JPEG frames -> WS /v1/live -> processed frames drawn on the page's canvas. The
checks read canvas pixels; screenshots of both modes go to ``$SEGKIT_TEST_ARTIFACTS`` (default: tmp_path).
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.conftest import data_file
from tests.serve.conftest import ServerProcess, artifacts_dir, decode, require

pytestmark = pytest.mark.slow

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
GREEN = np.array([0, 177, 64])


def _find(candidates: tuple[str, ...], name: str) -> str | None:
    return next((c for c in candidates if os.path.exists(c)), None) or shutil.which(name)


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 15) -> None:
    """A 4:2:0 y4m clip showing ``rgb`` (even width and height) for ``frames`` frames."""
    ycc = np.asarray(PILImage.fromarray(rgb).convert("YCbCr"))
    h, w = rgb.shape[:2]
    planes = ycc[:, :, 0].tobytes()
    for c in (1, 2):  # chroma averaged over 2x2 blocks
        chroma = ycc[:, :, c].astype(np.float32).reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        planes += np.rint(chroma).astype(np.uint8).tobytes()
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + planes)


@pytest.fixture
def browser(tmp_path: Path, photo_640: np.ndarray) -> Iterator[Any]:
    """Headless Chromium with a fake camera, as the machine needs it (no sandbox, no GPU, no network services)."""
    require("selenium")
    chromium, driver = _find(CHROMIUM, "chromium"), _find(DRIVER, "chromedriver")
    if chromium is None or driver is None:
        why = "needs Debian's chromium and chromium-driver (scripts/test.sh installs them as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI installs them, so their absence is an error", pytrace=False)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    clip = tmp_path / "clip.y4m"
    write_y4m(clip, photo_640)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1280,900",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
    ):  # fmt: skip
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def canvas_pixels(browser: Any, element_id: str) -> np.ndarray:
    """The canvas's RGBA pixels, read back through a lossless PNG data URL."""
    url = browser.execute_script(f"return document.getElementById('{element_id}').toDataURL('image/png')")
    return decode(base64.b64decode(url.split(",", 1)[1]))


def test_page_processes_an_upload_and_the_camera(server: ServerProcess, browser: Any, tmp_path: Path) -> None:
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    out = artifacts_dir(tmp_path)
    browser.get(f"{server.url}/")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#model option"), 20, "the model list")
    Select(browser.find_element(By.ID, "effect")).select_by_value("replace")
    assert browser.find_element(By.ID, "model").get_attribute("value") == "selfie_segmenter"

    # Image mode: the page shows exactly what the API returns for the same image and options.
    photo = tmp_path / "astronaut.png"
    shutil.copy(data_file("astronaut.png"), photo)
    browser.find_element(By.ID, "file").send_keys(str(photo))
    state = wait_for(
        lambda: (
            browser.execute_script("return document.getElementById('result').dataset.state") in ("done", "error")
            and browser.execute_script("return document.getElementById('result').dataset.state")
        ),
        60,
        "the result",
    )
    assert state == "done", browser.find_element(By.ID, "status").text
    shown = canvas_pixels(browser, "result")
    api = httpx.post(
        f"{server.url}/v1/replace?model=selfie_segmenter&background=%2300b140",
        files={"file": ("a.png", photo.read_bytes())},
        timeout=60,
    )
    expected = decode(api.content)
    assert shown.shape[:2] == expected.shape[:2] == (512, 512)
    assert np.abs(shown[:, :, :3].astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(shown[5, 5, :3].astype(int) - GREEN).max() <= 2  # the wall behind her is now green
    legend = browser.find_element(By.ID, "legend").text
    assert "selfie" in legend and "background" in legend
    browser.save_screenshot(str(out / "serve_image.png"))

    # Drag and drop: another effect, a dropped file, the DeepLab legend; a broken file shows the server's message.
    Select(browser.find_element(By.ID, "effect")).select_by_value("overlay")
    drop_file = """
        const [name, b64] = arguments;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: "image/png" }));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
    """
    browser.execute_script(drop_file, "astronaut.png", base64.b64encode(photo.read_bytes()).decode())
    wait_for(
        lambda: (
            browser.execute_script(
                "const r = document.getElementById('result'); return r.dataset.state === 'done' && r.dataset.effect"
            )
            == "overlay"
        ),
        60,
        "the dropped image's overlay",
    )
    assert "person" in browser.find_element(By.ID, "legend").text
    assert "deeplabv3" in browser.find_element(By.ID, "result-caption").text
    browser.execute_script(drop_file, "broken.png", base64.b64encode(b"not an image at all").decode())
    wait_for(
        lambda: browser.execute_script("return document.getElementById('result').dataset.state") == "error",
        30,
        "the error of a broken file",
    )
    assert "400" in browser.find_element(By.ID, "status").text
    Select(browser.find_element(By.ID, "effect")).select_by_value("replace")

    # Camera mode: the fake camera's frames come back processed (green background) with live statistics.
    browser.find_element(By.ID, "camera-start").click()
    wait_for(
        lambda: int(browser.execute_script("return document.getElementById('live').dataset.frames || 0")) >= 8,
        60,
        "8 processed camera frames: " + browser.find_element(By.ID, "live-status").text,
    )
    frame = canvas_pixels(browser, "live")[:, :, :3].astype(int)
    assert frame.shape[:2] == (480, 640)
    green = np.abs(frame - GREEN).max(axis=2) < 40
    assert green.mean() > 0.25, f"only {green.mean():.0%} of the camera frame is the replaced background"
    assert not green[300:400, 280:360].any(), "the person was replaced too"
    assert float(browser.find_element(By.ID, "fps").text) > 0
    assert float(browser.find_element(By.ID, "latency").text) > 0
    assert int(browser.find_element(By.ID, "dropped").text) >= 0
    browser.save_screenshot(str(out / "serve_camera.png"))
    assert httpx.get(f"{server.url}/healthz").json()["live_sessions"] == 1
    browser.find_element(By.ID, "camera-stop").click()
    wait_for(lambda: httpx.get(f"{server.url}/healthz").json()["live_sessions"] == 0, 10, "the session to close")
