#!/usr/bin/env bash
# README's test command. Installs segkit[test] into .venv, sets up a software Vulkan GPU (Mesa lavapipe) where
# it can (root and apt), tests the optional tflite-runtime backend and the legacy selfie_segmentation solution
# (against mediapipe 0.10.21) in their own venvs, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,lint]"
export SEGKIT_MODEL_DIR="${SEGKIT_MODEL_DIR:-$(cd .. && pwd)/shared/models}"
lavapipe=../shared/gpu/lavapipe.sh
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$lavapipe" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    eval "$(bash "$lavapipe")"
fi
# Headless Chromium and its driver for the Try-it page tests (tests/serve/test_browser.py).
bash tests/serve/install_chromium.sh
# The lint and type gates: any finding fails the run before a test starts.
bash scripts/lint.sh
bash tests/runtime/run_tflite_extra.sh
bash tests/solutions/run_legacy_parity.sh
# Every tier: -m "" lifts the default deselection of the slow and gpu tests (pyproject's addopts).
exec .venv/bin/python -m pytest -q -p no:cacheprovider -m "" "$@"
