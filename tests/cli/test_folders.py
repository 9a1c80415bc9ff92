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
from segkit.cli import planning
from tests.cli.conftest import SCRIPT, cli_env, files_under, read
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
    """Ctrl-C while a run replaces its own input (--out src --overwrite) leaves the source intact and decodable."""
    big_photos(tmp_path / "big", 12)
    before = files_under(tmp_path / "big")
    folder = tmp_path / "big"
    stamps = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    code, _ = interrupt(["cutout", folder, "--out", f"{folder}/", "--overwrite", "-w", "1"],
                        lambda: any(p.stat().st_mtime_ns != stamp for p, stamp in stamps.items()))  # fmt: skip
    assert code == 130
    after = files_under(tmp_path / "big")
    assert sorted(after) == sorted(before)  # no temporary file left, nothing lost
    for name, data in after.items():
        image = read(data)
        assert image.shape[:2] == (1200, 2400)
        assert data == before[name] or image.shape[2] == 4  # either untouched or completely replaced
    assert np.any([after[n] == before[n] for n in after])


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
