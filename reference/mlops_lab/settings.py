"""Typed settings for every mlops-lab component.

Read once by the entry point (`get_settings()`) and passed down; nothing reads the
environment at import time. Every field can be set with an `MLOPS_`-prefixed variable,
e.g. `MLOPS_HOME=/tmp/lab MLOPS_STABLE_PORT=9001 mlops-lab up`.

    python -c "from mlops_lab.settings import get_settings; print(get_settings())"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Variant = Literal["stable", "canary"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore")

    # --- where state lives: everything the lab writes goes under home (gitignored var/)
    home: Path = Path("var")

    # --- network: loopback only by default; ports are the defaults docs/architecture.md draws
    host: str = "127.0.0.1"
    mlflow_port: int = 5000
    router_port: int = 8000
    stable_port: int = 8001
    canary_port: int = 8002
    monitor_port: int = 8003
    controller_port: int = 8004
    prometheus_port: int = 9090

    # --- MLflow: None means "the local server when it answers, else sqlite under home"
    tracking_uri: str | None = None
    model_name: str = "fraud-detector"
    experiment_name: str = "fraud-detector"
    # A model server pinned to one version instead of following its alias: the release is the
    # manifest (GitOps, an Argo Rollouts pod template), not the registry's alias.
    serve_version: str | None = None

    # --- store: None means SQLite (WAL) at home/store.db; any SQLAlchemy URL works (Postgres in the cluster)
    store_url: str | None = None
    # Bounded so a slow database applies back-pressure instead of eating memory.
    store_queue_size: int = 10_000
    # Flush when this many rows are queued or this much time passed, whichever comes first.
    store_flush_rows: int = 500
    store_flush_interval_s: float = 0.2
    # On shutdown, how long to keep retrying the database before spilling rows to a JSONL file.
    store_shutdown_timeout_s: float = 10.0

    # --- serving
    admin_token: SecretStr = SecretStr("change-me-local-only")
    # How often the model holder checks whether its alias moved (hot reload).
    reload_poll_s: float = 5.0
    # A batch request over this many rows is refused (413) rather than tying up the single worker.
    batch_max_rows: int = 5_000
    # Retry-After sent with 503 while no model is loaded.
    retry_after_s: int = 5
    # Injected latency per prediction, for failure scenarios only (a "slow model").
    inject_latency_ms: float = 0.0
    # The model holder keeps the last loaded versions in memory (an LRU cache bounded by count and
    # size), so a rollback to a recent version is a swap, not a registry download.
    model_cache_versions: int = 3
    model_cache_max_mb: float = 512.0
    # A token bucket per client in front of the predict routes (a batch costs its row count):
    # over its rate a client gets 429 with Retry-After; 0 turns the limiter off. The client is
    # the X-Client-Id header (the router passes it on, or stamps the caller's address), else the
    # peer address; at most `rate_limit_max_clients` buckets.
    rate_limit_per_s: float = 1_000.0
    rate_limit_burst: int = 2_000
    rate_limit_max_clients: int = 10_000

    # --- SLOs (the load report and later the canary judge read these)
    slo_p99_ms: float = 50.0
    slo_error_rate: float = 0.001

    # --- data
    seed: int = 42
    # Mean delay between a prediction and its chargeback label, in seconds (compressed time).
    label_delay_s: float = 30.0

    # --- lifecycle: the decision threshold flags this share of traffic (the review team's capacity)
    flag_budget: float = 0.05
    # --- model flavour (docs/gpu.md): sklearn (default, compiled for serving) or a torch MLP (the
    # optional `gpu` extra: make setup-gpu). Device for torch training and serving: auto = CUDA when
    # torch sees one, else CPU; cuda without a GPU is an error, never a silent CPU fallback.
    model_flavour: Literal["sklearn", "torch"] = "sklearn"
    model_device: Literal["auto", "cpu", "cuda"] = "auto"
    # --- lifecycle: evaluation gate (challenger vs champion on the same holdout)
    gate_pr_auc_margin: float = Field(0.02, description="challenger may be at most this much worse")
    gate_min_recall: float = 0.2
    gate_slice_margin: float = 0.05
    gate_latency_budget_ms: float = 25.0

    # --- monitoring: when drift triggers retraining (mlops_lab.monitoring.policy)
    # One window is this many of the newest stable-variant predictions: enough rows that
    # Evidently's per-column tests are not dominated by sampling noise (500 vs a 5000-row reference).
    monitor_window_rows: int = 500
    # A smaller window is reported but neither counts towards nor resets the trigger.
    monitor_min_samples: int = 500
    # Drift must persist this many windows in a row: one noisy window never retrains.
    monitor_consecutive_windows: int = 3
    # After a trigger, wait this long before the next: a retrain takes minutes to train, gate and canary.
    monitor_cooldown_s: float = 600.0
    # Drifted columns must carry this share of the champion's feature importance (sums to 1),
    # each weighted by its severity (full from twice its threshold), so a shift in a feature the
    # model ignores (device_os, ~2.5%) never retrains it, while a strong shift in any feature with
    # more than 8% does (amount, distance, txn_count: make bench, drift.md).
    monitor_min_importance_share: float = 0.08
    # A feature missing in more than this share of a window's rows raises a data-quality alarm
    # (reported, never a retraining trigger: retraining on a broken upstream join learns the bug).
    monitor_max_null_fraction: float = 0.01

    # How often the monitor service looks for a full new window in the store.
    monitor_interval_s: float = 5.0

    # --- retraining pipeline (mlops_lab.pipeline)
    # Newest stable-variant rows the evaluate step scores with both models to record the canary's
    # expectations (how the challenger should differ from the champion on production traffic).
    pipeline_recent_rows: int = 2_000
    # A run whose data window holds fewer stable-variant predictions than this stops at extract
    # (`window_too_small`; `empty_window` for none): a retrain with nothing new to learn from
    # would only re-fit the base set, and the canary expectation needs production rows.
    pipeline_min_window_rows: int = 200
    # Whose code the loop runs (the labs): "reference", or "exercises" for the learner's
    # exercises, only those in `pipeline_learner` (comma-separated ids; None: every one): the
    # monitor's trigger policy and performance (lab 4), and the retraining pipeline (labs 2 and
    # 3), since the monitor hands both settings to the Airflow run it triggers.
    pipeline_impl: str = "reference"
    pipeline_learner: str | None = None

    # --- canary router (mlops_lab.canary.router)
    # Upstream timeout per request; a canary that times out is retried on stable.
    router_timeout_s: float = 2.0
    # Consecutive canary failures after which the router stops trying it (passive health) ...
    router_unhealthy_after: int = 3
    # ... and waits this long before letting one request probe it again.
    router_probe_after_s: float = 5.0

    # --- canary controller (mlops_lab.canary.controller): shadow first, then these weights (%)
    canary_steps: tuple[int, ...] = (5, 25, 50)
    canary_shadow_s: float = 60.0  # 0 skips the shadow phase
    canary_step_s: float = 60.0  # minimum time at each weight
    canary_look_s: float = 10.0  # the judge looks this often
    # INCONCLUSIVE (too little traffic) may extend a step this long; then the rollout aborts.
    canary_max_wait_s: float = 180.0
    canary_poll_s: float = 2.0  # how often the controller looks for a new @challenger
    # --- canary judge (mlops_lab.canary.judge): see its docstring for what each one means
    canary_alpha: float = 0.01
    canary_planned_samples: int = 2_000
    canary_min_samples: int = 200
    canary_score_tolerance_sd: float = 0.1
    canary_decision_tolerance: float = 0.02
    canary_latency_tolerance: float = 0.03
    canary_latency_floor_ms: float = 1.0

    # --- the cluster path (reference/k8s, docs/cluster.md)
    # Where the other components are when they are not on `host`: in the cluster each one is a
    # Service, e.g. MLOPS_PEER_HOSTS='{"stable": "stable", "canary": "canary", "router": "router"}'.
    peer_hosts: dict[str, str] = Field(default_factory=dict)
    # How the monitor starts a retraining run: "local" runs the pipeline in its own process tree
    # (Airflow under home/); "kubernetes" creates a Job in k8s_namespace (mlops_lab.pipeline.k8s_job);
    # "process" runs the Job's steps in the monitor's own container, without Airflow (reference/compose).
    retrain_backend: Literal["local", "kubernetes", "process"] = "local"
    k8s_namespace: str = "mlops-lab"
    # The retraining Job's image: the one image every component runs. None: mlops-lab:<package version>.
    k8s_image: str | None = None

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{(self.home / 'store.db').resolve()}"

    @property
    def mlflow_server_uri(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def mlflow_sqlite_uri(self) -> str:
        return f"sqlite:///{(self.home / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return (self.home / "mlflow" / "artifacts").resolve()

    @property
    def monitor_state_path(self) -> Path:
        """The trigger policy's state (consecutive drifted windows, last trigger): survives restarts."""
        return self.home / "monitor" / "policy_state.json"

    @property
    def canary_state_path(self) -> Path:
        """The controller's rollout state: survives its restarts."""
        return self.home / "canary" / "rollout.json"

    @property
    def router_state_path(self) -> Path:
        """The router's weights: survive its restarts."""
        return self.home / "router" / "weights.json"

    def port_of(self, variant: Variant) -> int:
        return self.stable_port if variant == "stable" else self.canary_port

    def url_of(self, component: str, port: int) -> str:
        """Base URL of another component: on `host`, or on its peer_hosts entry (a Service name)."""
        return f"http://{self.peer_hosts.get(component, self.host)}:{port}"

    def ensure_dirs(self) -> None:
        for sub in ("", "mlflow/artifacts", "logs", "run", "reports", "data", "bench", "spill"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)


def get_settings(**overrides: object) -> Settings:
    """The one place settings are built; tests pass overrides instead of touching the environment."""
    return Settings(**overrides)  # type: ignore[arg-type]


def child_env(settings: Settings) -> dict[str, str]:
    """Environment for every child: the parent's settings (as MLOPS_* variables, so a child
    sees exactly what its supervisor saw), one BLAS thread per process, no telemetry."""
    env = {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
        "PYTHONUNBUFFERED": "1",
    }
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if name == "home":
            value = Path(value).resolve()
        if isinstance(value, (tuple, list, dict)):
            value = json.dumps(list(value) if isinstance(value, tuple) else value)  # how pydantic reads them
        env[f"MLOPS_{name.upper()}"] = str(value)
    return env
