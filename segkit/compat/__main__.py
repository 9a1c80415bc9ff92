"""``python -m segkit.compat script.py [args...]``: run a MediaPipe program with ``import mediapipe`` served by segkit.

The script runs as ``__main__`` with ``sys.argv`` set and its folder as ``sys.path[0]``, like ``python
script.py``; ``-m module [args...]`` runs a module like ``python -m module``. Exit status: the script's own; 2 for
a usage error or a script that cannot be opened.
"""

from __future__ import annotations

import os
import runpy
import sys

from segkit.compat import install

USAGE = "usage: python -m segkit.compat (script.py | -m module) [args...]"
CHILDREN_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_children")
"""Put first on ``PYTHONPATH``: processes the script starts (spawn, forkserver, subprocesses) get segkit too."""


def _reach_children() -> None:
    """Makes ``import mediapipe`` resolve to segkit in the Python processes the script starts, which begin without
    this process's import hook (multiprocessing's spawn is the default on macOS and Windows, forkserver on Linux
    from Python 3.14): their ``mediapipe`` is first the stand-in in ``_children``, which installs the hook."""
    current = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = CHILDREN_PATH if not current else CHILDREN_PATH + os.pathsep + current
    # multiprocessing hands its workers this process's sys.path (instead of the one PYTHONPATH gives them); here
    # the finder, first on sys.meta_path, is asked before any path entry, so the stand-in is never imported.
    sys.path.insert(1, CHILDREN_PATH)


def main(argv: list[str]) -> int:
    """Runs the script or module ``argv`` names with the shim installed; returns the exit status."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    install()
    _reach_children()
    if argv[0] == "-m":
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    script = argv[0]
    if not os.path.isfile(script):
        print(f"segkit.compat: can't open file {os.path.abspath(script)!r}: no such file", file=sys.stderr)
        return 2
    sys.argv = [script, *argv[1:]]
    path = os.path.abspath(script)  # ``__file__`` absolute, as `python script.py` gives it (3.9+)
    sys.path[0] = os.path.dirname(path)  # as `python script.py` sets it
    runpy.run_path(path, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
