"""Image runs through the real console script: effects, segment's masks, pipes, segmenter flags, skip and resume."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import segkit
from segkit import effects
from tests.cli.conftest import SCRIPT, cli_env, read, small_photo
from tests.cli.conftest import segkit as run
from tests.conftest import data_file, model_path


def library_result(image: Path, model: str, **options: object) -> tuple[segkit.ImageSegmenterResult, list[str]]:
    """The library's own result for ``image`` (both masks), to compare the command line against."""
    settings = segkit.ImageSegmenterOptions(
        base_options=segkit.BaseOptions(model_asset_path=str(model_path(model))),
        output_category_mask=True,
        **options,  # type: ignore[arg-type]
    )
    with segkit.ImageSegmenter.create_from_options(settings) as segmenter:
        return segmenter.segment(np.ascontiguousarray(read(image)[:, :, :3])), segmenter.labels


@pytest.mark.slow
def test_blur_then_skip_then_overwrite(portrait: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "blurred.jpg"
    done = run("blur", portrait, "--out", out)
    assert done.code == 0, done.err
    blurred = read(out)
    assert blurred.shape == (256, 256, 3)
    assert np.abs(blurred.astype(int) - read(portrait)).mean() > 2
    stamp = out.stat().st_mtime_ns
    again = run("blur", portrait, "--out", out)
    assert again.code == 0 and "1 skipped" in again.err and "--overwrite" in again.err
    assert out.stat().st_mtime_ns == stamp
    replaced = run("blur", portrait, "--out", out, "--overwrite", "--strength", "40")
    assert replaced.code == 0 and out.stat().st_mtime_ns != stamp
    assert not (read(out) == blurred).all()


@pytest.mark.slow
def test_outputs_get_normal_permissions(portrait: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut.png"
    assert run("cutout", portrait, "--out", out).code == 0
    assert out.stat().st_mode & 0o777 == 0o644  # the umask's mode, not the temporary file's 0600


def test_cutout_next_to_input_is_the_library_cutout(portrait: Path) -> None:
    done = run("cutout", portrait, "--refine", "feather")
    assert done.code == 0, done.err
    rgba = read(portrait.with_name("portrait.cutout.png"))
    result, _ = library_result(portrait, "selfie_segmenter.tflite")
    alpha = effects.refine_mask(effects.subject_mask(result, labels=["selfie"]), read(portrait), method="feather")
    np.testing.assert_array_equal(rgba, effects.cutout(read(portrait), alpha))
    assert rgba[128, 128, 3] > 200 and rgba[5, 5, 3] < 50


@pytest.mark.slow
def test_recolor_replace_overlay(portrait: Path, tmp_path: Path) -> None:
    recolored = run("recolor", portrait, "--color", "#2060e0", "--out", tmp_path / "r.png")
    assert recolored.code == 0, recolored.err
    assert (read(tmp_path / "r.png") != read(portrait)).any()
    replaced = run("replace", portrait, "-b", "0,177,64", "--out", tmp_path / "g.png")
    assert replaced.code == 0, replaced.err
    assert (np.abs(read(tmp_path / "g.png")[2, 2].astype(int) - (0, 177, 64)) <= 2).all()
    overlaid = run("overlay", portrait, "--model", "deeplabv3", "--out", tmp_path / "o.png")
    assert overlaid.code == 0, overlaid.err
    assert read(tmp_path / "o.png").shape == (256, 256, 3)


def test_segment_default_is_one_white_subject_alpha(portrait: Path) -> None:
    done = run("segment", portrait)
    assert done.code == 0, done.err
    written = sorted(p.name for p in portrait.parent.iterdir())
    assert written == ["portrait.alpha.png", "portrait.png"]
    alpha = read(portrait.with_name("portrait.alpha.png"))
    assert alpha.dtype == np.uint8 and alpha.shape == (256, 256)
    assert alpha[128, 128] > 200 and alpha[5, 5] < 50  # the person is white
    result, labels = library_result(portrait, "selfie_segmenter.tflite")
    expected = np.rint(effects.subject_mask(result, labels=labels) * 255).astype(np.uint8)
    np.testing.assert_array_equal(alpha, expected)


@pytest.mark.slow
def test_segment_category_is_mediapipes_mask(portrait: Path, tmp_path: Path) -> None:
    done = run("segment", portrait, "--masks", "category", "--out", tmp_path / "cat.png")
    assert done.code == 0, done.err
    result, _ = library_result(portrait, "selfie_segmenter.tflite")
    assert result.category_mask is not None
    np.testing.assert_array_equal(read(tmp_path / "cat.png"), result.category_mask.numpy_view()[:, :, 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png", "portrait.png"]  # no duplicate files


@pytest.mark.slow
def test_segment_both_and_chosen_categories(tmp_path: Path) -> None:
    image = tmp_path / "horse.jpg"
    image.write_bytes(data_file("segmentation_input_rotation0.jpg").read_bytes())
    both = run(
        "segment", image, "--model", model_path("deeplabv3.tflite"), "--masks", "both", "--out", f"{tmp_path / 'all'}/"
    )
    assert both.code == 0, both.err
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert len(names) == 22 and "horse.category.png" in names and "horse.confidence_15_person.png" in names
    assert {0, 13, 15} <= set(np.unique(read(tmp_path / "all" / "horse.category.png")).tolist())
    chosen = run("segment", image, "--model", "deeplabv3", "--masks", "confidence", "-c", "person,13", "-o", "two/",
                 env=None, cwd=tmp_path)  # fmt: skip
    assert chosen.code == 0, chosen.err
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "horse.confidence_13_horse.png",
        "horse.confidence_15_person.png",
    ]
    np.testing.assert_array_equal(
        read(tmp_path / "two" / "horse.confidence_15_person.png"),
        read(tmp_path / "all" / "horse.confidence_15_person.png"),
    )
    person = read(tmp_path / "two" / "horse.confidence_15_person.png")
    category = read(tmp_path / "all" / "horse.category.png")
    assert person[category == 15].mean() > 150 and person[category == 0].mean() < 30


@pytest.mark.slow
def test_segment_several_files_need_a_folder(portrait: Path, tmp_path: Path) -> None:
    done = run("segment", portrait, "--model", "deeplabv3", "--masks", "both", "--out", tmp_path / "m.png")
    assert done.code == 2 and "give --out a folder" in done.err


@pytest.mark.slow
def test_pipe_stdin_to_stdout(portrait: Path, tmp_path: Path) -> None:
    """``cat in.png | segkit cutout - -o - > out.png`` writes what the file-to-file run writes."""
    piped = tmp_path / "piped.png"
    shell = f"cat '{portrait}' | '{SCRIPT}' cutout - -o - > '{piped}'"
    done = subprocess.run(shell, shell=True, env=cli_env(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert run("cutout", portrait, "--out", tmp_path / "file.png").code == 0
    assert piped.read_bytes() == (tmp_path / "file.png").read_bytes()
    assert read(piped).shape == (256, 256, 4)


@pytest.mark.slow
def test_pipe_keeps_the_input_format_unless_told(tmp_path: Path) -> None:
    photo = small_photo(tmp_path / "p.jpg", "cat.jpg", (200, 120))
    as_jpeg = run("blur", "-", stdin=photo.read_bytes())
    assert as_jpeg.code == 0, as_jpeg.err
    assert as_jpeg.out[:2] == b"\xff\xd8" and read(as_jpeg.out).shape == (120, 200, 3)
    as_png = run("blur", "-", "--format", "png", stdin=photo.read_bytes())
    assert as_png.code == 0 and as_png.out[:8] == b"\x89PNG\r\n\x1a\n"
    to_file = run("blur", "-", "-o", tmp_path / "from_stdin.webp", stdin=photo.read_bytes())
    assert to_file.code == 0 and (tmp_path / "from_stdin.webp").read_bytes()[8:12] == b"WEBP"
    garbage = run("blur", "-", stdin=b"not an image")
    assert garbage.code == 1 and "cannot read image standard input" in garbage.err and not garbage.out
    assert run("blur", "-", "--format", "nope", stdin=photo.read_bytes()).code == 2


@pytest.mark.slow
def test_threads_do_not_change_the_output(portrait: Path, tmp_path: Path) -> None:
    for threads in ("1", "2"):
        done = run("blur", portrait, "--threads", threads, "--out", tmp_path / f"t{threads}.png")
        assert done.code == 0, done.err
    assert (tmp_path / "t1.png").read_bytes() == (tmp_path / "t2.png").read_bytes()


@pytest.mark.slow
def test_legacy_model_runs_with_normalization(tmp_path: Path) -> None:
    image = data_file("segmentation_input_rotation0.jpg")
    legacy = model_path("deeplabv3_without_metadata.tflite")
    refused = run("segment", image, "--model", legacy, "--masks", "category", "-o", tmp_path / "x.png")
    assert refused.code == 1 and "NormalizationOptions" in refused.err and "Traceback" not in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    done = run("segment", image, "--model", legacy, "--masks", "category", "--normalization", "127.5,127.5",
               "-o", tmp_path / "legacy.png")  # fmt: skip
    assert done.code == 0, done.err
    same = run("segment", image, "--model", "deeplabv3", "--masks", "category", "-o", tmp_path / "meta.png")
    assert same.code == 0, same.err
    np.testing.assert_array_equal(read(tmp_path / "legacy.png"), read(tmp_path / "meta.png"))


@pytest.mark.slow
def test_gpu_with_fallback_always_writes(portrait: Path, tmp_path: Path) -> None:
    """--gpu --gpu-fallback runs on the GPU where one starts, else on the CPU with a warning; either way it writes."""
    done = run("blur", portrait, "--gpu", "--gpu-fallback", "--out", tmp_path / "g.png")
    assert done.code == 0, done.err
    assert read(tmp_path / "g.png").shape == (256, 256, 3)


@pytest.mark.slow
def test_cutout_keeps_the_inputs_own_transparency(portrait: Path, tmp_path: Path) -> None:
    """What is transparent in the input stays transparent: the model's alpha times the input's (file and pipe)."""
    rgba = np.dstack([read(portrait), np.full((256, 256), 255, np.uint8)])
    rgba[:, :128, 3] = 0
    rgba[:, 128:, 3] = 128
    source = tmp_path / "half.png"
    PILImage.fromarray(rgba).save(source)
    done = run("cutout", source, "--out", tmp_path / "cut.png")
    assert done.code == 0, done.err
    cut = read(tmp_path / "cut.png")
    assert cut[:, :128, 3].max() == 0
    assert 60 < cut[100:200, 150:200, 3].mean() <= 128  # the subject, at most the input's half opacity
    opaque = run("cutout", portrait, "--out", tmp_path / "opaque.png")
    assert opaque.code == 0, opaque.err
    np.testing.assert_array_equal(
        cut[:, 128:, 3], (read(tmp_path / "opaque.png")[:, 128:, 3].astype(int) * 128 + 127) // 255
    )
    piped = run("cutout", "-", "-o", "-", stdin=source.read_bytes())
    assert piped.code == 0 and piped.out == (tmp_path / "cut.png").read_bytes()


@pytest.mark.slow
def test_stdin_to_an_existing_file_is_skipped_without_overwrite(portrait: Path, tmp_path: Path) -> None:
    """The rule for file inputs: an existing output is kept (and the run says so) unless --overwrite."""
    keep = tmp_path / "keep.png"
    keep.write_bytes(b"precious")
    kept = run("blur", "-", "--out", keep, stdin=portrait.read_bytes())
    assert kept.code == 0 and "1 skipped" in kept.err and "--overwrite" in kept.err
    assert keep.read_bytes() == b"precious"
    replaced = run("blur", "-", "--out", keep, "--overwrite", stdin=portrait.read_bytes())
    assert replaced.code == 0, replaced.err
    assert read(keep).shape == (256, 256, 3)


@pytest.mark.slow
def test_a_reader_that_leaves_mid_image_is_exit_1(tmp_path: Path) -> None:
    """``segkit ... -o - | head -c 10``: the image is far bigger than the pipe, the reader leaves after 10 bytes."""
    big = small_photo(tmp_path / "big.png", size=(1200, 1200))
    with subprocess.Popen(
        [str(SCRIPT), "blur", big, "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env()
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert len(proc.stdout.read(10)) == 10
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 1
    assert err.strip().splitlines() == ["segkit: error: standard output was closed before everything was written"]


def test_closed_standard_streams_are_one_line_usage_errors(portrait: Path, tmp_path: Path) -> None:
    """``<&-`` / ``>&-`` (daemons, cron): Python has no sys.stdin / sys.stdout; segkit says so instead of crashing."""
    for redirect, args in (("<&-", f"- -o '{tmp_path / 'out.png'}'"), (">&-", f"'{portrait}' -o -")):
        shell = f"'{SCRIPT}' blur {args} {redirect}"
        done = subprocess.run(shell, shell=True, env=cli_env(), capture_output=True, timeout=120)
        err = done.stderr.decode()
        assert done.returncode == 2, err
        assert "Traceback" not in err and "but that stream is closed" in err.strip().splitlines()[-1]
    assert not (tmp_path / "out.png").exists()


@pytest.mark.slow
def test_a_gpu_that_cannot_start_names_the_command_line_options(portrait: Path, tmp_path: Path) -> None:
    """The advice names --gpu-fallback, not the Python API's BaseOptions. The Vulkan loader is pointed at a driver
    that does not exist, so no GPU starts even where one would (CI's software Vulkan)."""
    nowhere = str(tmp_path / "no_such_icd.json")
    done = run(
        "blur",
        portrait,
        "--gpu",
        "--out",
        tmp_path / "g.png",
        env={"VK_DRIVER_FILES": nowhere, "VK_ICD_FILENAMES": nowhere},
    )
    assert done.code == 1 and "Traceback" not in done.err, done.err
    assert "--gpu-fallback" in done.err and "BaseOptions" not in done.err


@pytest.mark.slow
def test_registry_legacy_models_run_without_normalization(portrait: Path, tmp_path: Path) -> None:
    """The registry's legacy entries carry the normalization their files lack; a bare float model's refusal names
    --normalization."""
    legacy = model_path("legacy/selfie_segmentation.tflite")
    done = run("blur", portrait, "--model", "selfie_segmentation", "--out", tmp_path / "named.png")
    assert done.code == 0, done.err
    refused = run("blur", portrait, "--model", legacy, "--out", tmp_path / "path.png")
    assert refused.code == 1 and "--normalization MEAN,STD" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    given = run("blur", portrait, "--model", legacy, "--normalization", "0,255", "--out", tmp_path / "path.png")
    assert given.code == 0, given.err
    assert (tmp_path / "named.png").read_bytes() == (tmp_path / "path.png").read_bytes()
