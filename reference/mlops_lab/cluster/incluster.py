"""Small jobs that run inside the cluster, in the mlops-lab image (reference/k8s, docs/cluster.md).

    python -m mlops_lab.cluster.incluster wait postgres:5432 mlflow:5000   # init containers
    python -m mlops_lab.cluster.incluster bootstrap          # the bootstrap Job: v1 -> @champion
    python -m mlops_lab.cluster.incluster labels --seconds 900   # chargebacks arrive (the story)
    python -m mlops_lab.cluster.incluster bad-candidate      # passes offline, fails online
    python -m mlops_lab.cluster.incluster good-candidate     # a healthy retrain, staged
    python -m mlops_lab.cluster.incluster corrupt-candidate  # an artifact that cannot load

They read the same MLOPS_* settings as every component (the ConfigMap and the Secret), so they
reach MLflow and Postgres by their Service names. The host side (story.kind_story) starts them as
Jobs. `wait` imports nothing but the standard library: it runs before each component starts.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path


def wait(targets: list[str], timeout_s: float = 600.0) -> None:
    """Until every host:port accepts a TCP connection (a crash loop would back off for minutes)."""
    deadline = time.monotonic() + timeout_s
    for target in targets:
        host, _, port = target.rpartition(":")
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
                print(f"{target} is up", flush=True)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{target} still unreachable after {timeout_s:.0f} s: {exc}") from exc
                print(f"waiting for {target} ({exc.__class__.__name__})", flush=True)
                time.sleep(2)


def bootstrap() -> None:
    """Train v1 on the base training set and promote it; a no-op when @champion exists (re-runs)."""
    from mlops_lab.data.generator import generate
    from mlops_lab.data.io import write_frame
    from mlops_lab.lifecycle.release import train_and_release
    from mlops_lab.lifecycle.tracking import CHAMPION, client_for, configure_mlflow_env, version_by_alias
    from mlops_lab.pipeline.k8s_job import BASE_ROWS
    from mlops_lab.settings import get_settings

    configure_mlflow_env()
    s = get_settings()
    champion = version_by_alias(client_for(s), s.model_name, CHAMPION)
    if champion is not None:
        print(f"@{CHAMPION} is v{champion.version} already: nothing to do")
        return
    data = generate("baseline", BASE_ROWS, seed=s.seed)  # the rows every retraining Job regenerates
    write_frame(data, s.home / "data" / "train.parquet")
    rel = train_and_release(s, data, promote=True, actor="cluster-bootstrap", reason="cluster: first model")
    print(f"trained v{rel.trained.version}: {rel.verdict.summary()}")
    if not rel.promoted:
        raise SystemExit(f"v{rel.trained.version} was not promoted: {rel.verdict.summary()}")
    print(f"@{CHAMPION} -> v{rel.trained.version}")


def labels(seconds: float) -> None:
    """Deliver the chargeback labels that have arrived, every second, for `seconds`."""
    from mlops_lab.data.labels import deliver_arrived
    from mlops_lab.settings import get_settings
    from mlops_lab.store.db import Store

    s = get_settings()
    store = Store(s.resolved_store_url)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            added, in_flight = deliver_arrived(store, s.label_delay_s)
            if added:
                print(f"{added} labels arrived; {in_flight} in flight", flush=True)
            time.sleep(1.0)
    finally:
        store.dispose()


def bad_candidate(rows: int = 30_000) -> None:
    """The demo's act 5: trained on a warehouse export with amounts in cents, so it passes the
    offline gate and shows its skew only online; staged for the controller to roll out (and back)."""
    _candidate(rows, cents=True)


def good_candidate(rows: int = 30_000) -> None:
    """A healthy retrain (fresh baseline rows), gated and staged: a rollout that should promote,
    for the scenarios that break something else in the middle of it (story.containers_story)."""
    _candidate(rows, cents=False)


def _candidate(rows: int, *, cents: bool) -> None:
    from mlops_lab.canary.stage import record_expectation, stage
    from mlops_lab.data.generator import features_only, generate
    from mlops_lab.data.schema import SCHEMA
    from mlops_lab.lifecycle.release import gate_version
    from mlops_lab.lifecycle.tracking import configure_mlflow_env
    from mlops_lab.lifecycle.train import train
    from mlops_lab.settings import get_settings
    from mlops_lab.store.db import Store

    configure_mlflow_env()
    s = get_settings()
    if cents:
        export = generate("covariate_shift", rows, seed=s.seed + 40)
        export = export.assign(amount=export["amount"] * 100)
        cap = next(f.maximum for f in SCHEMA.features if f.name == "amount")
        export = export[export["amount"] <= (cap or float("inf"))]
        reason = "cluster test: retrain on the warehouse export"
    else:
        export, reason = generate("baseline", rows, seed=s.seed + 50), "cluster test: a healthy retrain"
    version = train(s, export, lineage={"trigger_reason": reason}).version
    verdict, _ = gate_version(s, version)
    print(f"v{version} offline gate: {verdict.summary()}", flush=True)
    if not verdict.passed:
        raise SystemExit(f"v{version} should pass the offline gate: {verdict.summary()}")
    store = Store(s.resolved_store_url)
    try:
        recent = features_only(store.predictions_frame(variant="stable").tail(2_000))
    finally:
        store.dispose()
    if recent.empty:
        raise SystemExit("no stable predictions yet: send traffic first")
    # The candidate's view of the same requests: in cents for the skewed one (what its training
    # data taught it to expect), unchanged for the healthy one.
    seen = recent.assign(amount=recent["amount"] * 100) if cents else recent
    record_expectation(s, version, recent, seen)
    stage(s, version, actor="cluster-test", reason=reason)
    print(f"@challenger -> v{version}")


def corrupt_candidate(rows: int = 5_000) -> None:
    """Register a version, overwrite its largest artifact file with garbage through the MLflow
    server, and stage it: the canary's load must fail, and the rollout must abort."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from mlops_lab.canary.stage import stage
    from mlops_lab.data.generator import generate
    from mlops_lab.lifecycle.tracking import client_for, configure_mlflow_env
    from mlops_lab.lifecycle.train import train
    from mlops_lab.settings import get_settings

    configure_mlflow_env()
    s = get_settings()
    version = train(
        s, generate("baseline", rows, seed=s.seed + 60), lineage={"trigger_reason": "corrupt"}
    ).version
    uri = client_for(s).get_model_version_download_uri(s.model_name, version)
    repo = get_artifact_repository(uri)
    files = [f for f in repo.list_artifacts() if not f.is_dir and f.path != "MLmodel"]
    target = max(files, key=lambda f: f.file_size or 0).path
    with tempfile.TemporaryDirectory() as tmp:
        garbage = Path(tmp) / Path(target).name
        garbage.write_bytes(b"this is not a model")
        repo.log_artifact(str(garbage), str(Path(target).parent) if "/" in target else None)
    print(f"v{version}: {target} overwritten with garbage", flush=True)
    stage(s, version, actor="cluster-test", reason="cluster test: corrupt artifact")
    print(f"@challenger -> v{version}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("wait").add_argument("targets", nargs="+", help="host:port")
    sub.add_parser("bootstrap")
    sub.add_parser("labels").add_argument("--seconds", type=float, default=900.0)
    sub.add_parser("bad-candidate")
    sub.add_parser("good-candidate")
    sub.add_parser("corrupt-candidate")
    args = parser.parse_args(argv)
    if args.command == "wait":
        wait(args.targets)
        return
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    {
        "bootstrap": bootstrap,
        "bad-candidate": bad_candidate,
        "good-candidate": good_candidate,
        "corrupt-candidate": corrupt_candidate,
        "labels": lambda: labels(args.seconds),
    }[args.command]()


if __name__ == "__main__":
    main(sys.argv[1:])
