#!/usr/bin/env bash
# The browser tests (tests/serve/test_browser.py) drive Debian's headless Chromium through chromium-driver.
# Installs both when missing and this is root on an apt system; otherwise says so (those tests then skip outside CI
# and fail in CI, naming what is missing).
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install_chromium: chromium / chromium-driver missing and not root with apt-get; browser tests need them" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; then
    echo "install_chromium: apt-get could not install chromium chromium-driver; the browser tests will say so" >&2
fi
