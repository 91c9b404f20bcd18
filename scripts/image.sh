#!/usr/bin/env bash
# The mlops-lab images, built on this machine (make image): the app image every component runs
# (Dockerfile), and the Postgres and Prometheus images the compose file runs (reference/docker/).
#
#   scripts/image.sh            # base (pulled, or built from Debian packages), wheelhouse, images
#   scripts/image.sh base       # only the base image: prints its name
#
# The base: MLOPS_BASE_IMAGE when set; else the public python:3.11-slim-trixie when it is present
# or can be pulled (a laptop); else a Debian bookworm base built here with debootstrap from the
# Debian mirror (bookworm ships Python 3.11, the project's version), tagged mlops-lab/base:bookworm.
# That last path is for machines that reach Debian's and PyPI's mirrors but no container registry:
# nothing is pulled from anywhere else.
#
# Python packages install inside the build from requirements/wheelhouse/, a folder of wheels this
# script downloads on the host from requirements/runtime.txt (exact versions, from the lock), so the
# build needs no network and installs the same files every time. Needs a running engine (make docker).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
IMAGE=${IMAGE:-mlops-lab:$VERSION}
PUBLIC_BASE=python:3.11-slim-trixie
LOCAL_BASE=mlops-lab/base:bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WHEELHOUSE=requirements/wheelhouse
PIP=${PIP:-.venv/bin/pip}

say() { echo "image: $*" >&2; }
die() { echo "image: $*" >&2; exit 2; }

docker info >/dev/null 2>&1 || die "no Docker engine answers: run make docker first (docs/cluster.md)"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# A minimal Debian with Python 3.11: debootstrap into a temporary root, imported as one layer.
# passwd for the image's user, python3-venv for the virtual environment (it brings ensurepip).
build_local_base() {
  if ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      die "no debootstrap to build a base image, and no public one reachable: set MLOPS_BASE_IMAGE"
    fi
    say "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  local root
  root=$(mktemp -d /tmp/mlops-lab-rootfs.XXXXXX)
  say "building $LOCAL_BASE with debootstrap (bookworm, minbase, python3; about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
    bookworm "$root" "$DEBIAN_MIRROR" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; die "debootstrap failed"; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root.log"
  tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' - "$LOCAL_BASE" >/dev/null
  rm -rf "$root"
}

base_image() {
  if [ -n "${MLOPS_BASE_IMAGE:-}" ]; then echo "$MLOPS_BASE_IMAGE"; return; fi
  if have_image "$PUBLIC_BASE" || timeout 60 docker pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then
    echo "$PUBLIC_BASE"; return
  fi
  have_image "$LOCAL_BASE" || build_local_base
  echo "$LOCAL_BASE"
}

# The wheels of requirements/runtime.txt, downloaded again only when that file changed.
wheelhouse() {
  local stamp="$WHEELHOUSE/.runtime.sha256" want
  want=$(sha256sum requirements/runtime.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  say "downloading the wheels of requirements/runtime.txt into $WHEELHOUSE"
  rm -rf "$WHEELHOUSE" && mkdir -p "$WHEELHOUSE"
  "$PIP" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -r requirements/runtime.txt -d "$WHEELHOUSE"
  # The project's own build backend, so `pip install .` in the image needs no index either.
  "$PIP" download --quiet --disable-pip-version-check --only-binary=:all: "setuptools>=69" -d "$WHEELHOUSE"
  echo "$want" >"$stamp"
}

# The Postgres and Prometheus images come from Debian's packages on a Debian base: the public
# debian image where it can be pulled, else the local one.
debian_base() {
  if have_image debian:bookworm-slim || timeout 60 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
    echo debian:bookworm-slim; return
  fi
  have_image "$LOCAL_BASE" || build_local_base
  echo "$LOCAL_BASE"
}

build() {
  local base debian
  base=$(base_image)
  wheelhouse
  say "building $IMAGE on $base"
  local started=$SECONDS
  docker build --quiet --build-arg "PYTHON_IMAGE=$base" --build-arg "VERSION=$VERSION" \
    --build-arg "GIT_SHA=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" -t "$IMAGE" . >/dev/null
  say "$IMAGE built in $((SECONDS - started)) s: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
  debian=$(debian_base)
  for part in postgres prometheus; do
    docker build --quiet --build-arg "BASE=$debian" -t "mlops-lab/$part:$VERSION" \
      -f "reference/docker/$part.Dockerfile" reference/docker >/dev/null
    say "mlops-lab/$part:$VERSION built on $debian"
  done
}

case "${1:-build}" in
  base) base_image ;;
  wheelhouse) wheelhouse ;;
  build) build ;;
  *) die "usage: scripts/image.sh [build|base|wheelhouse]" ;;
esac
