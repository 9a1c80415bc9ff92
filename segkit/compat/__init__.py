"""Run unmodified MediaPipe image-segmentation code on segkit: ``import mediapipe`` resolves to segkit.

``install()`` puts a finder first on ``sys.meta_path`` that serves ``mediapipe`` and the submodules segkit mirrors
(``mediapipe.tasks.python.vision.image_segmenter``, ``mediapipe.solutions.selfie_segmentation``, ...) as segkit's
own modules, whether or not MediaPipe is installed; any other ``mediapipe`` submodule raises an ImportError that
says what segkit provides. ``python -m segkit.compat script.py [args...]`` runs a script that way.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

__all__ = ["MEDIAPIPE_VERSION", "MODULES", "install", "installed", "uninstall"]

MEDIAPIPE_VERSION = "1.2.2"
"""The MediaPipe release whose API and masks segkit reproduces: ``mediapipe.__version__`` under the shim, so that
version checks (``>= 0.10``: the Tasks API) take the branch that fits."""

# MediaPipe module -> the segkit module that stands in for it (names only: segkit's one public API)
MODULES: dict[str, str] = {
    "mediapipe": "segkit",
    "mediapipe.tasks": "segkit.tasks",
    "mediapipe.tasks.vision": "segkit.tasks.vision",
    "mediapipe.tasks.python": "segkit.tasks.python",
    "mediapipe.tasks.python.core": "segkit.tasks.python.core",
    "mediapipe.tasks.python.core.base_options": "segkit.tasks.python.core.base_options",
    "mediapipe.tasks.python.vision": "segkit.tasks.python.vision",
    "mediapipe.tasks.python.vision.image_segmenter": "segkit.tasks.python.vision.image_segmenter",
    "mediapipe.tasks.python.vision.core": "segkit.tasks.python.vision.core",
    "mediapipe.tasks.python.vision.core.image": "segkit.tasks.python.vision.core.image",
    "mediapipe.tasks.python.vision.core.image_processing_options": (
        "segkit.tasks.python.vision.core.image_processing_options"
    ),
    "mediapipe.tasks.python.vision.core.vision_task_running_mode": (
        "segkit.tasks.python.vision.core.vision_task_running_mode"
    ),
    "mediapipe.tasks.python.components": "segkit.tasks.python.components",
    "mediapipe.tasks.python.components.containers": "segkit.tasks.python.components.containers",
    "mediapipe.tasks.python.components.containers.rect": "segkit.tasks.python.components.containers.rect",
    "mediapipe.solutions": "segkit.solutions",
    "mediapipe.solutions.selfie_segmentation": "segkit.solutions.selfie_segmentation",
    "mediapipe.solutions.drawing_utils": "segkit.solutions.drawing_utils",
    # MediaPipe 0.10's real home of the legacy solutions (mp.solutions is mediapipe.python.solutions)
    "mediapipe.python": "segkit.compat.mediapipe_python",
    "mediapipe.python.solutions": "segkit.solutions",
    "mediapipe.python.solutions.selfie_segmentation": "segkit.solutions.selfie_segmentation",
    "mediapipe.python.solutions.drawing_utils": "segkit.solutions.drawing_utils",
}

PROVIDES = (
    "segkit provides only MediaPipe's image segmenter (mediapipe.tasks.python.vision.ImageSegmenter) and the "
    "selfie segmentation solution (mediapipe.solutions.selfie_segmentation)"
)


class _AliasLoader(importlib.abc.Loader):
    """Loads a ``mediapipe`` name as a module holding the public names of the segkit module that stands in for it.

    A module of its own (named ``mediapipe...``, same objects inside) rather than segkit's module itself, so
    ``from mediapipe.solutions import hands`` asks this finder for ``mediapipe.solutions.hands`` and gets its
    message, and importing ``mediapipe.python`` never adds attributes to segkit's modules."""

    def __init__(self, target: str) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default: a fresh module named spec.name

    def exec_module(self, module: ModuleType) -> None:
        source = importlib.import_module(self._target)
        names = {k: v for k, v in vars(source).items() if not k.startswith("_")}
        module.__dict__.update(names)
        module.__doc__ = source.__doc__
        for special in ("__all__", "__getattr__", "__version__", "__file__"):
            if special in vars(source):
                setattr(module, special, vars(source)[special])
        if module.__name__ == "mediapipe":
            module.__dict__["__version__"] = MEDIAPIPE_VERSION


class MediaPipeFinder(importlib.abc.MetaPathFinder):
    """Serves ``mediapipe`` and its mirrored submodules from segkit; refuses every other ``mediapipe.*``."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "mediapipe" and not fullname.startswith("mediapipe."):
            return None
        stand_in = MODULES.get(fullname)
        if stand_in is None:
            # no ``name=``: ``from mediapipe.solutions import hands`` would swallow an error naming the module it
            # tried and report a bare "cannot import name" instead of this message
            raise ModuleNotFoundError(f"No module named {fullname!r}: {PROVIDES}")
        is_package = hasattr(importlib.import_module(stand_in), "__path__")
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(stand_in), is_package=is_package)


_FINDER = MediaPipeFinder()


def installed() -> bool:
    """Whether ``import mediapipe`` currently resolves to segkit."""
    return _FINDER in sys.meta_path


def install() -> None:
    """Make ``import mediapipe`` (and its mirrored submodules) resolve to segkit from now on; idempotent.

    Raises RuntimeError if the real ``mediapipe`` is already imported: install before the first import of it."""
    if installed():
        return
    real = sys.modules.get("mediapipe")
    if real is not None:
        raise RuntimeError(
            f"mediapipe is already imported (from {getattr(real, '__file__', real)!r}); "
            "call segkit.compat.install() before the first `import mediapipe`"
        )
    sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Undo ``install()``: remove the finder and forget the ``mediapipe`` names it served."""
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name, module in list(sys.modules.items()):
        if isinstance(getattr(getattr(module, "__spec__", None), "loader", None), _AliasLoader):
            del sys.modules[name]
