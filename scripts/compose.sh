#!/usr/bin/env bash
# The whole system as containers (reference/compose/compose.yaml), on this machine's Docker engine.
#
#   scripts/compose.sh up        # make compose-up: images, containers, v1 trained; prints the URLs
#   scripts/compose.sh down      # make compose-down: containers, one-off jobs, networks, volumes
#   scripts/compose.sh story     # make demo TARGET=containers
#   scripts/compose.sh scenario NAME|all   # make scenario S=containers/NAME
#
# The compose CLI: `docker compose` (v2) where installed, else `docker-compose` (Debian's 1.29,
# installed here as root when neither exists). One line and exit 2 when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=reference/compose/compose.yaml
ROUTER=${MLOPS_COMPOSE_ROUTER:-http://127.0.0.1:8000}

say() { echo "compose: $*" >&2; }
die() { echo "compose: $*" >&2; exit 2; }

compose_cli() {
  if docker compose version >/dev/null 2>&1; then echo "docker compose"; return; fi
  if command -v docker-compose >/dev/null 2>&1; then echo "docker-compose"; return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's docker-compose"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
    echo "docker-compose"; return
  fi
  die "no compose CLI: install Docker Compose (https://docs.docker.com/compose/install/)"
}

compose() {
  # shellcheck disable=SC2046
  $(compose_cli) -p mlops-lab -f "$FILE" "$@"
}

up() {
  scripts/docker.sh
  scripts/image.sh
  local started=$SECONDS
  compose up -d --remove-orphans >/dev/null 2>&1 || compose up -d --remove-orphans
  say "containers started; waiting for v1 (the bootstrap container trains it) and the router"
  for _ in $(seq 1 300); do
    if [ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' mlops-lab-bootstrap 2>/dev/null)" = "exited 1" ]; then
      docker logs --tail 20 mlops-lab-bootstrap >&2
      die "the bootstrap container failed (its log above)"
    fi
    if .venv/bin/python -c "import httpx, sys; sys.exit(httpx.get('$ROUTER/readyz', timeout=2).status_code != 200)" 2>/dev/null; then
      say "ready in $((SECONDS - started)) s: router $ROUTER, MLflow http://127.0.0.1:5000, Prometheus http://127.0.0.1:9090"
      say "next: make demo TARGET=containers, make scenario S=containers/canary-killed, make compose-down"
      return
    fi
    sleep 2
  done
  compose ps >&2
  die "the router is not ready after 10 minutes (docker logs mlops-lab-stable)"
}

down() {
  if ! docker info >/dev/null 2>&1; then say "no Docker engine: nothing to stop"; return; fi
  docker ps -aq --filter name='^mlops-lab-job-' | xargs -r docker rm -f >/dev/null
  compose down --volumes --remove-orphans
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  story) .venv/bin/python -m mlops_lab.story.containers_story story ;;
  scenario) .venv/bin/python -m mlops_lab.story.containers_story scenario "${2#containers/}" ;;
  *) die "usage: scripts/compose.sh up|down|story|scenario NAME" ;;
esac
