"""The reference story, played locally end to end (stage 1: train, register, serve, load).

    mlops-lab demo                  # what `make demo` runs
    mlops-lab demo --profile short  # the end-to-end test's faster profile

State lives in home/demo (wiped at the start, so every run tells the same story); the
report goes to home/reports/demo-<time>/index.html. The demo stops every process it
started, and exits non-zero if any step of the story did not play out.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from rich.console import Console

from mlops_lab.data.generator import generate
from mlops_lab.data.io import write_frame
from mlops_lab.data.labels import deliver_arrived
from mlops_lab.lifecycle.registry import history
from mlops_lab.lifecycle.release import train_and_release
from mlops_lab.runtime.load import run_load
from mlops_lab.runtime.report import Report, new_figure
from mlops_lab.runtime.supervisor import Supervisor, mlflow_spec, server_spec
from mlops_lab.serving.batch import batch_predict
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store


@dataclass(frozen=True)
class Profile:
    train_rows: int
    load_users: int
    load_duration: str
    batch_rows: int
    label_delay_s: float


PROFILES = {
    "full": Profile(
        train_rows=60_000, load_users=8, load_duration="30s", batch_rows=200_000, label_delay_s=3.0
    ),
    "short": Profile(
        train_rows=20_000, load_users=4, load_duration="8s", batch_rows=20_000, label_delay_s=1.0
    ),
}


class StoryFailed(Exception):
    """A step of the story did not play out; the message says which and why."""


class Timeline:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.start = time.monotonic()
        self.events: list[tuple[float, str, str]] = []

    def step(self, what: str, detail: str = "", ok: bool = True) -> None:
        t = time.monotonic() - self.start
        self.events.append((t, what, detail))
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"[dim]{t:6.1f}s[/] {mark} [bold]{what}[/] {detail}")


def run_demo(settings: Settings, profile: str = "full", console: Console | None = None) -> Path:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose {', '.join(PROFILES)}")
    p = PROFILES[profile]
    console = console or Console()
    reports = settings.home / "reports"
    demo_home = settings.home / "demo"
    if demo_home.exists():
        Supervisor(settings.model_copy(update={"home": demo_home})).stop_all()
        shutil.rmtree(demo_home)
    s = settings.model_copy(
        update={
            "home": demo_home,
            "tracking_uri": None,
            "store_url": None,
            "label_delay_s": p.label_delay_s,
            "reload_poll_s": 1.0,
        }
    )
    s.ensure_dirs()
    out = reports / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    tl = Timeline(console)
    sup = Supervisor(s)
    report = Report(f"mlops-lab demo ({profile} profile)")
    failure: StoryFailed | None = None
    outcome = f"did not finish: see the timeline and the logs in {s.home / 'logs'}"
    try:
        _story(s, p, sup, tl, report, out)
        outcome = "played out: every step below passed its check"
    except StoryFailed as exc:
        failure = exc
        outcome = f"did not play out: {exc}"
        tl.step("story did not play out", str(exc), ok=False)
    finally:
        stopped = sup.stop_all()
        tl.step("stopped every process the demo started", ", ".join(stopped))
        report.text("Outcome", f"The story {outcome}.", first=True)
        report.table("Timeline", [(f"{t:.1f}s", w, d) for t, w, d in tl.events], ["time", "step", "detail"])
        index = report.write(out)
    console.print(f"\nreport: [bold]{index}[/]")
    if failure is not None:
        raise failure
    return index


def _story(s: Settings, p: Profile, sup: Supervisor, tl: Timeline, report: Report, out: Path) -> None:
    train = generate("baseline", p.train_rows, seed=s.seed)
    write_frame(train, s.home / "data" / "train.parquet")
    tl.step(
        "generated training data",
        f"{len(train):,} baseline transactions, fraud rate {train['is_fraud'].mean():.2%}",
    )

    sup.start(mlflow_spec(s))
    tl.step("MLflow server up", s.mlflow_server_uri)

    rel = train_and_release(
        s, train, promote=True, actor="demo", reason="demo: first model", lineage={"trigger_reason": "demo"}
    )
    m = rel.trained.metrics
    tl.step(
        f"trained and registered v{rel.trained.version}",
        f"PR-AUC {m['pr_auc']:.3f}, recall {m['recall']:.3f}, gate {rel.verdict.summary()}",
    )
    if not rel.promoted:
        raise StoryFailed(f"v{rel.trained.version} was not promoted: {rel.verdict.summary()}")
    tl.step(f"@champion -> v{rel.trained.version}", "alias move written to the audit log")
    report.table(
        "Model",
        [
            ("version", rel.trained.version),
            ("run id", rel.trained.run_id),
            ("data fingerprint", rel.trained.data_fingerprint),
            ("decision threshold", rel.trained.threshold),
            *m.items(),
        ],
    )
    report.table(
        "Evaluation gate",
        [(c.name, c.passed, c.detail) for c in rel.verdict.checks],
        ["check", "pass", "detail"],
    )

    sup.start(server_spec(s, "stable"))
    base = f"http://{s.host}:{s.stable_port}"
    _wait_ready(base, timeout_s=60)
    info = httpx.get(f"{base}/v1/model", timeout=5).json()
    tl.step("stable server ready", f"{base} serves v{info['version']} ({info['scorer']} scorer)")
    if info["version"] != rel.trained.version:
        raise StoryFailed(f"stable serves v{info['version']}, champion is v{rel.trained.version}")

    load = run_load(s, base, out / "load", users=p.load_users, duration=p.load_duration)
    slo = "met" if load.slo_met else "MISSED"
    tl.step(
        "load test",
        f"{load.requests:,} requests, {load.rps:.0f} req/s, p50 {load.p50_ms:.1f} ms, "
        f"p99 {load.p99_ms:.1f} ms, errors {load.error_rate:.2%} -> SLO {slo}",
    )
    tl.console.print(load.markdown())
    report.table("Load test and SLO", [(k, v) for k, v in load.as_dict().items()])
    _latency_plot(report, out / "load" / "locust_stats_history.csv")
    if not load.slo_met:
        raise StoryFailed(f"SLO missed: p99 {load.p99_ms} ms, error rate {load.error_rate:.3%}")

    store = Store(s.resolved_store_url)
    stored = _wait_for_rows(store, load.requests - load.failures)
    tl.step(
        "every acknowledged prediction is in the store",
        f"{stored:,} rows >= {load.requests - load.failures:,} 200s",
    )
    time.sleep(p.label_delay_s * 3)
    added, in_flight = deliver_arrived(store, p.label_delay_s)
    realized = _realized(store)
    tl.step(
        "delayed labels arrived",
        f"{added:,} labels ({in_flight:,} in flight): realized precision "
        f"{realized['precision']:.3f}, recall {realized['recall']:.3f}",
    )
    report.table("Realized performance from delayed labels", list(realized.items()))
    _score_plot(report, store, rel.trained.threshold)

    batch_in = s.home / "data" / "batch.parquet"
    write_frame(generate("baseline", p.batch_rows, seed=s.seed + 1), batch_in)
    t0 = time.monotonic()
    res = batch_predict(
        s,
        f"models:/{s.model_name}@champion",
        batch_in,
        s.home / "data" / "scored.parquet",
        show_progress=False,
    )
    dt = time.monotonic() - t0
    tl.step(
        "batch inference",
        f"{res.rows:,} rows in {dt:.1f}s ({res.rows / dt:,.0f} rows/s), {res.flagged:,} flagged",
    )
    audit = [
        (str(e["ts"]), e["actor"], e["action"], e["details"].get("version"), e["details"].get("reason"))
        for e in history(store, s.model_name)
    ]
    report.table("Audit log", audit, ["time", "actor", "action", "version", "reason"])
    report.data.update(
        {
            "load": load.as_dict(),
            "model": {"version": rel.trained.version, **m},
            "realized": realized,
            "batch": {"rows": res.rows, "seconds": dt},
        }
    )
    store.dispose()


def _wait_ready(base: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{base}/readyz", timeout=2)
            if r.status_code == 200:
                return
            last = r.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.25)
    raise StoryFailed(f"{base} not ready after {timeout_s:.0f}s: {last}")


def _wait_for_rows(store: Store, at_least: int, timeout_s: float = 10) -> int:
    deadline = time.monotonic() + timeout_s
    n = store.count_predictions()
    while n < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
        n = store.count_predictions()
    if n < at_least:
        raise StoryFailed(f"only {n} predictions stored for {at_least} acknowledged")
    return n


def _realized(store: Store) -> dict[str, Any]:
    preds = store.predictions_frame()
    joined = preds.merge(store.labels_frame()[["request_id", "label"]], on="request_id")
    y, d = joined["label"].to_numpy(), joined["decision"].to_numpy().astype(bool)
    tp = int((d & (y == 1)).sum())
    return {
        "labelled predictions": len(joined),
        "fraud rate": float(y.mean()) if len(y) else float("nan"),
        "precision": tp / max(1, int(d.sum())),
        "recall": tp / max(1, int((y == 1).sum())),
    }


def _latency_plot(report: Report, history_csv: Path) -> None:
    if not history_csv.exists():
        return
    hist = pd.read_csv(history_csv)
    hist = hist[(hist["Name"] == "Aggregated") & (hist["User Count"] > 0)]
    for col in ("50%", "95%", "99%"):
        hist[col] = pd.to_numeric(hist[col], errors="coerce")
    fig, ax = new_figure()
    t = hist["Timestamp"] - hist["Timestamp"].min()
    for col in ("50%", "95%", "99%"):
        ax.plot(t, hist[col], label=f"p{col.rstrip('%')}")
    ax.set_yscale(
        "log"
    )  # the ramp-up second (users spawning, cold connections) dwarfs the rest on a linear axis
    ax.set(
        xlabel="seconds into the load test",
        ylabel="latency (ms, log)",
        title="Latency percentiles under load",
    )
    ax.legend()
    report.figure(
        "Latency under load", fig, "Percentiles seen by locust (client side, includes the HTTP stack)."
    )


def _score_plot(report: Report, store: Store, threshold: float) -> None:
    preds = store.predictions_frame()
    if preds.empty:
        return
    fig, ax = new_figure()
    ax.hist(preds["score"], bins=np.linspace(0, 1, 51), color="#0969da")
    ax.axvline(threshold, color="#cf222e", linestyle="--", label=f"decision threshold {threshold:.3f}")
    ax.legend()
    ax.set_yscale("log")
    ax.set(xlabel="fraud score", ylabel="predictions (log)", title="Scores served by the stable model")
    report.figure("Served score distribution", fig)
