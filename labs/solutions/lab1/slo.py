"""A solution of lab 1's `slo-check` (exercises/lab1/slo.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab1/slo-check.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlops_lab.load import slo as reference
from mlops_lab.load.slo import LoadRun
from mlops_lab.settings import Settings

__all__ = ["LoadReport", "LoadRun", "report_from_totals", "run_load"]


class LoadReport(reference.LoadReport):
    """The reference report's fields (host, scenario, duration, users, requests, failures, rps,
    p50_ms, p95_ms, p99_ms, model_version, slo_p99_ms, slo_error_rate) with your judgement."""

    @property
    def error_rate(self) -> float:
        # Nothing sent means nothing worked: 100%, not 0% (and no ZeroDivisionError).
        return self.failures / self.requests if self.requests else 1.0

    @property
    def slo_met(self) -> bool:
        # A run that sent nothing never passes, whatever else it says. The budgets are inclusive
        # (p99 == slo_p99_ms is within it), and `<=` with a NaN p99 (not measured) is False by
        # itself, so an unmeasured latency misses the SLO.
        return self.requests > 0 and self.p99_ms <= self.slo_p99_ms and self.error_rate <= self.slo_error_rate


def report_from_totals(totals: Mapping[str, str], run: LoadRun, settings: Settings) -> LoadReport:
    """Locust's aggregated totals for `run`, as a LoadReport judged against the settings' SLO."""
    return LoadReport(
        **asdict(run),  # host, scenario, duration, users, model_version: what was run
        requests=int(totals["Request Count"]),
        failures=int(totals["Failure Count"]),
        rps=float(totals["Requests/s"]),
        p50_ms=milliseconds(totals["50%"]),
        p95_ms=milliseconds(totals["95%"]),
        p99_ms=milliseconds(totals["99%"]),
        slo_p99_ms=settings.slo_p99_ms,
        slo_error_rate=settings.slo_error_rate,
    )


def milliseconds(text: str) -> float:
    """A percentile column. Locust writes "N/A" when no request was answered; NaN says "not
    measured" (0 would claim a perfect latency nobody saw)."""
    return float("nan") if text == "N/A" else float(text)


def run_load(settings: Settings, host: str, out_dir: Path, **options: Any) -> LoadReport:
    """The reference runner, judging with your report_from_totals.

    options: users, spawn_rate, duration ("20s", from the first request), scenario,
    rate_per_user (requests/s per user)."""
    return reference.run_load(settings, host, out_dir, report=report_from_totals, **options)
