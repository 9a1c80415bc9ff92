"""The command line's dispatch: parse, run the command, turn expected errors into one line and an exit status.

Imported by ``segkit.cli.main`` once it is running (with it come numpy, Pillow and LiteRT).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from segkit.batch import COMMANDS, MissingExtraError, SetupError
from segkit.cli import EXIT_FAILED, EXIT_UNAVAILABLE, interrupted
from segkit.cli.parsing import RunOptions, UsageError, build_parser
from segkit.cli.running import MissingExtra, ModelProblem, run_command, stdout_gone

__all__ = ["run"]

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


def run(argv: Sequence[str] | None = None) -> int:
    """The command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status (``segkit.cli``'s)."""
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
        return interrupted()
    return EXIT_FAILED
