"""Usage, exit codes and messages of the real console script: --version, --out rules, bounded numbers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import segkit
from segkit.cli import main
from segkit.cli.parsing import build_parser
from tests.cli.conftest import SCRIPT, cli_env, files_under
from tests.cli.conftest import segkit as run
from tests.conftest import data_file


def test_version_is_the_package_version() -> None:
    done = run("--version")
    assert done.code == 0
    assert done.out.decode().strip() == f"segkit {segkit.__version__}"


def test_the_entry_point_loads_nothing_heavy_before_it_can_catch_ctrl_c() -> None:
    """``segkit.cli.main`` is reachable without numpy, Pillow or LiteRT: they load inside its ``try``."""
    heavy = "sorted(m for m in ('numpy', 'PIL', 'ai_edge_litert', 'typing') if m in sys.modules)"
    code = f"import sys; from segkit.cli import main; print({heavy})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_ctrl_c_while_starting_up_is_one_line_and_status_130(tmp_path: Path) -> None:
    """Ctrl-C in the first fraction of a second (numpy, Pillow, LiteRT and the model still loading): no traceback."""
    for delay in (0.05, 0.1, 0.2):
        target = tmp_path / f"out{delay}.jpg"
        process = subprocess.Popen([str(SCRIPT), "blur", str(data_file("astronaut.png")), "--out", str(target)],
                                   env=cli_env(), stderr=subprocess.PIPE)  # fmt: skip
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert (process.returncode, err.decode()) == (130, "segkit: interrupted\n"), delay
        assert list(tmp_path.iterdir()) == []  # no output, no temporary file


@pytest.mark.slow
def test_help_lists_commands_and_exit_codes() -> None:
    done = run("--help")
    assert done.code == 0
    text = done.out.decode()
    for command in ("segment", "blur", "replace", "cutout", "recolor", "overlay", "models", "info", "download"):
        assert command in text
    assert "3 missing optional dependency or model unavailable" in text


@pytest.mark.slow
def test_usage_errors_exit_2(portrait: Path) -> None:
    assert run().code == 2
    assert run("sharpen", portrait).code == 2
    missing = run("blur", portrait.with_name("nothere.png"))
    assert missing.code == 2 and "input not found" in missing.err and "nothere.png" in missing.err
    bad_color = run("replace", portrait, "--background", "chartreusy")
    assert bad_color.code == 2 and "'chartreusy' is not a color" in bad_color.err
    assert "Traceback" not in missing.err + bad_color.err


NUMBERS = [
    (["blur", "--strength", "inf"], "'inf'"),
    (["blur", "--strength", "1e12"], "'1e12'"),
    (["blur", "--strength", "nan"], "'nan'"),
    (["blur", "--strength", "-1"], "'-1'"),
    (["recolor", "--color", "red", "--strength", "3"], "'3'"),
    (["overlay", "--alpha", "2"], "'2'"),
    (["blur", "--threads", "0"], "'0'"),
    (["blur", "--threads", "100000"], "'100000'"),
    (["blur", "--workers", "0"], "'0'"),
    (["blur", "--refine-radius", "1e9"], "'1e9'"),
    (["blur", "--smooth", "0"], "'0'"),
    (["blur", "--normalization", "127.5,0"], "'127.5,0'"),
    (["blur", "--normalization", "inf,1"], "'inf,1'"),
    (["blur", "--normalization", "127.5"], "'127.5'"),
]


def test_numbers_are_checked_where_they_enter(capsys: pytest.CaptureFixture[str]) -> None:
    """The parser itself refuses every out-of-range value (exit 2, the value named): no model is loaded."""
    parser = build_parser()
    for args, value in NUMBERS:
        with pytest.raises(SystemExit) as stopped:
            parser.parse_args([args[0], "in.png", *args[1:]])
        assert stopped.value.code == 2
        assert value in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(("args", "value"), NUMBERS)
def test_numbers_are_finite_and_bounded(portrait: Path, args: list[str], value: str) -> None:
    done = run(*args[:1], portrait, *args[1:])
    assert done.code == 2, done.err
    assert value in done.err and "Traceback" not in done.err


@pytest.mark.slow
def test_unknown_category_lists_labels(portrait: Path) -> None:
    for bad in ("horse", "²", "7"):
        done = run("blur", portrait, "--model", "hair_segmenter", "--category", bad)
        assert done.code == 2, done.err
        assert repr(bad) in done.err and "background, hair" in done.err


def test_unknown_model_lists_known_names(portrait: Path) -> None:
    done = run("blur", portrait, "--model", "selfie_segmentr")
    assert done.code == 2
    assert "selfie_segmentr" in done.err and "selfie_segmenter" in done.err and "hair_segmenter" in done.err


def test_out_without_extension_is_a_usage_error(portrait: Path, tmp_path: Path) -> None:
    done = run("blur", portrait, "--out", tmp_path / "noext")
    assert done.code == 2
    assert "noext/" in done.err and "noext.png" in done.err
    assert not (tmp_path / "noext").exists()


@pytest.mark.slow
def test_out_file_needs_one_input(portrait: Path, photos: Path, tmp_path: Path) -> None:
    for inputs in ([photos], [portrait, portrait.with_name("other.png")]):
        portrait.with_name("other.png").write_bytes(portrait.read_bytes())
        done = run("blur", *inputs, "--out", tmp_path / "one.png")
        assert done.code == 2 and "give a folder" in done.err
    assert not (tmp_path / "one.png").exists()


@pytest.mark.slow
def test_out_folder_rules(portrait: Path, tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    assert run("blur", portrait, "--out", existing, "-q").code == 0
    assert (existing / "portrait.png").is_file()
    assert run("blur", portrait, "--out", f"{tmp_path / 'new'}/", "-q").code == 0
    assert (tmp_path / "new" / "portrait.png").is_file()
    named = run("blur", portrait, "--out", tmp_path / "named.jpg", "-q")
    assert named.code == 0 and (tmp_path / "named.jpg").read_bytes()[:2] == b"\xff\xd8"
    clash = run("blur", portrait, "--out", tmp_path / "other.jpg", "--format", "png")
    assert clash.code == 2 and "contradicts" in clash.err and not (tmp_path / "other.jpg").exists()
    converted = run("blur", portrait, "--out", f"{tmp_path / 'webp'}/", "--format", "webp", "-q")
    assert converted.code == 0 and (tmp_path / "webp" / "portrait.webp").read_bytes()[8:12] == b"WEBP"


@pytest.mark.slow
def test_cutout_needs_transparency(portrait: Path, tmp_path: Path) -> None:
    done = run("cutout", portrait, "--out", tmp_path / "cut.jpg")
    assert done.code == 2 and "must be .png, .webp or .tiff" in done.err


@pytest.mark.slow
def test_stdout_takes_one_image(photos: Path) -> None:
    done = run("blur", photos, "--out", "-")
    assert done.code == 2 and "give a folder" in done.err and not done.out


@pytest.mark.slow
def test_download_usage(tmp_path: Path) -> None:
    assert run("download").code == 2
    both = run("download", "selfie_segmenter", "--all")
    assert both.code == 2 and "--all" in both.err
    unknown = run("download", "nosuchmodel")
    assert unknown.code == 2 and "nosuchmodel" in unknown.err and "selfie_segmenter" in unknown.err


@pytest.mark.slow
def test_serve_is_handed_its_arguments() -> None:
    """``segkit serve --help`` reaches segkit.serve's own parser, or says which extra to install (exit 3)."""
    done = run("serve", "--help")
    assert "Traceback" not in done.err
    if done.code == 3:
        assert 'pip install "segkit[serve]"' in done.err
    else:
        assert done.code == 0 and b"--port" in done.out


def usage_error(args: list[str | Path], capsys: pytest.CaptureFixture[str]) -> str:
    """Runs the CLI's ``main`` in this process and returns its usage error (exit status 2, one message line)."""
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in args])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_cutout_format_must_hold_transparency(
    portrait: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--format jpg|bmp|gif`` is refused for folders and pipes too, as ``--out x.jpg`` is: none keeps the alpha."""
    for fmt, out in (("jpg", f"{tmp_path / 'out'}/"), ("jpg", "-"), ("bmp", f"{tmp_path / 'out'}/"), ("gif", None)):
        args: list[str | Path] = ["cutout", portrait, "--format", fmt, *(["--out", out] if out else [])]
        assert f"--format {fmt} cannot hold it" in usage_error(args, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["portrait.png"]


def test_a_category_mask_is_never_written_as_jpeg(
    portrait: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Class indices in JPEG come back changed: ``--masks category|both`` with jpg is a usage error (it wrote lossy
    masks); the subject's alpha in JPEG and a category mask in WebP (written losslessly) are fine."""
    for masks, extra in (
        ("category", ["--format", "jpg", "--out", f"{tmp_path / 'out'}/"]),
        ("both", ["--format", "jpeg", "--out", f"{tmp_path / 'out'}/"]),
        ("category", ["--out", str(tmp_path / "mask.jpg")]),
    ):
        assert "a category mask holds class indices" in usage_error(
            ["segment", portrait, "--masks", masks, *extra], capsys
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["portrait.png"]
    assert run("segment", portrait, "--format", "jpg", "--out", f"{tmp_path / 'alpha'}/").code == 0
    done = run("segment", portrait, "--masks", "category", "--format", "webp", "--out", f"{tmp_path / 'webp'}/")
    assert done.code == 0 and (tmp_path / "webp" / "portrait.category.webp").is_file()


def test_stdout_takes_one_input(portrait: Path, photos: Path) -> None:
    """``-o -`` with several inputs is refused like ``-o one.png``, not run on the first input alone."""
    other = portrait.with_name("other.png")
    other.write_bytes(portrait.read_bytes())
    for inputs in ([portrait, other], [portrait, photos]):
        done = run("blur", *inputs, "--out", "-")
        assert done.code == 2 and "give a folder" in done.err and not done.out


def test_an_output_that_is_its_own_input_is_refused(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No spelling of the input as its own output is written, with or without --overwrite, before any work."""
    before = files_under(tmp_path)
    photo = photos / "b.jpg"
    (tmp_path / "link.jpg").symlink_to(photo)
    same_file = [photo, photos / "trip" / ".." / "b.jpg", tmp_path / "link.jpg"]
    for out in same_file:
        for overwrite in ([], ["--overwrite"]):
            assert "is the input" in usage_error(["blur", photo, "--out", out, *overwrite], capsys)
    for folder_out in (photos, f"{photos}/", photos / "trip" / ".."):
        message = usage_error(["blur", photos, "--out", folder_out, "--overwrite"], capsys)
        assert "is the input folder" in message
    assert "is the input" in usage_error(["blur", photo, "--out", f"{photos}/", "--overwrite"], capsys)
    assert "is the input folder" in usage_error(["blur", photo, photos, "--out", photos.parent], capsys)
    assert files_under(tmp_path) == {**before, "link.jpg": photo.read_bytes()}


def test_a_model_path_that_is_no_file_says_what_it_is(
    portrait: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "is a folder" in usage_error(["blur", portrait, "--model", tmp_path], capsys)
    assert "is not a regular file" in usage_error(["blur", portrait, "--model", "/dev/null"], capsys)


def test_a_background_that_is_no_image_is_a_usage_error(
    portrait: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found before any work, naming ``--background``, rather than as a failure of every input."""
    (tmp_path / "bg.png").write_text("junk")
    message = usage_error(["replace", portrait, "--background", tmp_path / "bg.png", "-o", tmp_path / "r.png"], capsys)
    assert "--background" in message and "is not an image" in message
    assert not (tmp_path / "r.png").exists()
