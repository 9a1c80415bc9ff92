"""The ``segkit`` command line, run for real in a subprocess: outputs, exit codes, messages, a video round trip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.conftest import REPO, model_dir, model_path
from tests.conftest import data_file as shared_file


def run(*args: str | Path, script: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m segkit ARGS`` (or ``script``) with the shared models; returns the finished process."""
    env = dict(os.environ, SEGKIT_MODEL_DIR=str(model_dir()))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    command = (script or [sys.executable, "-m", "segkit"]) + [str(a) for a in args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def read(path: Path) -> np.ndarray:
    with PILImage.open(path) as im:
        return np.asarray(im)


@pytest.fixture()
def portrait(tmp_path: Path) -> Path:
    """A small copy of astronaut.png (256 px keeps the runs fast)."""
    path = tmp_path / "portrait.png"
    with PILImage.open(shared_file("astronaut.png")) as im:
        im.convert("RGB").resize((256, 256)).save(path)
    return path


# --- usage and messages -----------------------------------------------------------------------------------------------


def test_help_lists_commands() -> None:
    done = run("--help")
    assert done.returncode == 0
    for command in ("segment", "blur", "replace", "cutout", "recolor", "overlay", "models", "info"):
        assert command in done.stdout


def test_usage_errors_exit_2(portrait: Path) -> None:
    assert run().returncode == 2
    assert run("sharpen", portrait).returncode == 2
    missing = run("blur", portrait.with_name("nothere.png"))
    assert missing.returncode == 2 and "input not found" in missing.stderr and "nothere.png" in missing.stderr
    bad_color = run("replace", portrait, "--background", "chartreusy")
    assert bad_color.returncode == 2 and "'chartreusy' is not a color" in bad_color.stderr
    bad_strength = run("recolor", portrait, "--color", "red", "--strength", "3")
    assert bad_strength.returncode == 2 and "--strength must be in [0, 1]" in bad_strength.stderr


def test_unknown_model_lists_known_names(portrait: Path) -> None:
    done = run("blur", portrait, "--model", "selfie_segmentr")
    assert done.returncode == 2
    assert "selfie_segmentr" in done.stderr and "selfie_segmenter" in done.stderr and "hair_segmenter" in done.stderr


def test_unknown_category_lists_labels(portrait: Path) -> None:
    done = run("blur", portrait, "--model", "hair_segmenter", "--category", "horse")
    assert done.returncode == 2 and "background, hair" in done.stderr


def test_models_and_info() -> None:
    listed = run("models")
    assert listed.returncode == 0, listed.stderr
    assert "selfie_segmenter" in listed.stdout and "hair_segmenter" in listed.stdout
    info = run("info", "deeplabv3")
    assert info.returncode == 0, info.stderr
    assert "deeplabv3.tflite" in info.stdout and "257" in info.stdout


# --- images -----------------------------------------------------------------------------------------------------------


def test_blur_then_refuse_to_overwrite(portrait: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "blurred.jpg"
    done = run("blur", portrait, "--model", "selfie_segmenter", "--out", out)
    assert done.returncode == 0, done.stderr
    blurred = read(out)
    assert blurred.shape == (256, 256, 3)
    assert np.abs(blurred.astype(int) - read(portrait)).mean() > 2
    stamp = out.stat().st_mtime_ns
    again = run("blur", portrait, "--out", out)
    assert again.returncode == 1 and "--overwrite" in again.stderr and str(out) in again.stderr
    assert out.stat().st_mtime_ns == stamp
    assert run("blur", portrait, "--out", out, "--overwrite").returncode == 0


def test_default_output_next_to_input(portrait: Path) -> None:
    done = run("cutout", portrait, "--refine", "feather")
    assert done.returncode == 0, done.stderr
    rgba = read(portrait.with_name("portrait.cutout.png"))
    assert rgba.shape == (256, 256, 4)
    assert rgba[128, 128, 3] > 200 and rgba[5, 5, 3] < 50


def test_recolor_replace_overlay(portrait: Path, tmp_path: Path) -> None:
    recolored = run("recolor", portrait, "--color", "#2060e0", "--out", tmp_path / "r.png")
    assert recolored.returncode == 0, recolored.stderr
    assert (read(tmp_path / "r.png") != read(portrait)).any()
    replaced = run("replace", portrait, "-b", "0,177,64", "--out", tmp_path / "g.png")
    assert replaced.returncode == 0, replaced.stderr
    assert (np.abs(read(tmp_path / "g.png")[2, 2].astype(int) - (0, 177, 64)) <= 2).all()
    overlaid = run("overlay", portrait, "--model", "deeplabv3", "--out", tmp_path / "o.png")
    assert overlaid.returncode == 0, overlaid.stderr
    assert read(tmp_path / "o.png").shape == (256, 256, 3)


def test_segment_writes_masks(tmp_path: Path) -> None:
    image = tmp_path / "horse.jpg"
    shutil.copy(shared_file("segmentation_input_rotation0.jpg"), image)
    done = run("segment", image, "--model", model_path("deeplabv3.tflite"), "--out", tmp_path / "masks")
    assert done.returncode == 0, done.stderr
    assert "person" in done.stdout and "horse" in done.stdout
    raw = read(tmp_path / "masks" / "horse.category_raw.png")
    assert raw.shape == (257, 257) and {13, 15} <= set(np.unique(raw).tolist())
    scaled = read(tmp_path / "masks" / "horse.category.png")
    np.testing.assert_array_equal(scaled, raw * 12)
    confidences = sorted((tmp_path / "masks").glob("horse.confidence_*.png"))
    assert len(confidences) == 21 and confidences[15].name == "horse.confidence_15_person.png"


def test_folder_continues_past_a_bad_file(portrait: Path, tmp_path: Path) -> None:
    tree = tmp_path / "photos"
    (tree / "trip").mkdir(parents=True)
    shutil.copy(portrait, tree / "a.png")
    shutil.copy(portrait, tree / "trip" / "b.jpg")
    (tree / "trip" / "broken.jpg").write_bytes(b"not a jpeg")
    (tree / "notes.txt").write_text("ignored")
    done = run("blur", tree, "--out", tmp_path / "blurred", "--quiet")
    assert done.returncode == 1
    assert "broken.jpg" in done.stderr and "cannot read image" in done.stderr
    assert (tmp_path / "blurred" / "a.png").is_file()
    assert (tmp_path / "blurred" / "trip" / "b.jpg").is_file()
    assert not (tmp_path / "blurred" / "trip" / "broken.jpg").exists()
    assert not (tmp_path / "blurred" / "notes.txt").exists()


def test_unreadable_image_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    done = run("blur", bad)
    assert done.returncode == 1 and str(bad) in done.stderr


def test_console_script(portrait: Path) -> None:
    script = Path(sys.executable).with_name("segkit")
    if not script.is_file():
        pytest.skip(f"console script not installed at {script} (pip install -e .)")
    done = run("--help", script=[str(script)])
    assert done.returncode == 0 and "blur" in done.stdout


# --- video ------------------------------------------------------------------------------------------------------------


def make_clip(path: Path, frames: int = 20, size: tuple[int, int] = (160, 120), fps: int = 15) -> None:
    """A pan-and-zoom across astronaut.png as H.264 (MPEG-4 if this PyAV lacks it), with a sine-tone AAC track."""
    import av

    width, height = size
    with PILImage.open(shared_file("astronaut.png")) as im:
        source = im.convert("RGB")
    with av.open(str(path), "w") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=22050)
        for i in range(frames):
            zoom = 1.0 + 0.5 * i / frames
            w, h = int(512 / zoom), int(384 / zoom)
            left = (512 - w) * i // frames
            frame = np.asarray(source.crop((left, 0, left + w, h)).resize(size))
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        samples = 22050 * frames // fps
        tone = (0.1 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 22050)).astype(np.float32)
        for start in range(0, samples - 1024, 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 22050, start
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))


def test_video_round_trip(tmp_path: Path) -> None:
    import av

    clip, out = tmp_path / "clip.mp4", tmp_path / "clip_blurred.mp4"
    make_clip(clip)
    done = run("blur", clip, "--out", out, "--smooth", "0.7", "--quiet")
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(15)
        assert (stream.codec_context.width, stream.codec_context.height) == (160, 120)
        assert len(container.streams.audio) == 1, "the audio track should be copied"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 20
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "no partial file left behind"


def test_undecodable_video_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    done = run("blur", bad, "--out", tmp_path / "out.mp4")
    assert done.returncode == 1 and "cannot decode video" in done.stderr and "broken.mp4" in done.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_cutout_refuses_video(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    done = run("cutout", clip)
    assert done.returncode == 2 and "green screen" in done.stderr


def test_overlay_legend_names_categories_without_display_names(tmp_path: Path) -> None:
    """deeplabv3.tflite has no "en" display names (MediaPipe gives ""), so the legend falls back to the labels."""
    source = shared_file("segmentation_input_rotation0.jpg")
    legend_region = (slice(4, 40), slice(26, 70))
    for flag, name in (([], "with.png"), (["--no-legend"], "without.png")):
        done = run("overlay", source, "--model", "deeplabv3", "--out", tmp_path / name, "-q", *flag)
        assert done.returncode == 0, done.stderr
    text_pixels = lambda img: int(np.sum(np.all(img[legend_region] > 200, axis=2)))  # noqa: E731
    assert text_pixels(read(tmp_path / "with.png")) > 20
    assert text_pixels(read(tmp_path / "without.png")) < text_pixels(read(tmp_path / "with.png")) // 4
