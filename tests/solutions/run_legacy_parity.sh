#!/usr/bin/env bash
# segkit's legacy selfie_segmentation against the real mediapipe 0.10.21 (the last release with mp.solutions),
# in its own venv: 0.10.21 needs numpy<2, so it cannot share the main venv. segkit is imported from the checkout
# (python -m pytest puts it on sys.path). cvzone 1.6.1 (mp.solutions) and 2.0.0 (Tasks API) are installed without
# their opencv-python dependency (mediapipe's opencv-contrib-python provides cv2) into folders of their own, for the
# third-party-program tests.
#
# mediapipe 0.10.21 has wheels for CPython 3.9-3.12; on a newer $PYTHON the first python3.12/3.11/3.10/3.9 on PATH
# is used instead. It never passes without running the tests: no such interpreter, a failed install, a failed or
# empty test run all exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.ci-venv-mp0_10
supported() { "$1" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; }
PY="${PYTHON:-python3}"
if ! supported "$PY"; then
    PY=""
    for candidate in python3.12 python3.11 python3.10 python3.9; do
        if command -v "$candidate" >/dev/null && supported "$candidate"; then PY="$candidate"; break; fi
    done
fi
if [ -z "$PY" ]; then
    echo "run_legacy_parity.sh: FAILED: mediapipe 0.10.21 has wheels for CPython 3.9-3.12 only, and no such" \
        "interpreter is on PATH (set PYTHON to one)" >&2
    exit 1
fi
if [ -x "$VENV/bin/python" ] && ! supported "$VENV/bin/python"; then rm -rf "$VENV"; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" "mediapipe==0.10.21" "numpy<2" "ai-edge-litert>=2.3,<2.4" "Pillow>=10" "platformdirs>=3" \
    "pytest>=8" "hypothesis>=6.100"
for version in 1.6.1 2.0.0; do
    [ -f "$VENV/cvzone/$version/cvzone/SelfiSegmentationModule.py" ] ||
        "${PIP[@]}" --no-deps --target "$VENV/cvzone/$version" "cvzone==$version"
done
export SEGKIT_MODEL_DIR="${SEGKIT_MODEL_DIR:-$(cd .. && pwd)/shared/models}"
SEGKIT_CVZONE_DIR="$PWD/$VENV/cvzone" "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "" \
    tests/solutions/legacy_parity.py "$@"
