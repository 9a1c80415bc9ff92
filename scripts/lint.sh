#!/usr/bin/env bash
# The house's lint and type gates (configured in pyproject.toml): ruff lint, ruff format, mypy --strict, pyright.
# Run by scripts/test.sh (and so by CI) before the tests, and by pre-commit; exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
"$BIN/ruff" check segkit tests benchmarks scripts
"$BIN/ruff" format --check segkit tests benchmarks scripts
"$BIN/mypy"
"$BIN/pyright"
echo "lint: ruff, ruff format, mypy, pyright: no findings"
