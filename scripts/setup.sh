#!/usr/bin/env bash
# Create .venv from the lock (idempotent), install mlops-lab editable, and get promtool.
# Run by `make setup` (which skips it when nothing changed since the last run).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
UV_VERSION=0.13.8
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "mlops-lab needs Python 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/uv" --version 2>/dev/null | grep -q "$UV_VERSION"; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
echo "installing the locked dependencies (requirements/lock.txt)"
# --compile-bytecode: the first `make lab-1` or `mlops-lab` command would otherwise compile
# every module it imports (about three times slower than a warm start).
"$VENV/bin/uv" pip sync --quiet --compile-bytecode --python "$VENV/bin/python" requirements/lock.txt
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps -e .
"$VENV/bin/python" -m compileall -q reference/mlops_lab
# The sync above removes what the lock does not list: put the optional gpu extra (torch) back
# when `make setup-gpu` installed it before (it leaves this marker).
if [ -f "$VENV/.gpu-extra" ]; then
  echo "re-installing the gpu extra (requirements/gpu.txt)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -c requirements/lock.txt -r requirements/gpu.txt
fi

# promtool (alert rule tests) and the Prometheus server come from Debian's package.
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's prometheus (promtool)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) \
      || echo "warning: could not install prometheus; alert rule tests will be skipped" >&2
  else
    echo "note: promtool not found. Install Prometheus (Debian/Ubuntu: sudo apt-get install prometheus," \
         "macOS: brew install prometheus) to run the alert rule tests." >&2
  fi
fi
# Headless Chromium drives the docs site in tests/e2e/test_browser.py; it comes from Debian's package.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium (the docs browser test)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; the docs browser test will be skipped" >&2
  else
    echo "note: chromium not found. Install it (Debian/Ubuntu: sudo apt-get install chromium," \
         "macOS: brew install --cask chromium) to run the docs browser test." >&2
  fi
fi
echo "setup done: $("$VENV/bin/mlops-lab" --help >/dev/null && echo 'mlops-lab ready')"
