#!/usr/bin/env bash
# Installs what the browser test of `discover ui` (tests/test_web.py) needs beside the test
# extra (which brings Playwright's Python package, used only as a driver): Debian's
# chromium (no `playwright install`: the test launches /usr/bin/chromium). Safe to run
# again: every step checks first.
#
# Usage (as root, on Debian):  bash .ci/browser.sh
# Progress goes to stderr. Exits non-zero if chromium cannot be installed.
set -euo pipefail

log() { echo "browser.sh: $*" >&2; }

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    log "chromium is missing and installing it needs root"
    exit 1
  fi
  log "installing chromium from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y chromium >&2
fi
log "$(chromium --version 2>/dev/null || echo 'chromium installed')"

log "ready"
