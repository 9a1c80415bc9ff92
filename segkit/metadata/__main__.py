"""`python -m segkit.metadata MODEL`: print what segkit reads from a model file."""

from __future__ import annotations

import sys
from pathlib import Path

from segkit.metadata.describe import describe
from segkit.metadata.info import read_model_info


def main(argv: list[str] | None = None) -> int:
    """Print `describe(read_model_info(...))` for each model path; 1 when a file cannot be read."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m segkit.metadata MODEL [MODEL ...]", file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        try:
            print(f"== {path}\n{describe(read_model_info(Path(path).read_bytes()))}")
        except (OSError, ValueError) as e:
            print(f"{path}: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
