#!/usr/bin/env bash
# Tests the optional tflite-runtime backend in its own venv (tflite-runtime 2.14 needs numpy<2, so it cannot
# share the main venv). segkit is imported from the checkout (python -m pytest puts it on sys.path), so
# ai-edge-litert is absent there and backend="auto" must pick tflite-runtime.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.ci-venv-tflite
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then
    echo "tflite-runtime 2.14 has no wheel for $("$PY" -V); skipping the tflite extra tests" >&2
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "tflite-runtime==2.14.0" "numpy<2" "flatbuffers>=23.5" \
    "Pillow>=10" "platformdirs>=3" "pytest>=8" "hypothesis>=6.100"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/runtime/test_tflite_backend.py "$@"
