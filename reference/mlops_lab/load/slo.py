"""Run the locust load test headless and judge its numbers against an SLO.

    mlops-lab load --host http://127.0.0.1:8001 --users 8 --duration 20s

Locust runs as its own process (it monkey-patches sockets with gevent, which must not leak
into the caller). The test's duration counts from its first request, not from the start of
the process: the locustfile prepares its payloads before any user starts and stops the runner
itself (its docstring says why locust's `--run-time` cannot be trusted with a cold start). At
exit it writes locust's final numbers to `<prefix>_stats.csv`; `run_load` reads the
"Aggregated" row (`aggregated_totals`) and `report_from_totals` turns it into a `LoadReport`,
the judgement: error rate and whether the SLO (p99 latency, error rate) is met.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from mlops_lab.errors import InvalidValue, UserError
from mlops_lab.settings import Settings

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
START_TIMEOUT_S = 60.0  # the locustfile stops a test whose first request was not sent by then
STOP_TIMEOUT_S = 5  # users then get this long to finish the request they are sending
STARTUP_ALLOWANCE_S = 120.0  # a cold `import locust` and the payloads, on a busy machine


@dataclass(frozen=True)
class LoadRun:
    """What was run: the report's fields that do not come from locust's numbers."""

    host: str
    scenario: str
    duration: str  # as asked, e.g. "20s": counted from the first request
    users: int
    model_version: str | None  # what GET {host}/v1/model said after the test


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


def report_from_totals(totals: Mapping[str, str], run: LoadRun, settings: Settings) -> LoadReport:
    """Locust's aggregated totals (its stats CSV's "Aggregated" row, column -> text) for `run`,
    as a LoadReport judged against the settings' SLO."""
    return LoadReport(
        **asdict(run),
        requests=int(totals["Request Count"]),
        failures=int(totals["Failure Count"]),
        rps=float(totals["Requests/s"]),
        p50_ms=_milliseconds(totals["50%"]),
        p95_ms=_milliseconds(totals["95%"]),
        p99_ms=_milliseconds(totals["99%"]),
        slo_p99_ms=settings.slo_p99_ms,
        slo_error_rate=settings.slo_error_rate,
    )


def _milliseconds(text: str) -> float:
    """A percentile column: locust writes "N/A" when no request was answered (no measurement)."""
    return float("nan") if text == "N/A" else float(text)


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
    report: Callable[[Mapping[str, str], LoadRun, Settings], Any] | None = None,
) -> Any:
    """Load `host` for `duration` (from the first request) and judge it: `report` (default
    report_from_totals; the lab 1 exercise passes its own) gets locust's aggregated totals."""
    seconds = duration_seconds(duration)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / "locust"
    stats = Path(f"{prefix}_stats.csv")
    stats.unlink(missing_ok=True)  # never judge an earlier run's numbers
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
        "--only-summary",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
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
        "MLOPS_LOAD_DURATION_S": str(seconds),
        "MLOPS_LOAD_START_TIMEOUT_S": str(START_TIMEOUT_S),
        "MLOPS_LOAD_CSV_PREFIX": str(prefix),
    }
    log_path = out_dir / "locust.log"
    limit = STARTUP_ALLOWANCE_S + START_TIMEOUT_S + seconds + STOP_TIMEOUT_S
    with log_path.open("w") as log:
        try:
            proc = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, check=False, timeout=limit
            )
        except subprocess.TimeoutExpired:
            raise UserError(f"locust did not finish within {limit:.0f} s; see {log_path}") from None
    if proc.returncode != 0 or not stats.exists():
        raise UserError(f"locust failed (exit {proc.returncode}); see {log_path}")
    run = LoadRun(host, scenario, duration, users, _model_version(host))
    return (report or report_from_totals)(aggregated_totals(stats), run, settings)


def aggregated_totals(stats_csv: Path) -> dict[str, str]:
    """The "Aggregated" row of locust's `<prefix>_stats.csv` (all requests), column -> text."""
    with stats_csv.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return row
    raise UserError(f"{stats_csv} has no Aggregated row")


def duration_seconds(duration: str) -> float:
    """Locust's timespans: "20s", "2m", "1h30m", or plain seconds ("20")."""
    text = duration.strip()
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if text.isdigit():
        seconds = int(text)
    elif text and match:
        hours, minutes, secs = (int(g or 0) for g in match.groups())
        seconds = 3600 * hours + 60 * minutes + secs
    else:
        seconds = 0
    if seconds <= 0:
        raise InvalidValue(f"duration {duration!r}: expected a positive timespan such as 20s, 2m or 1h30m")
    return float(seconds)


def _model_version(host: str) -> str | None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        version = httpx.get(f"{host}/v1/model", timeout=2).json().get("version")
        return None if version is None else str(version)
    return None
