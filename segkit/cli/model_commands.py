"""The commands about models rather than images: ``models`` (the registry), ``info`` (metadata), ``download``."""

from __future__ import annotations

from collections.abc import Sequence

from segkit.cli.parsing import UsageError
from segkit.cli.running import ModelProblem, resolve_model


def list_models() -> int:
    """Prints the registry: name, local file (or 'not cached') and description."""
    from segkit import models

    width = max(len(name) for name in models.names()) + 2  # the longest name still leaves a gap
    for name in models.names():
        local = models.cached(name)
        where = str(local) if local is not None else f"not cached (segkit download {name})"
        print(f"{name:{width}}{where}\n{'':{width}}{models.info(name).description}")
    return 0


def show_info(model: str) -> int:
    """Prints everything in one model's metadata."""
    from segkit import metadata

    path = resolve_model(model)
    try:
        info = metadata.read_model_info(path.read_bytes())
    except (ValueError, OSError) as e:
        raise ModelProblem(f"cannot read model {path}: {e}") from None
    print(f"file: {path}")
    print(metadata.describe(info))
    return 0


def download(names: Sequence[str], *, every: bool, force: bool, quiet: bool) -> int:
    """Fetches registry models into the cache (sha256 verified), printing each file's path."""
    from segkit import models

    if every == bool(names):
        raise UsageError("name the models to download, or give --all (not both)")
    wanted = models.names() if every else tuple(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in models.names()]
    if unknown:
        raise UsageError(f"unknown model {unknown[0]!r}; known models: {', '.join(models.names())}")
    for name in wanted:
        try:
            print(models.download(name, force=force, progress=not quiet))
        except models.ModelUnavailableError as e:
            raise ModelProblem(str(e)) from None
        except (ValueError, OSError) as e:
            raise ModelProblem(f"cannot download {name!r}: {e}") from None
    return 0
