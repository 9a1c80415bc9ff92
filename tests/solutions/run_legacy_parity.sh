#!/usr/bin/env bash
# segkit's legacy selfie_segmentation against the real mediapipe 0.10.21 (the last release with mp.solutions),
# in its own venv: 0.10.21 needs numpy<2, so it cannot share the main venv. segkit is imported from the checkout
# (python -m pytest puts it on sys.path). cvzone 1.6.1 (mp.solutions) and 2.0.0 (Tasks API) are installed without
# their opencv-python dependency (mediapipe's opencv-contrib-python provides cv2) into folders of their own, for the
# third-party-program tests. Any failure to build the venv or to pass the tests exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.ci-venv-mp0_10
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 12))'; then
    echo "mediapipe 0.10.21 has wheels for Python 3.9-3.12 only, not $("$PY" -V); set PYTHON to one" >&2
    exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" "mediapipe==0.10.21" "numpy<2" "ai-edge-litert>=2.3,<2.4" "Pillow>=10" "platformdirs>=3" \
    "pytest>=8" "hypothesis>=6.100"
for version in 1.6.1 2.0.0; do
    [ -f "$VENV/cvzone/$version/cvzone/SelfiSegmentationModule.py" ] ||
        "${PIP[@]}" --no-deps --target "$VENV/cvzone/$version" "cvzone==$version"
done
export SEGKIT_MODEL_DIR="${SEGKIT_MODEL_DIR:-$(cd .. && pwd)/shared/models}"
SEGKIT_CVZONE_DIR="$PWD/$VENV/cvzone" "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/solutions/legacy_parity.py "$@"
