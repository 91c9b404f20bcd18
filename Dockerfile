# One image for every mlops-lab component; the command picks the component (reference/k8s,
# reference/compose):
#   mlops-lab serve --variant stable|canary, mlops-lab route, mlops-lab monitor,
#   mlops-lab canary run, mlflow server ..., and the Jobs (bootstrap, retraining).
#
# make image (scripts/image.sh) builds it on any machine with a Docker engine:
#   - the base: the public Python image on a laptop; where no container registry is reachable, a
#     Debian bookworm base built with debootstrap from Debian's packages (PYTHON_IMAGE);
#   - the Python packages: requirements/runtime.txt (the lock's versions of what the components
#     run: no dev tools, no Airflow), from requirements/wheelhouse/ (wheels the script downloads on
#     the host: the build needs no network) or from PyPI when that folder is empty.
# By hand, on a laptop:
#   docker build -t mlops-lab:0.1.0 --build-arg VERSION=0.1.0 --build-arg GIT_SHA=$(git rev-parse --short=12 HEAD) .
# The gpu overlay's image adds torch from PyPI (requirements/gpu.txt): --build-arg WITH_GPU=1 -t mlops-lab:0.1.0-gpu
# No RUN --mount or syntax directive: the classic builder and BuildKit both build it, offline.
#
# Runs as uid 10001 with a read-only root filesystem: everything it writes goes under
# /var/lib/mlops-lab (HOME and MLOPS_HOME, a volume) or /tmp (the manifests mount both).

# Debian pinned by name (trixie), so a rebuild next year gets security fixes, not a new distro.
# Pin the digest too (python:3.11-slim-trixie@sha256:...) for byte-for-byte rebuilds.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---------------------------------------------------------------- builder: the venv, from the lock
FROM ${PYTHON_IMAGE} AS builder
ARG WITH_GPU=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
# pip compiles .pyc at install time: the runtime cannot write them (read-only root), and every
# component would otherwise recompile MLflow, pandas and sklearn on each start.
RUN python3 -m venv /opt/venv
WORKDIR /src
# The requirements first: the slow layer is rebuilt only when they change, not on every code edit.
# --no-deps: runtime.txt is already the whole closure, pinned; pip check proves it is complete.
COPY requirements/ requirements/
RUN if ls requirements/wheelhouse/*.whl >/dev/null 2>&1; then \
      set -- --no-index --find-links requirements/wheelhouse; \
    fi; \
    /opt/venv/bin/pip install --quiet "$@" --no-deps -r requirements/runtime.txt \
    && /opt/venv/bin/pip check
RUN if [ "$WITH_GPU" = "1" ]; then \
      /opt/venv/bin/pip install --quiet -c requirements/lock.txt -r requirements/gpu.txt; \
    fi
# The project itself as a wheel, installed in the runtime stage: a code edit rebuilds these small
# layers only, and the runtime's copy of the venv above stays cached.
COPY pyproject.toml README.md ./
COPY reference/ reference/
RUN if ls requirements/wheelhouse/*.whl >/dev/null 2>&1; then \
      set -- --no-index --find-links requirements/wheelhouse; \
    fi; \
    /opt/venv/bin/pip wheel --quiet "$@" --no-deps --wheel-dir /dist .

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
COPY --from=builder /dist /dist
RUN PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    /opt/venv/bin/pip install --quiet --no-deps --no-index /dist/*.whl && rm -rf /dist

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
