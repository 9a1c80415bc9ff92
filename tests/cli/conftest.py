"""Fixtures for the command-line tests: the real ``segkit`` console script in a subprocess, small real photos."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.conftest import data_file, model_dir

SCRIPT = Path(sys.executable).with_name("segkit")


@dataclass(frozen=True)
class Done:
    """A finished ``segkit`` run: exit status, raw stdout, stderr as text."""

    code: int
    out: bytes
    err: str


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a run: the shared models, plus ``extra``."""
    env = dict(os.environ, SEGKIT_MODEL_DIR=str(model_dir()))
    env.update(extra or {})
    return env


def segkit(*args: str | Path, stdin: bytes | None = None, env: Mapping[str, str] | None = None,
           cwd: Path | None = None, timeout: float = 180) -> Done:  # fmt: skip
    """Runs the installed console script with ``args``; fails the test loudly if it is not installed."""
    if not SCRIPT.is_file():
        pytest.fail(f"console script not installed at {SCRIPT}: pip install -e .", pytrace=False)
    done = subprocess.run(
        [str(SCRIPT), *map(str, args)], input=stdin, capture_output=True, env=cli_env(env), cwd=cwd, timeout=timeout
    )
    return Done(done.returncode, done.stdout, done.stderr.decode(errors="replace"))


def read(path: Path | bytes) -> np.ndarray:
    """An image file (or encoded bytes) as an array, mode kept."""
    import io

    with PILImage.open(io.BytesIO(path) if isinstance(path, bytes) else path) as im:
        return np.asarray(im)


def small_photo(path: Path, name: str = "astronaut.png", size: tuple[int, int] = (256, 256)) -> Path:
    """A resized copy of a shared photo at ``path`` (small keeps the runs fast)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with PILImage.open(data_file(name)) as im:
        im.convert("RGB").resize(size).save(path)
    return path


@pytest.fixture()
def portrait(tmp_path: Path) -> Path:
    """A 256 x 256 copy of astronaut.png."""
    return small_photo(tmp_path / "portrait.png")


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """A folder tree of real photos (PNG and JPEG, one subfolder), a text file and a hidden file."""
    tree = tmp_path / "photos"
    small_photo(tree / "a.png")
    small_photo(tree / "b.jpg", "cat.jpg", (300, 200))
    small_photo(tree / "trip" / "c.jpg", "cats_and_dogs.jpg", (320, 160))
    small_photo(tree / "trip" / "d.png", "segmentation_input_rotation0.jpg", (257, 257))
    (tree / "notes.txt").write_text("not an image")
    small_photo(tree / ".hidden.png")
    return tree


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
