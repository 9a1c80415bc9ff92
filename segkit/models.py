"""The model registry: names to local files, from `$SEGKIT_MODEL_DIR`, the user cache, or a verified download.

The registry is `models/registry.json` in a source checkout, shipped in the wheel as `segkit/_registry/registry.json`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import platformdirs

ENV_VAR = "SEGKIT_MODEL_DIR"
_PACKAGE_DIR = Path(__file__).resolve().parent
_REGISTRY_FILES = (_PACKAGE_DIR / "_registry" / "registry.json", _PACKAGE_DIR.parent / "models" / "registry.json")
_CHUNK = 1 << 16
READ_TIMEOUT_S = 30.0  # one socket read or connect
DOWNLOAD_DEADLINE_S = 600.0  # a whole download, however the bytes trickle in


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
    normalization: tuple[float, float] | None = None
    """(mean, std) for a float model whose file has no normalization metadata (the legacy ones), else None."""

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
                    normalization=(float(e["normalization"][0]), float(e["normalization"][1]))
                    if "normalization" in e
                    else None,
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


class ModelUnavailableError(RuntimeError):
    """A registry model is neither a verified local file nor downloadable now; the message is one line naming the
    model, where segkit looked, ``SEGKIT_MODEL_DIR``, and ``segkit download NAME``."""


def _candidates(model: RegistryEntry) -> list[Path]:
    """The local paths looked at, in order: `$SEGKIT_MODEL_DIR/<file>`, then the cache."""
    env = os.environ.get(ENV_VAR)
    return ([Path(env) / model.file] if env else []) + [cache_dir() / model.file]


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_file(file: Path) -> Path:
    return file.with_name(f".{file.name}.sha256")


def _identity(st: os.stat_result) -> list[int]:
    """What changes whenever a file's bytes may have: size, inode, mtime and ctime (ctime cannot be set back)."""
    return [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


_verified: dict[tuple[str, tuple[int, ...]], str] = {}  # (path, identity) -> sha256, for files this process hashed


def _matches(model: RegistryEntry, file: Path, *, stamp: bool) -> bool:
    """Whether `file` holds the registry's bytes (size, then sha256). The hash is remembered per file identity
    in this process and, with `stamp`, in a sidecar next to the file, so an unchanged file is not hashed again;
    any write changes the identity (ctime at least), so a tampered file is always hashed and caught."""
    try:
        st = file.stat()
    except OSError:
        return False
    if not file.is_file() or st.st_size != model.size:
        return False
    identity = _identity(st)
    key = (str(file), tuple(identity))
    digest = _verified.get(key)
    if digest is None and stamp:
        try:
            saved = json.loads(_stamp_file(file).read_text(encoding="utf-8"))
            if saved.get("identity") == identity and isinstance(saved.get("sha256"), str):
                digest = saved["sha256"]
        except (OSError, ValueError, AttributeError):
            digest = None
    if digest is None:
        try:
            digest = _sha256(file)
        except OSError:
            return False
        if stamp:
            with contextlib.suppress(OSError):
                _stamp_file(file).write_text(json.dumps({"identity": identity, "sha256": digest}), encoding="utf-8")
    _verified[key] = digest
    return digest == model.sha256


def cached(name: str) -> Path | None:
    """The verified local file for `name` (size and sha256 as in the registry), else None."""
    model = info(name)
    for candidate in _candidates(model):
        if _matches(model, candidate, stamp=candidate.parent == cache_dir()):
            return candidate
    return None


def _looked(model: RegistryEntry) -> str:
    env = os.environ.get(ENV_VAR)
    where = ", ".join(str(p) for p in _candidates(model))
    return f"looked at {where}; {ENV_VAR} {'is ' + repr(env) if env else 'is not set'}"


def _unavailable(model: RegistryEntry, why: str) -> ModelUnavailableError:
    env = os.environ.get(ENV_VAR)
    local = f"put {model.file} in {env}" if env else f"set {ENV_VAR} to a folder holding {model.file}"
    return ModelUnavailableError(
        f"model {model.name!r} is not available: {why} ({_looked(model)}); run `segkit download {model.name}` "
        f"when online, or {local} (from {model.url})"
    )


def _check_env_copy(model: RegistryEntry) -> None:
    """A file in `$SEGKIT_MODEL_DIR` named like a registry model must be that model: ModelUnavailableError if not."""
    env = os.environ.get(ENV_VAR)
    if not env:
        return
    file = Path(env) / model.file
    if file.exists() and not _matches(model, file, stamp=False):
        size = file.stat().st_size if file.is_file() else "not a regular file"
        raise ModelUnavailableError(
            f"{file} does not match the registry's {model.name!r} (size {size}, expected {model.size} bytes with "
            f"sha256 {model.sha256}); replace it with the official file from {model.url}, or pass the file's path "
            "instead of the name to use a custom model"
        )


def path(name: str, *, download: bool = True) -> Path:
    """The verified local file for `name`, downloading it into the cache when it is nowhere local.

    ModelUnavailableError when it cannot be had (not local and `download` is False, offline, HTTP error, a
    download that is too large, too slow or corrupt, an unwritable cache), or when the file in
    `$SEGKIT_MODEL_DIR` is not the registry's.
    """
    model = info(name)
    _check_env_copy(model)
    found = cached(name)
    if found is not None:
        return found
    if not download:
        raise _unavailable(model, "no verified local copy and downloading is off")
    return _fetch(model)


def download(name: str, *, force: bool = False, progress: bool = True) -> Path:
    """Fetch registry model `name` into the cache and return its path; without `force`, a verified local copy
    (`$SEGKIT_MODEL_DIR`'s or the cache's) is kept and its path returned instead. ModelUnavailableError when the
    download fails or `$SEGKIT_MODEL_DIR` holds another file of that name (see `path`)."""
    model = info(name)
    if not force:
        _check_env_copy(model)
        found = cached(name)
        if found is not None:
            return found
    return _fetch(model, progress=progress)


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


def normalization(name_or_path: str | os.PathLike[str]) -> tuple[float, float] | None:
    """The (mean, std) the registry gives a model whose file lacks normalization metadata (the legacy entries), when
    ``name_or_path`` names that entry; None for anything else (an existing file wins over a name, as in `resolve`)."""
    if not isinstance(name_or_path, str) or name_or_path not in _registry() or Path(name_or_path).is_file():
        return None
    return _registry()[name_or_path].normalization


def _reason(e: BaseException) -> str:
    """A short reason for a failed download, without the exception chain."""
    import urllib.error  # the HTTP stack is imported only when a download happens: it costs ~50 ms at import

    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    reason = getattr(e, "reason", None) if isinstance(e, urllib.error.URLError) else e
    text = str(reason).strip() if reason is not None else ""
    return f"{type(reason).__name__}: {text}" if text else type(reason).__name__


def _fetch(model: RegistryEntry, *, progress: bool = True) -> Path:
    """`_download` into the cache, with every failure turned into one ModelUnavailableError line."""
    import http.client

    try:
        return _download(model, cache_dir(), progress=progress)
    except _DownloadProblem as e:
        raise _unavailable(model, f"downloading {model.url} failed: {e}") from None
    except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, refused and reset connections
        raise _unavailable(model, f"downloading {model.url} failed: {_reason(e)}") from None


class _DownloadProblem(Exception):
    """A download that must stop: too large, too slow, corrupt, or nowhere to write it."""


def _remove_stale_parts(directory: Path, model: RegistryEntry) -> None:
    """Delete `.part` files of `model` that no live download can own (older than a whole download may take)."""
    limit = time.time() - DOWNLOAD_DEADLINE_S - 60
    target = directory / model.file
    for part in target.parent.glob(f".{target.name}.*.part"):
        with contextlib.suppress(OSError):
            if part.stat().st_mtime < limit:
                part.unlink()


def _download(model: RegistryEntry, directory: Path, *, progress: bool = True) -> Path:
    """Downloads `model` into `directory` atomically: at most `model.size` bytes are accepted, the whole transfer
    must finish within DOWNLOAD_DEADLINE_S, and the temporary `.part` file is removed on every exit."""
    import urllib.request

    target = directory / model.file  # a registry file may sit in a subfolder (legacy/...)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as e:
        raise _DownloadProblem(
            f"the model cache {target.parent} is not writable ({e.strerror or type(e).__name__})"
        ) from None
    tmp = Path(tmp_name)
    try:
        _remove_stale_parts(directory, model)
        deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(model.url, timeout=READ_TIMEOUT_S) as response:
            digest, size = _copy(response, out, model, deadline, progress)
        if size != model.size or digest != model.sha256:
            raise _DownloadProblem(
                f"the download is corrupt: got {size} bytes, sha256 {digest}; expected {model.size} bytes, "
                f"sha256 {model.sha256}"
            )
        try:
            os.replace(tmp, target)
        except OSError as e:
            raise _DownloadProblem(f"cannot write {target} ({e.strerror or type(e).__name__})") from None
        _matches(model, target, stamp=True)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _copy(src: Any, dst: BinaryIO, model: RegistryEntry, deadline: float, progress: bool) -> tuple[str, int]:
    """Copies `src` to `dst` as bytes arrive (read1: a trickle is not waited on until a chunk fills), hashing as
    it goes, with a tqdm bar (or one stderr line); stops past `model.size` bytes or the deadline. (sha256, size)"""
    digest, size = hashlib.sha256(), 0
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=model.size, unit="B", unit_scale=True, desc=model.file, file=sys.stderr, leave=False)
        except ImportError:
            print(f"segkit: downloading {model.file} ({model.size:,} bytes) from {model.url}", file=sys.stderr)
    read = getattr(src, "read1", src.read)
    try:
        while chunk := read(_CHUNK):
            size += len(chunk)
            if size > model.size:
                raise _DownloadProblem(f"the server sent more than the expected {model.size} bytes")
            if time.monotonic() > deadline:
                raise _DownloadProblem(
                    f"it did not finish within {DOWNLOAD_DEADLINE_S:g} s ({size} of {model.size} bytes received)"
                )
            dst.write(chunk)
            digest.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return digest.hexdigest(), size
