# syntax=docker/dockerfile:1
# One image for every mlops-lab component; the command picks the component (reference/k8s):
#   mlops-lab serve --variant stable|canary, mlops-lab route, mlops-lab monitor,
#   mlops-lab canary run, mlflow server ..., and the Jobs (bootstrap, retraining).
#
# scripts/cluster.sh up builds it like this (the tag is the version in pyproject.toml):
#   docker build -t mlops-lab:0.1.0 --build-arg VERSION=0.1.0 --build-arg GIT_SHA=$(git rev-parse --short=12 HEAD) .
# The gpu overlay's image adds torch (requirements/gpu.txt): --build-arg WITH_GPU=1 -t mlops-lab:0.1.0-gpu
#
# Runs as uid 10001 with a read-only root filesystem: everything it writes goes under
# /var/lib/mlops-lab (HOME and MLOPS_HOME, a volume) or /tmp (the manifests mount both).

# Debian pinned by name (trixie), so a rebuild next year gets security fixes, not a new distro.
# Pin the digest too (python:3.11-slim-trixie@sha256:...) for byte-for-byte rebuilds.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---------------------------------------------------------------- builder: the venv, from the lock
FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.8
ARG WITH_GPU=0
# Compile .pyc at build time: the runtime cannot write them (read-only root), and every
# component would otherwise recompile MLflow, pandas and sklearn on each start.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install "uv==${UV_VERSION}" && python -m venv /opt/venv
WORKDIR /src
# The lock first: the slow layer is rebuilt only when the lock changes, not on every code edit.
COPY requirements/ requirements/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip sync --python /opt/venv/bin/python requirements/lock.txt
RUN --mount=type=cache,target=/root/.cache/uv \
    if [ "$WITH_GPU" = "1" ]; then \
      uv pip install --python /opt/venv/bin/python -c requirements/lock.txt -r requirements/gpu.txt; \
    fi
COPY pyproject.toml README.md ./
COPY reference/ reference/
RUN uv pip install --python /opt/venv/bin/python --no-deps .

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
ARG VERSION=0.0.0
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="mlops-lab" \
      org.opencontainers.image.description="mlops-lab reference system: model servers, router, monitor, canary controller, MLflow" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 mlops \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mlops-lab --no-create-home \
       --shell /usr/sbin/nologin mlops \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/mlops-lab
COPY --from=builder /opt/venv /opt/venv

# HOME too: MLflow, matplotlib and friends write caches under ~ when they write at all.
# One BLAS/OpenMP thread per process: scale by pods, as locally by processes (docs/architecture.md).
# MLOPS_HOST: a container has its own network namespace, so it listens on all its interfaces.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    HOME=/var/lib/mlops-lab \
    MLOPS_HOME=/var/lib/mlops-lab \
    MLOPS_HOST=0.0.0.0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    MLOPS_LAB_VERSION="${VERSION}" \
    MLOPS_LAB_GIT_SHA="${GIT_SHA}"

VOLUME ["/var/lib/mlops-lab"]
WORKDIR /var/lib/mlops-lab
USER 10001:10001
EXPOSE 5000 8000 8001 8002 8003 8004
CMD ["mlops-lab", "--help"]
