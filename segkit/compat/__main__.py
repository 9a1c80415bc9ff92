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


def main(argv: list[str]) -> int:
    """Runs the script or module ``argv`` names with the shim installed; returns the exit status."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    install()
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
    sys.path[0] = os.path.dirname(os.path.abspath(script))  # as `python script.py` sets it
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
