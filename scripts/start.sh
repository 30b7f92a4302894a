#!/usr/bin/env bash
# One command for a fresh machine: install everything, load the demo visit, print its
# invitation links and serve Parley on the embedded defaults (SQLite, local storage,
# in-process message queue). State lives under ./var of the current directory.
# PARLEY_HOST / PARLEY_PORT choose the address (default 127.0.0.1:8080).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh"
parley="$here/.venv/bin/parley"
"$parley" db upgrade
"$parley" demo
echo "Open one of the links above in a browser. Press Ctrl+C to stop."
exec "$parley" serve
