"""The model registry: names to local files, from `$SEGKIT_MODEL_DIR`, the user cache, or a verified download.

The registry is `models/registry.json` in a source checkout, shipped in the wheel as `segkit/_registry/registry.json`.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import platformdirs

ENV_VAR = "SEGKIT_MODEL_DIR"
_PACKAGE_DIR = Path(__file__).resolve().parent
_REGISTRY_FILES = (_PACKAGE_DIR / "_registry" / "registry.json", _PACKAGE_DIR.parent / "models" / "registry.json")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RegistryEntry:
    """One registry entry: where the official file lives, how to verify it, and what it computes."""

    name: str
    file: str
    url: str
    sha256: str
    size: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    labels: tuple[str, ...]
    description: str

    @property
    def num_classes(self) -> int:
        """Number of output classes (mask channels)."""
        return len(self.labels)


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, RegistryEntry]:
    """The registry, read once from the wheel copy or else the source checkout."""
    for file in _REGISTRY_FILES:
        if file.is_file():
            entries: dict[str, dict[str, Any]] = json.loads(file.read_text(encoding="utf-8"))["models"]
            return {
                name: RegistryEntry(
                    name=name,
                    file=e["file"],
                    url=e["url"],
                    sha256=e["sha256"],
                    size=int(e["size"]),
                    input_shape=tuple(e["input_shape"]),
                    output_shape=tuple(e["output_shape"]),
                    labels=tuple(e["labels"]),
                    description=e["description"],
                )
                for name, e in entries.items()
            }
    raise RuntimeError(f"segkit's model registry is missing; looked at {', '.join(map(str, _REGISTRY_FILES))}")


def names() -> tuple[str, ...]:
    """The registered model names."""
    return tuple(_registry())


def info(name: str) -> RegistryEntry:
    """The registry entry for `name`; ValueError listing the known names otherwise."""
    try:
        return _registry()[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names())}") from None


def cache_dir() -> Path:
    """Where downloaded models are kept (the per-user cache directory)."""
    return Path(platformdirs.user_cache_dir("segkit"))


def _candidates(model: RegistryEntry) -> list[Path]:
    """The local paths looked at, in order: `$SEGKIT_MODEL_DIR/<file>`, then the cache."""
    env = os.environ.get(ENV_VAR)
    return ([Path(env) / model.file] if env else []) + [cache_dir() / model.file]


def cached(name: str) -> Path | None:
    """The local file for `name` if there is one (the cache copy only when its size is right), else None."""
    model = info(name)
    for candidate in _candidates(model):
        in_cache = candidate.parent == cache_dir()
        if candidate.is_file() and (not in_cache or candidate.stat().st_size == model.size):
            return candidate
    return None


def path(name: str, *, download: bool = True) -> Path:
    """The local file for `name`, downloading it into the cache (checksum-verified) when it is nowhere local."""
    model = info(name)
    found = cached(name)
    if found is not None:
        return found
    looked = ", ".join(str(p) for p in _candidates(model))
    hint = f"set {ENV_VAR} to a folder holding {model.file} (from {model.url})"
    if not download:
        raise FileNotFoundError(f"model {name!r} not found locally (looked at {looked}); {hint}")
    try:
        return _download(model, cache_dir())
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
        reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
        raise ConnectionError(
            f"model {name!r} not found locally (looked at {looked}) and downloading {model.url} failed: {reason}; "
            f"{hint}"
        ) from e


def resolve(name_or_path: str | os.PathLike[str], *, download: bool = True) -> Path:
    """An existing file path as is, or a registry name through `path`; ValueError for anything else."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    if isinstance(name_or_path, str) and name_or_path in _registry():
        return path(name_or_path, download=download)
    raise ValueError(
        f"{os.fspath(name_or_path)!r} is neither an existing file nor a known model; known models: {', '.join(names())}"
    )


def _download(model: RegistryEntry, directory: Path) -> Path:
    """Downloads `model` into `directory` atomically; a size or sha256 mismatch deletes it and raises ValueError."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / model.file
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{model.file}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(model.url, timeout=30) as response:
            digest, size = _copy_with_progress(response, out, model)
        if size != model.size or digest != model.sha256:
            raise ValueError(
                f"download of {model.name!r} from {model.url} is corrupt: got {size} bytes, sha256 {digest}; "
                f"expected {model.size} bytes, sha256 {model.sha256}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _copy_with_progress(src: BinaryIO, dst: BinaryIO, model: RegistryEntry) -> tuple[str, int]:
    """Copies `src` to `dst` in chunks, hashing as it goes, with a tqdm bar (or one stderr line); (sha256, size)."""
    digest, size = hashlib.sha256(), 0
    try:
        from tqdm import tqdm

        bar = tqdm(total=model.size, unit="B", unit_scale=True, desc=model.file, file=sys.stderr, leave=False)
    except ImportError:
        bar = None
        print(f"segkit: downloading {model.file} ({model.size:,} bytes) from {model.url}", file=sys.stderr)
    try:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return digest.hexdigest(), size
