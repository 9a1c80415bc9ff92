#!/usr/bin/env bash
# Tests the optional tflite-runtime backend in its own venv (tflite-runtime 2.14 needs numpy<2, so it cannot
# share the main venv). segkit is imported from the checkout (python -m pytest puts it on sys.path), so
# ai-edge-litert is absent there and backend="auto" must pick tflite-runtime.
#
# It never passes without running the tests: SEGKIT_REQUIRE_TFLITE=1 makes the test module fail (not skip) when
# tflite-runtime cannot be imported, and pytest fails when nothing runs. tflite-runtime 2.14, the last release,
# has wheels for CPython 3.9-3.11 only; on a newer $PYTHON the first python3.11/3.10/3.9 on PATH is used instead.
# Without any, the script says so and fails in CI (CI's Python is 3.11, so this never happens there); elsewhere it
# exits 0 after stating in one line that the tflite extra was NOT tested and why.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.ci-venv-tflite
supported() { "$1" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] <= (3, 11)))' 2>/dev/null; }
PY="${PYTHON:-python3}"
if ! supported "$PY"; then
    PY=""
    for candidate in python3.11 python3.10 python3.9; do
        if command -v "$candidate" >/dev/null && supported "$candidate"; then PY="$candidate"; break; fi
    done
fi
if [ -z "$PY" ]; then
    why="tflite-runtime 2.14 has wheels for CPython 3.9-3.11 only, and no such interpreter is on PATH"
    if [ -n "${CI:-}" ]; then
        echo "run_tflite_extra.sh: FAILED: $why (CI must run these tests)" >&2
        exit 1
    fi
    echo "run_tflite_extra.sh: the tflite extra was NOT tested: $why" >&2
    exit 0
fi
if [ -x "$VENV/bin/python" ] && ! supported "$VENV/bin/python"; then rm -rf "$VENV"; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "tflite-runtime==2.14.0" "numpy<2" "flatbuffers>=23.5" \
    "Pillow>=10" "platformdirs>=3" "pytest>=8" "hypothesis>=6.100"
SEGKIT_REQUIRE_TFLITE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "" tests/runtime/test_tflite_backend.py "$@"
