"""The wheel and sdist as PyPI would see them: license, metadata, one version, a description fit for PyPI."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import segkit

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly built wheel and sdist of this checkout."""
    out = tmp_path_factory.mktemp("dist")
    for kind in ("--wheel", "--sdist"):
        subprocess.run(
            [sys.executable, "-m", "build", kind, "--outdir", str(out), str(ROOT)],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return out


def _wheel_metadata(dist: Path) -> tuple[zipfile.ZipFile, str]:
    wheel = zipfile.ZipFile(next(dist.glob("*.whl")))
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return wheel, wheel.read(name).decode()


@pytest.mark.slow
def test_wheel_carries_license_metadata_and_one_version(dist: Path) -> None:
    wheel, text = _wheel_metadata(dist)
    meta = Parser().parsestr(text)
    assert meta["Version"] == segkit.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert any(n.endswith("licenses/LICENSE") for n in wheel.namelist())
    assert "Apache License" in wheel.read(next(n for n in wheel.namelist() if n.endswith("licenses/LICENSE"))).decode()
    classifiers = meta.get_all("Classifier") or []
    for minor in range(10, 15):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert any(c.startswith("Operating System ::") for c in classifiers)
    urls = meta.get_all("Project-URL") or []
    assert any(u.startswith("Homepage, https://") for u in urls)
    assert meta["Author"]
    assert any(n.endswith("py.typed") for n in wheel.namelist())
    assert any(n.endswith("registry.json") for n in wheel.namelist())
    assert not any(n.endswith(".tflite") for n in wheel.namelist())


@pytest.mark.slow
def test_pypi_description_has_no_development_paths_or_relative_links(dist: Path) -> None:
    _, text = _wheel_metadata(dist)
    description = Parser().parsestr(text).get_payload()
    assert isinstance(description, str)
    assert "MediaPipe" in description and "```python" in description
    assert "../shared" not in description and "shared/" not in description
    assert "](docs/" not in description, "relative links are broken on PyPI"
    assert "development-only" not in description


@pytest.mark.slow
def test_sdist_carries_license_and_docs(dist: Path) -> None:
    with tarfile.open(next(dist.glob("*.tar.gz"))) as sdist:
        names = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in sdist.getnames() if "/" in n}
    for required in ("LICENSE", "README.md", "CHANGELOG.md", "CONTRIBUTING.md", "pyproject.toml"):
        assert required in names
    assert not any(n.endswith(".tflite") for n in names)


def test_every_public_name_loads_on_first_use_from_a_bare_interpreter() -> None:
    """``segkit``'s names load lazily (so the command line starts light): each one in ``__all__`` resolves, ``dir``
    lists them, and an unknown one is a plain AttributeError."""
    code = (
        "import segkit, sys; assert 'numpy' not in sys.modules; "
        "missing = [n for n in segkit.__all__ if getattr(segkit, n, None) is None]; "
        "assert not missing, missing; assert set(segkit.__all__) <= set(dir(segkit)); "
        "assert segkit.tasks.vision.ImageSegmenter is segkit.ImageSegmenter\n"
        "try:\n    segkit.no_such_name\nexcept AttributeError as e:\n    print(e)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "module 'segkit' has no attribute 'no_such_name'"
