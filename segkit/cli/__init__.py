"""The ``segkit`` command line: segment images, folders and videos, or apply a mask effect to them.

- ``parsing``: the grammar (argparse), bounded number types, and ``RunOptions``, the typed options of a run;
- ``planning``: the ``--out`` rules, output names, and the lazy walk of input folders;
- ``running``: the task, the engine (``segkit.batch``'s local pool or ``segkit.ray``), progress and the summary;
- ``model_commands``: ``models``, ``info`` and ``download``.

Exit status: 0 ok, 1 some inputs failed, 2 usage error, 3 missing optional dependency or model unavailable,
130 interrupted (Ctrl-C). Expected errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from segkit.batch import COMMANDS, MissingExtraError, SetupError
from segkit.cli.parsing import RunOptions, UsageError, build_parser
from segkit.cli.running import MissingExtra, ModelProblem, run_command, stdout_gone

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
SERVE_HINT = 'segkit serve needs the serve extra: pip install "segkit[serve]"'


def _serve(argv: Sequence[str]) -> int:
    """``segkit serve ...``: hands the remaining arguments to ``segkit.serve.main``."""
    try:
        from segkit.serve import main as serve_main
    except ImportError:
        raise MissingExtra(SERVE_HINT) from None
    return serve_main(argv)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, ``timeout``, a service manager): stop like Ctrl-C, workers stopped, no partial files."""
    raise SystemExit(128 + signum)


def _setup_hint(message: str) -> str:
    """The command-line option that fixes a setup error, where the library's message names only its own API."""
    if "NormalizationOptions" in message:  # a float model without normalization metadata (MediaPipe's wording)
        return "; give --normalization MEAN,STD (e.g. 127.5,127.5 for inputs in [-1, 1], 0,255 for [0, 1])"
    return ""


def _dispatch(args: argparse.Namespace) -> int:
    """Runs the parsed command."""
    from segkit.cli import model_commands

    if args.command == "models":
        return model_commands.list_models()
    if args.command == "info":
        return model_commands.show_info(args.model)
    if args.command == "download":
        return model_commands.download(args.names, every=args.all, force=args.force, quiet=args.quiet)
    if args.command not in COMMANDS:
        raise UsageError(f"unknown command {args.command!r}")
    return run_command(RunOptions.from_args(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segkit`` console script; returns the exit status (see the module docstring)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        if arguments[:1] == ["serve"]:
            return _serve(arguments[1:])
        args = build_parser().parse_args(arguments)
        signal.signal(signal.SIGTERM, _terminated)
        try:
            code = _dispatch(args)
            if sys.stdout is not None:
                sys.stdout.flush()  # here, where a reader that went away (``segkit models | head -1``) is caught
            return code
        except UsageError as e:
            args.subparser.error(str(e))
    except BrokenPipeError:
        stdout_gone()
    except (MissingExtra, MissingExtraError, ModelProblem) as e:
        print(f"segkit: error: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except SetupError as e:
        print(f"segkit: error: {e}{_setup_hint(str(e))}", file=sys.stderr)
    except KeyboardInterrupt:
        print("segkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED
