#!/usr/bin/env bash
# Debian's Chromium and its WebDriver, for the dashboard's end-to-end test.
# Test tools cannot download browsers of their own here, so the test drives
# these by explicit path (/usr/bin/chromium, /usr/bin/chromedriver).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

apt_install chromium chromium-driver
log "browser: $(chromium --version 2>/dev/null | head -1)"
