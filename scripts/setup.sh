#!/usr/bin/env bash
# Installs what Parley needs into this checkout: a Python venv with Parley and its
# pinned dependencies, and the browser libraries from npm (served by Parley itself).
# With --test it also installs the test tools and Debian's Chromium for browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ "$want_test" = 1 ]; then
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  command -v docker-compose >/dev/null || need_apt+=(docker-compose)
  # The media engine for real meetings (tests run it in their own configuration).
  command -v janus >/dev/null || need_apt+=(janus)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "Installing Debian packages: ${need_apt[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extra=""
[ "$want_test" = 1 ] && extra="[test]"
stamp=".venv/.parley-installed${extra}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "Installing Python packages into .venv ..."
  .venv/bin/pip install -q --disable-pip-version-check -e ".${extra}"
  touch "$stamp"
fi

if [ ! -d client_web/node_modules ] || [ client_web/package-lock.json -nt client_web/node_modules ]; then
  echo "Installing browser libraries with npm ..."
  npm ci --prefix client_web --no-audit --no-fund --loglevel=error
  touch client_web/node_modules
fi
