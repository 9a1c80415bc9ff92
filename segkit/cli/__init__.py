"""The ``segkit`` command line: segment images, folders and videos, or apply a mask effect to them.

- ``dispatch``: parse, run the command, and turn expected errors into one line and an exit status;
- ``parsing``: the grammar (argparse), bounded number types, and ``RunOptions``, the typed options of a run;
- ``planning``: the ``--out`` rules, output names, and the lazy walk of input folders;
- ``running``: the task, the engine (``segkit.batch``'s local pool or ``segkit.ray``), progress and the summary;
- ``model_commands``: ``models``, ``info`` and ``download``.

Exit status: 0 ok, 1 some inputs failed, 2 usage error, 3 missing optional dependency or model unavailable,
130 interrupted (Ctrl-C). Expected errors are one line on stderr, never a traceback.

This module imports nothing heavy, so that a Ctrl-C while numpy, Pillow and LiteRT load (the first quarter of a
second) is an interruption like any other.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def interrupted() -> int:
    """Ctrl-C: one line, exit status 130."""
    print("segkit: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segkit`` console script; returns the exit status (see the module docstring)."""
    try:
        from segkit.cli.dispatch import run
    except KeyboardInterrupt:
        return interrupted()
    return run(argv)
