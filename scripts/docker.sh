#!/usr/bin/env bash
# A running Docker engine, or one line saying why there cannot be one (exit 2).
# Run by `make docker`. Idempotent: with an engine that answers `docker info`, it does nothing.
#
# Where no engine runs (a CI machine or a container without an init system), as root on a
# Debian-like Linux it installs Debian's docker.io and starts dockerd in the background (there
# is no systemd to start it), logging to var/docker/dockerd.log, and waits until `docker info`
# answers. Anywhere else (macOS, no root, no apt-get) it says what to do instead: on a laptop,
# Docker Desktop or the distribution's service.
set -euo pipefail
cd "$(dirname "$0")/.."

WAIT_S=${DOCKER_WAIT_S:-60}
LOG_DIR=var/docker

fail() {
  echo "docker: $*" >&2
  exit 2
}

engine_answers() {
  command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1
}

if engine_answers; then
  echo "docker: the engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  exit 0
fi
[ "$(uname -s)" = Linux ] || fail "no running engine: start Docker Desktop (https://docs.docker.com/get-docker/)"
if ! command -v dockerd >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "no running engine and no dockerd: install Docker (https://docs.docker.com/engine/install/) or run this as root"
  command -v apt-get >/dev/null 2>&1 || fail "no running engine and no apt-get to install one: install Docker (https://docs.docker.com/engine/install/)"
  echo "docker: installing Debian's docker.io"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null) \
    || fail "apt-get could not install docker.io"
fi
[ "$(id -u)" = 0 ] || fail "dockerd is installed but not running: sudo systemctl start docker (or run this as root)"
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl start docker || fail "systemctl start docker failed: journalctl -u docker"
else
  mkdir -p "$LOG_DIR"
  echo "docker: starting dockerd in the background (no init system; log: $LOG_DIR/dockerd.log)"
  nohup dockerd >"$LOG_DIR/dockerd.log" 2>&1 &
fi
for _ in $(seq 1 "$((WAIT_S * 2))"); do
  if engine_answers; then
    echo "docker: the engine answers ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 0.5
done
fail "dockerd did not answer within ${WAIT_S}s: $(tail -n 1 "$LOG_DIR/dockerd.log" 2>/dev/null || echo 'see journalctl -u docker')"
