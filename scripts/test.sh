#!/usr/bin/env bash
# One command for a fresh machine: install everything (venv, npm packages, Debian's
# Chromium and docker-compose) and run the whole test suite against the local
# PostgreSQL (127.0.0.1:5432, database "test") and Redis (127.0.0.1:6379), after
# mypy --strict and ruff.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh" --test
cd "$here"
echo "Type check (mypy --strict) and lint (ruff) ..."
.venv/bin/mypy --strict server schedules parley_client
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -p no:cacheprovider -ra --durations=15 "$@"
