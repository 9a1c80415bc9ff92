"""Videos through the real console script: a round trip, segment's mask video, a folder mixing videos and images
on two workers, a corrupt clip, and a missing PyAV (exit 3)."""

from __future__ import annotations

import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from tests.cli.conftest import SCRIPT, cli_env, files_under, small_photo
from tests.cli.conftest import segkit as run
from tests.conftest import load_rgb
from tests.video_clip import pan_zoom_frames, write_clip

pytestmark = pytest.mark.slow

# Loaded by the child at start-up (PYTHONPATH): makes ``import av`` fail as it does where the extra is missing.
NO_AV = """
import sys
class _NoAv:
    def find_spec(self, name, path=None, target=None):
        if name == "av" or name.startswith("av."):
            raise ImportError("No module named 'av'")
        return None
sys.meta_path.insert(0, _NoAv())
"""


def clip(path: Path, frames: int = 12, size: tuple[int, int] = (160, 120)) -> Path:
    """A short pan-and-zoom clip over a real portrait, with audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_clip(path, pan_zoom_frames(load_rgb("astronaut.png"), frames, *size), rate=15)
    return path


def probe(path: Path) -> tuple[int, Fraction, tuple[int, int], int]:
    """(frames decoded, frame rate, (width, height), audio streams) of a video file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        rate, audio = Fraction(stream.average_rate), len(container.streams.audio)
        count = sum(1 for _ in container.decode(video=0))
    return count, rate, size, audio


def test_blur_video_round_trip(tmp_path: Path) -> None:
    source = clip(tmp_path / "clip.mp4")
    done = run("blur", source, "--out", tmp_path / "blurred.mp4", "--smooth", "0.7", "-q")
    assert done.code == 0, done.err
    assert probe(tmp_path / "blurred.mp4") == (12, Fraction(15), (160, 120), 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blurred.mp4", "clip.mp4"]  # no partial file


def test_segment_video_writes_the_alpha_video(tmp_path: Path) -> None:
    source = clip(tmp_path / "clip.mp4")
    done = run("segment", source, "-q")
    assert done.code == 0, done.err
    assert probe(tmp_path / "clip.alpha.mp4")[:3] == (12, Fraction(15), (160, 120))
    several = run("segment", source, "--masks", "both", "--model", "deeplabv3", "--out", tmp_path / "m.mp4")
    assert several.code == 2 and "use --masks alpha or --masks category for videos" in several.err


def test_folder_of_videos_and_images_on_two_workers(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    clip(folder / "one.mp4")
    clip(folder / "sub" / "two.mkv", frames=8)
    small_photo(folder / "p.png")
    (folder / "sub" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    done = run("replace", folder, "-b", "#00b140", "--out", f"{tmp_path / 'out'}/", "--workers", "2")
    assert done.code == 1
    assert "broken.mp4" in done.err and "3 done, 0 skipped, 1 failed" in done.err
    assert sorted(files_under(tmp_path / "out")) == ["one.mp4", "p.png", "sub/two.mkv"]
    assert probe(tmp_path / "out" / "sub" / "two.mkv")[0] == 8


def test_encoder_settings_reach_the_encoder(tmp_path: Path) -> None:
    """--crf and --preset change the file x264 writes (its settings are in the stream: ultrafast turns CABAC off);
    out-of-range values are usage errors."""
    source = clip(tmp_path / "clip.mp4")
    files = {}
    settings = {"default": [], "fine": ["--crf", "8"], "rough": ["--crf", "40", "--preset", "ultrafast"]}
    for name, extra in settings.items():
        files[name] = tmp_path / f"{name}.mp4"
        done = run("blur", source, "--out", files[name], "-q", *extra)
        assert done.code == 0, done.err
        assert probe(files[name])[:3] == (12, Fraction(15), (160, 120))
    data = {name: path.read_bytes() for name, path in files.items()}
    assert b"preset" not in data["default"] and b"cabac=1" in data["default"] and b"crf=21.0" in data["default"]
    assert b"cabac=0" in data["rough"] and b"crf=40.0" in data["rough"]
    assert len(data["rough"]) < len(data["default"]) < len(data["fine"])
    for bad in (["--crf", "52"], ["--crf", "2.5"], ["--preset", "turbo"]):
        done = run("recolor", source, "--color", "teal", *bad)
        assert done.code == 2 and bad[0] in done.err and "Traceback" not in done.err, done.err


def in_a_terminal(*args: str | Path, timeout: float = 120) -> tuple[int, str]:
    """Runs the console script with a pseudo-terminal (120 columns) as its stdin, stdout and stderr, as in a
    shell; its exit status and everything it drew there. A run still drawing after ``timeout`` seconds is stopped
    (SIGTERM, then SIGKILL) and fails the test."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    child = subprocess.Popen([str(SCRIPT), *map(str, args)], stdin=follower, stdout=follower, stderr=follower,
                             env=cli_env(), start_new_session=True)  # fmt: skip
    os.close(follower)
    drawn = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([leader], [], [], left)[0]:
                continue
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed its side
                break
            if not chunk:
                break
            drawn.extend(chunk)
        else:
            child.terminate()  # SIGTERM: it removes its partial output and exits
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
            so_far = drawn.decode(errors="replace")
            pytest.fail(f"segkit {' '.join(map(str, args))} still ran after {timeout} s: {so_far}")
    finally:
        os.close(leader)
    return child.wait(timeout=timeout), drawn.decode(errors="replace")


def test_a_video_in_a_terminal_shows_frames_of_the_total_and_the_rate(tmp_path: Path) -> None:
    source = clip(tmp_path / "clip.mp4", frames=90, size=(320, 240))
    code, drawn = in_a_terminal("blur", source, "--out", tmp_path / "blurred.mp4")
    assert code == 0, drawn
    redraws = re.findall(r"clip\.mp4: +\d+%\|[^|]*\| *(\d+)/90 \[[^]]*frame/s\]", drawn)
    assert redraws and int(redraws[-1]) > 0, drawn  # done/total from the header's frame count, and frames a second
    assert "Traceback" not in drawn and probe(tmp_path / "blurred.mp4")[0] == 90


def test_cutout_refuses_video(tmp_path: Path) -> None:
    source = clip(tmp_path / "clip.mp4", frames=2)
    done = run("cutout", source)
    assert done.code == 2 and "green screen" in done.err


def test_missing_pyav_is_exit_3(tmp_path: Path) -> None:
    source = clip(tmp_path / "clip.mp4", frames=2)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_AV)
    done = run("blur", source, env={"PYTHONPATH": str(tmp_path / "site")})
    assert done.code == 3, done.err
    assert 'pip install "segkit[video]"' in done.err and "Traceback" not in done.err
    images = run("blur", small_photo(tmp_path / "p.png"), env={"PYTHONPATH": str(tmp_path / "site")})
    assert images.code == 0, images.err  # images never need PyAV
