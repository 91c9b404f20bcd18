"""Lab 1, exercise `slo-check`: a load test judged against an SLO.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/load/slo.py       Docs: docs/labs/lab-1-serving.md

The reference `run_load` (written) runs locust headless against a server for a duration counted
from its first request, then hands you what locust measured: its aggregated totals, the
"Aggregated" row of its stats CSV as a mapping of column name to text, for example

    {"Request Count": "160", "Failure Count": "0", "Requests/s": "38.9",
     "50%": "44", "95%": "50", "99%": "130", "Median Response Time": "44", ...}

and a `LoadRun` (host, scenario, duration, users, model_version: what was run). You write the
judgement: the report, its error rate, and whether the SLO (p99 latency and error rate, whose
budgets are in the settings: slo_p99_ms, slo_error_rate) is met. The report's `as_dict` and
`markdown` use your properties; `make scenario S=lab1/slow-model IMPL=exercises` judges with them.
"""

from __future__ import annotations

from collections.abc import Mapping
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
        # TODO(lab-1): the share of requests that failed, between 0 and 1.
        #  Think: what is the error rate of a test that sent nothing: did anything work?
        raise NotImplementedError("TODO(lab-1): error_rate")

    @property
    def slo_met(self) -> bool:
        # TODO(lab-1): whether this run meets the SLO: p99 latency within slo_p99_ms and the error
        #  rate within slo_error_rate. Think: which runs must never pass, whatever their numbers
        #  look like, and what does a comparison with NaN answer?
        raise NotImplementedError("TODO(lab-1): slo_met")


def report_from_totals(totals: Mapping[str, str], run: LoadRun, settings: Settings) -> LoadReport:
    """Locust's aggregated totals for `run`, as a LoadReport judged against the settings' SLO."""
    # TODO(lab-1): build the LoadReport (yours, above) of this run.
    #  Contract: requests, failures, rps and the p50/p95/p99 latencies (ms) are locust's totals
    #  (columns "Request Count", "Failure Count", "Requests/s", "50%", "95%", "99%"), as numbers;
    #  the run's fields are the report's too; the budgets come from the settings.
    #  Think: what does locust write in a percentile column when no request was answered, and
    #  what number should a report hold for a latency nobody measured?
    raise NotImplementedError("TODO(lab-1): report_from_totals")


def run_load(settings: Settings, host: str, out_dir: Path, **options: Any) -> LoadReport:
    """The reference runner, judging with your report_from_totals.

    options: users, spawn_rate, duration ("20s", from the first request), scenario,
    rate_per_user (requests/s per user)."""
    return reference.run_load(settings, host, out_dir, report=report_from_totals, **options)
