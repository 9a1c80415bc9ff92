"""Folder runs: the tree mirrored, bad files reported while the run goes on, the pool equal to one process,
Ctrl-C leaving no partial files, and a rerun resuming where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from segkit.batch import FileJob, MaskOutput
from segkit.cli import planning, running
from tests.cli.conftest import SCRIPT, cli_env, files_under, read, small_photo
from tests.cli.conftest import segkit as run
from tests.conftest import data_file


@pytest.mark.slow
def test_folder_goes_on_past_bad_files(photos: Path, tmp_path: Path) -> None:
    (photos / "trip" / "broken.jpg").write_bytes(b"not a jpeg")
    truncated = (photos / "a.png").read_bytes()
    (photos / "trip" / "truncated.png").write_bytes(truncated[: len(truncated) // 3])
    done = run("blur", photos, "--out", f"{tmp_path / 'blurred'}/", "--workers", "2")
    assert done.code == 1
    assert "broken.jpg" in done.err and "truncated.png" in done.err and "cannot read image" in done.err
    assert "4 done, 0 skipped, 2 failed" in done.err
    assert done.err.strip().splitlines()[-1].startswith("segkit: failed: ")
    written = sorted(files_under(tmp_path / "blurred"))
    assert written == ["a.png", "b.jpg", "trip/c.jpg", "trip/d.png"]  # no text file, no hidden file, no partials


@pytest.mark.slow
def test_rerun_skips_finished_outputs(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut"
    first = run("cutout", photos, "--out", f"{out}/", "-q")
    assert first.code == 0, first.err
    (out / "trip" / "c.png").unlink()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = run("cutout", photos, "--out", f"{out}/")
    assert again.code == 0, again.err
    assert "1 done, 3 skipped, 0 failed" in again.err
    assert (out / "trip" / "c.png").is_file()
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())


@pytest.mark.slow
def test_default_output_folder_is_beside_the_input(photos: Path) -> None:
    done = run("segment", photos, "-q")
    assert done.code == 0, done.err
    beside = photos.parent / "photos_segment"
    assert sorted(files_under(beside)) == ["a.alpha.png", "b.alpha.png", "trip/c.alpha.png", "trip/d.alpha.png"]


@pytest.mark.slow
def test_output_folder_inside_the_input_is_not_walked(photos: Path) -> None:
    assert run("blur", photos, "--out", f"{photos / 'out'}/", "-q").code == 0
    again = run("blur", photos, "--out", f"{photos / 'out'}/")
    assert again.code == 0 and "0 done, 4 skipped" in again.err


@pytest.mark.slow
def test_same_output_name_is_a_failure_not_an_overwrite(tmp_path: Path) -> None:
    folder = tmp_path / "same"
    folder.mkdir()
    for name in ("x.jpg", "x.png"):
        with PILImage.open(data_file("cat.jpg")) as im:
            im.convert("RGB").resize((64, 48)).save(folder / name)
    done = run("cutout", folder, "--out", f"{tmp_path / 'out'}/", "--workers", "1")
    assert done.code == 1 and "would write the same output as" in done.err
    assert sorted(files_under(tmp_path / "out")) == ["x.png"]


def test_unreadable_folder_is_a_planned_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable subfolder is reported (and counted by the CLI) instead of being skipped silently."""
    (tmp_path / "in" / "locked").mkdir(parents=True)
    (tmp_path / "in" / "ok.png").write_bytes(b"")
    real = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    naming = planning.Naming("blur", (MaskOutput("alpha"),))
    planned = list(planning.plan([tmp_path / "in"], planning.Destination("folder", tmp_path / "out"), naming))
    assert planned[0] == FileJob(tmp_path / "in" / "ok.png", (tmp_path / "out" / "ok.png",))
    assert planned[1] == planning.PlanFailure(tmp_path / "in" / "locked", "cannot read folder: Permission denied")


def test_walk_is_lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Taking the first job lists only the first folder: a huge tree is never listed up front."""
    for i in range(5):
        (tmp_path / "in" / f"d{i}").mkdir(parents=True)
        (tmp_path / "in" / f"d{i}" / "p.png").write_bytes(b"")
    listed: list[str] = []
    real = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        listed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    jobs = planning.plan([tmp_path / "in"], planning.Destination("beside"), planning.Naming("blur", ()))
    first = next(jobs)
    assert isinstance(first, FileJob) and first.source.parent.name == "d0"
    assert listed == ["in", "d0"]


@pytest.mark.slow
def test_two_workers_write_the_same_bytes_as_one(photos: Path, tmp_path: Path) -> None:
    for command, extra in (("blur", ()), ("segment", ("--model", "deeplabv3", "--masks", "both"))):
        for workers in ("1", "2"):
            done = run(command, photos, "--out", f"{tmp_path / command / workers}/", "--workers", workers, *extra)
            assert done.code == 0, done.err
        one, two = files_under(tmp_path / command / "1"), files_under(tmp_path / command / "2")
        assert len(one) == (4 if command == "blur" else 4 * 22)
        assert one == two


def big_photos(folder: Path, count: int) -> None:
    """``count`` 2400x1200 PNGs (slow enough to encode that an interrupt lands mid-run)."""
    folder.mkdir(parents=True)
    with PILImage.open(data_file("cats_and_dogs.jpg")) as im:
        big = im.convert("RGB").resize((2400, 1200))
    for i in range(count):
        big.save(folder / f"x{i:02d}.png", compress_level=1)


def interrupt(args: list[str | Path], ready: Callable[[], bool]) -> tuple[int, str]:
    """Starts a run in its own process group and sends Ctrl-C (SIGINT to the whole group) once ``ready()``."""
    process = subprocess.Popen([str(SCRIPT), *map(str, args)], env=cli_env(), stderr=subprocess.PIPE,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be interrupted"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    return process.returncode, err.decode(errors="replace")


def visible(folder: Path) -> list[Path]:
    """The files in ``folder`` that are not hidden (temporary files are)."""
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_interrupted_run_leaves_no_partial_files_and_resumes(tmp_path: Path, workers: str) -> None:
    big_photos(tmp_path / "big", 16)
    out = tmp_path / "out"
    code, err = interrupt(["blur", tmp_path / "big", "--out", f"{out}/", "--workers", workers],
                          lambda: len(visible(out)) >= 3)  # fmt: skip
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    finished = sorted(p.name for p in out.iterdir())
    assert not [name for name in finished if name.startswith(".")], "temporary files were left behind"
    assert 3 <= len(finished) < 16
    for name in finished:
        assert read(out / name).shape == (1200, 2400, 3)  # every output is complete
    stamps = {name: (out / name).stat().st_mtime_ns for name in finished}
    resumed = run("blur", tmp_path / "big", "--out", f"{out}/", "--workers", workers)
    assert resumed.code == 0, resumed.err
    assert f"{16 - len(finished)} done, {len(finished)} skipped, 0 failed" in resumed.err
    assert all((out / name).stat().st_mtime_ns == stamp for name, stamp in stamps.items())
    assert len(list(out.iterdir())) == 16


@pytest.mark.slow
def test_interrupted_overwrite_keeps_the_old_file(tmp_path: Path) -> None:
    """Ctrl-C while a run replaces existing outputs (--overwrite) leaves each one intact and decodable: either the
    old file or the whole new one, never a partial file. (A run may not replace its own inputs: that is refused.)"""
    big_photos(tmp_path / "big", 12)
    folder, out = tmp_path / "big", tmp_path / "out"
    big_photos(out, 12)  # old outputs under the names the cutouts get
    inputs, before = files_under(folder), files_under(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _ = interrupt(["cutout", folder, "--out", f"{out}/", "--overwrite", "-w", "1"],
                        lambda: any(p.stat().st_mtime_ns != stamp for p, stamp in stamps.items()))  # fmt: skip
    assert code == 130
    after = files_under(out)
    assert sorted(after) == sorted(before)  # no temporary file left, nothing lost
    for name, data in after.items():
        image = read(data)
        assert image.shape[:2] == (1200, 2400)
        assert data == before[name] or image.shape[2] == 4  # either untouched or completely replaced
    assert np.any([after[n] == before[n] for n in after])
    assert files_under(folder) == inputs


# Loaded by the child at start-up (PYTHONPATH): makes ``import ray`` fail as it does where the extra is missing.
NO_RAY = """
import sys
class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return None
sys.meta_path.insert(0, _NoRay())
"""


@pytest.mark.slow
def test_ray_engine_without_ray_is_exit_3(photos: Path, tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_RAY)
    done = run(
        "blur", photos, "--out", f"{tmp_path / 'out'}/", "--engine", "ray", env={"PYTHONPATH": str(tmp_path / "site")}
    )
    assert done.code == 3, done.err
    assert 'pip install "segkit[ray]"' in done.err and "Traceback" not in done.err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_sigterm_stops_the_pool_without_partial_files(tmp_path: Path) -> None:
    big_photos(tmp_path / "big", 12)
    out = tmp_path / "out"
    process = subprocess.Popen([str(SCRIPT), "blur", str(tmp_path / "big"), "--out", f"{out}/", "-w", "2"],
                               env=cli_env(), stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(visible(out)) < 2:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    process.terminate()
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    time.sleep(0.5)  # the workers are gone: nothing appears after the parent exits
    finished = sorted(p.name for p in out.iterdir())
    assert finished == sorted(p.name for p in visible(out)), "no temporary files"
    assert len(finished) < 12 and all(read(out / name).shape == (1200, 2400, 3) for name in finished)


@pytest.mark.slow
def test_rerun_in_the_input_folder_skips_its_own_outputs(tmp_path: Path) -> None:
    """``segkit blur .`` writes ``./<name>_blur/`` inside the input: reruns skip it, never blur the blurred."""
    photos = tmp_path / "photos"
    small_photo(photos / "a.png", size=(96, 96))
    first = run("blur", ".", "-q", cwd=photos)
    assert first.code == 0, first.err
    again = run("blur", ".", cwd=photos)
    assert again.code == 0 and "0 done, 1 skipped" in again.err
    assert sorted(files_under(photos)) == ["a.png", "photos_blur/a.png"]


def test_the_computed_output_folder_is_left_out_of_the_walk(tmp_path: Path) -> None:
    """In process: the walk of ``.`` (no --out) never yields files of its own output folder ``./<name>_blur``."""
    photos = tmp_path / "photos"
    for name in ("a.png", "photos_blur/a.png", "photos_blur/photos_blur/a.png", "keep/b.png"):
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        (photos / name).write_bytes(b"")
    naming = planning.Naming("blur", (MaskOutput("alpha"),))
    cwd = os.getcwd()
    try:
        os.chdir(photos)
        planned = list(planning.plan([Path(".")], planning.Destination("beside"), naming))
    finally:
        os.chdir(cwd)
    assert planned == [
        FileJob(Path("a.png"), (Path("photos_blur/a.png"),)),
        FileJob(Path("keep/b.png"), (Path("photos_blur/keep/b.png"),)),
    ]


def test_a_folder_in_place_of_an_output_is_a_failure(tmp_path: Path) -> None:
    """Not an existing output to skip: the file fails with a line naming the folder, and the exit status is 1."""
    photo = small_photo(tmp_path / "a.jpg", size=(64, 64))
    (tmp_path / "out" / "a.jpg").mkdir(parents=True)
    done = run("blur", photo, "--out", f"{tmp_path / 'out'}/")
    assert done.code == 1 and "skipped" not in done.err
    assert f"cannot write {tmp_path / 'out' / 'a.jpg'}: a folder is in its place" in done.err


def test_failures_name_the_input_unless_their_message_is_about_it(capsys: pytest.CaptureFixture[str]) -> None:
    """A message that merely contains the input's name (a temporary file, the other input of a clash) gets the
    input in front; one that is about the input (``cannot read image PATH: ...``) does not."""
    summary = running.Summary()
    summary.fail(Path("a.jpg"), "[Errno 13] Permission denied: 'ro/.a.jpg.32c54b33.segkit-part'")
    summary.fail(Path("b.jpg"), "would write the same output as b.jpg")
    summary.fail(Path("c d.jpg"), "cannot read image c d.jpg: truncated")
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "segkit: error: a.jpg: [Errno 13] Permission denied: 'ro/.a.jpg.32c54b33.segkit-part'",
        "segkit: error: b.jpg: would write the same output as b.jpg",
        "segkit: error: cannot read image c d.jpg: truncated",
    ]


def test_no_progress_bar_is_drawn_into_a_log(photos: Path, tmp_path: Path) -> None:
    """With stderr a file or a pipe (a log, CI), the bar's redraws stay out of it: only the summary line is there."""
    done = run("blur", photos, "--out", f"{tmp_path / 'out'}/")
    assert done.code == 0 and "4 done" in done.err
    assert "\r" not in done.err and "image/s" not in done.err and "it/s" not in done.err


def test_a_fifo_in_a_folder_is_left_out_of_the_walk(tmp_path: Path) -> None:
    """A FIFO named like an image would block the run forever (nobody writes to it); a broken link is still a job,
    so that it is reported."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"")
    os.mkfifo(photos / "b.jpg")
    (photos / "c.png").symlink_to(tmp_path / "gone.png")
    naming = planning.Naming("blur", (MaskOutput("alpha"),))
    planned = list(planning.plan([photos], planning.Destination("folder", tmp_path / "out"), naming))
    assert [job.source.name if isinstance(job, FileJob) else job.path.name for job in planned] == ["a.png", "c.png"]


@pytest.mark.slow
def test_a_folder_run_with_a_fifo_in_it_finishes(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    small_photo(photos / "a.png", size=(96, 96))
    os.mkfifo(photos / "b.jpg")
    done = run("blur", photos, "--out", f"{tmp_path / 'out'}/", timeout=60)
    assert done.code == 0, done.err
    assert sorted(files_under(tmp_path / "out")) == ["a.png"]
