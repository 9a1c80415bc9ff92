"""A stand-in ``mediapipe`` that ``python -m segkit.compat`` puts first on ``PYTHONPATH`` for the processes its
script starts (multiprocessing's spawn and forkserver workers, Python subprocesses), which do not inherit the
parent's import hook: the first ``import mediapipe`` there installs segkit's finder and resolves to segkit."""

import importlib
import sys

del sys.modules[__name__]  # this file is only the way in: the finder serves the name from now on

from segkit import compat  # noqa: E402

compat.install()
sys.modules[__name__] = importlib.import_module(__name__)
