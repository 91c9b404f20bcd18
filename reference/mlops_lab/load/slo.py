"""Run the locust load test headless and turn its numbers into an SLO report.

    mlops-lab load --host http://127.0.0.1:8001 --users 8 --duration 20s

Locust runs as its own process (it monkey-patches sockets with gevent, which must not leak
into the caller). Its CSV summary is parsed into a `LoadReport`.
"""

from __future__ import annotations

import contextlib
import csv
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from mlops_lab.errors import UserError
from mlops_lab.settings import Settings

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


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

    # --8<-- [start:slo]
    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 1.0

    @property
    def slo_met(self) -> bool:
        return self.requests > 0 and self.p99_ms <= self.slo_p99_ms and self.error_rate <= self.slo_error_rate

    # --8<-- [end:slo]

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
    report: Callable[..., Any] | None = None,
) -> Any:
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
        raise UserError(f"locust failed (exit {proc.returncode}); see {out_dir / 'locust.log'}")
    # `report` turns the CSV into a report: report_from_csv, or the lab 1 exercise's own.
    to_report = report or report_from_csv
    return to_report(settings, host, stats, scenario=scenario, duration=duration, users=users)


def report_from_csv(
    settings: Settings, host: str, stats_csv: Path, *, scenario: str, duration: str, users: int
) -> LoadReport:
    """Locust's `<prefix>_stats.csv` (its "Aggregated" row) as a LoadReport against the settings' SLO."""
    with stats_csv.open() as fh:
        total = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    version = None
    with contextlib.suppress(httpx.HTTPError, ValueError):
        version = httpx.get(f"{host}/v1/model", timeout=2).json().get("version")
    return LoadReport(
        host=host,
        scenario=scenario,
        duration=duration,
        users=users,
        requests=int(total["Request Count"]),
        failures=int(total["Failure Count"]),
        rps=float(total["Requests/s"]),
        p50_ms=_num(total["50%"]),
        p95_ms=_num(total["95%"]),
        p99_ms=_num(total["99%"]),
        model_version=version,
        slo_p99_ms=settings.slo_p99_ms,
        slo_error_rate=settings.slo_error_rate,
    )


def _num(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")
