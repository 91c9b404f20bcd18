"""Lab 1, exercise `slo-check`: a load test judged against an SLO.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/load/slo.py       Docs: docs/labs/lab-1-serving.md

`run_load` (written: it calls the reference runner) runs locust headless against a server and
hands its CSV summary to your `report_from_csv`. You write the judgement: read the totals into
a `LoadReport`, compute the error rate, and decide whether the SLO (p99 latency and error rate,
from the settings) is met.
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path
from typing import Any

import httpx

from mlops_lab.load import slo as reference_slo
from mlops_lab.settings import Settings


class LoadReport(reference_slo.LoadReport):
    """The reference report's fields (host, scenario, duration, users, requests, failures, rps,
    p50_ms, p95_ms, p99_ms, model_version, slo_p99_ms, slo_error_rate) with your judgement."""

    @property
    def error_rate(self) -> float:
        # TODO(lab-1): failures / requests. What is the error rate of a test that sent nothing?
        raise NotImplementedError("TODO(lab-1): error_rate")

    @property
    def slo_met(self) -> bool:
        # TODO(lab-1): met when requests were sent, p99 <= slo_p99_ms and error_rate <= slo_error_rate.
        raise NotImplementedError("TODO(lab-1): slo_met")


def run_load(settings: Settings, host: str, out_dir: Path, **options: Any) -> LoadReport:
    """Run locust headless against `host` (the reference runner) and judge it with your report_from_csv.

    options: users, spawn_rate, duration ("20s"), scenario, rate_per_user (requests/s per user).
    """
    return reference_slo.run_load(settings, host, out_dir, report=report_from_csv, **options)


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
