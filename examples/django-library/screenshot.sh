#!/usr/bin/env bash
# The Django admin in a real browser: headless Chromium (Debian's `chromium`) loads the
# admin's login page from the running compose project (`capsule compose up -d`) and
# saves a screenshot, so its HTML and CSS can be looked at.
#   examples/django-library/screenshot.sh [OUT.png] [PATH]     (DJANGO_PORT, default 8000)
set -euo pipefail
out=${1:-admin-login.png}
path=${2:-/admin/login/}
port=${DJANGO_PORT:-8000}
fail() { echo "screenshot: $*" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || fail "chromium is missing; run: apt-get install -y chromium"
curl -fsS -o /dev/null "http://127.0.0.1:$port$path" ||
    fail "nothing answers http://127.0.0.1:$port$path: start the app with capsule compose up -d"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
timeout 60 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile" --window-size=1100,700 \
    --screenshot="$out" "http://127.0.0.1:$port$path" >/dev/null 2>&1 ||
    fail "chromium could not load http://127.0.0.1:$port$path"
[ -s "$out" ] || fail "chromium wrote no screenshot to $out"
echo "$out"
