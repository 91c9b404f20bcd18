"""Lab 1, exercise `slo-check`: a load test judged against an SLO.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/runtime/load.py       Docs: docs/labs/lab-1-serving.md

`run_load` (written) runs locust headless against a server and hands its CSV summary to
`report_from_csv`. You write the judgement: read the totals into a `LoadReport`, compute the
error rate, and decide whether the SLO (p99 latency and error rate, from the settings) is met.
"""

from __future__ import annotations

import contextlib
import csv
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from mlops_lab.runtime.load import LOCUSTFILE  # the reference locust user: realistic transactions
from mlops_lab.settings import Settings


@dataclass(frozen=True)
class LoadReport:
    host: str
    scenario: str
    duration: str
    users: int
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    model_version: str | None
    slo_p99_ms: float
    slo_error_rate: float

    @property
    def error_rate(self) -> float:
        # TODO(lab-1): failures / requests. What is the error rate of a test that sent nothing?
        raise NotImplementedError("TODO(lab-1): error_rate")

    @property
    def slo_met(self) -> bool:
        # TODO(lab-1): met when requests were sent, p99 <= slo_p99_ms and error_rate <= slo_error_rate.
        raise NotImplementedError("TODO(lab-1): slo_met")

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "error_rate": self.error_rate, "slo_met": self.slo_met}

    def markdown(self) -> str:
        ok = "met" if self.slo_met else "MISSED"
        return "\n".join(
            [
                f"| {self.host} | scenario `{self.scenario}` | {self.users} users | {self.duration} |",
                "|---|---|---|---|",
                f"| requests | {self.requests} | throughput | {self.rps:.1f} req/s |",
                f"| p50 / p95 / p99 | {self.p50_ms:.1f} / {self.p95_ms:.1f} / {self.p99_ms:.1f} ms "
                f"| error rate | {self.error_rate:.3%} |",
                f"| model version | {self.model_version} | SLO (p99 <= {self.slo_p99_ms:.0f} ms, errors <= "
                f"{self.slo_error_rate:.1%}) | **{ok}** |",
            ]
        )


def run_load(
    settings: Settings,
    host: str,
    out_dir: Path,
    *,
    users: int = 8,
    spawn_rate: float = 8,
    duration: str = "20s",
    scenario: str = "baseline",
    rate_per_user: float = 0.0,
) -> LoadReport:
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / "locust"
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--host",
        host,
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        duration,
        "--csv",
        str(prefix),
        "--only-summary",
        "--stop-timeout",
        "5",
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "WARNING",
    ]
    env = {
        **os.environ,
        "MLOPS_LOAD_SCENARIO": scenario,
        "MLOPS_LOAD_SEED": str(settings.seed),
        "MLOPS_LOAD_RATE_PER_USER": str(rate_per_user),
    }
    with (out_dir / "locust.log").open("w") as log:
        proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    stats = Path(f"{prefix}_stats.csv")
    if proc.returncode != 0 or not stats.exists():
        raise RuntimeError(f"locust failed (exit {proc.returncode}); see {out_dir / 'locust.log'}")
    return report_from_csv(settings, host, stats, scenario=scenario, duration=duration, users=users)


def report_from_csv(
    settings: Settings, host: str, stats_csv: Path, *, scenario: str, duration: str, users: int
) -> LoadReport:
    """Locust's `<prefix>_stats.csv` (its "Aggregated" row) as a LoadReport against the settings' SLO."""
    # TODO(lab-1): read stats_csv with csv.DictReader and take the row whose "Name" is "Aggregated".
    #  requests <- "Request Count", failures <- "Failure Count", rps <- "Requests/s",
    #  p50_ms / p95_ms / p99_ms <- "50%" / "95%" / "99%" (use _num: locust writes "N/A" when empty),
    #  model_version <- GET {host}/v1/model's "version" (None when that fails),
    #  slo_p99_ms / slo_error_rate <- the settings.
    raise NotImplementedError("TODO(lab-1): report_from_csv")


def _num(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")
