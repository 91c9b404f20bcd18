"""What the canary judge looks at: the store's predictions split into the judge's inputs.

    python -c "from mlops_lab.canary.evidence import judge_frame; help(judge_frame)"

Stable's own answers against the champion's version; the canary's against the candidate's,
mirrored (shadow: paired per request with stable's answer) or split (a share of real traffic).
The router's counters add the requests that failed, which never reach the store. Pure: the
controller reads the frame and the counters, this module decides nothing but the shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from mlops_lab.canary.judge import judge
from mlops_lab.canary.judgement import Expectation, JudgeConfig, Judgement, Paired, Variant, logit
from mlops_lab.canary.state import Rollout
from mlops_lab.canary.weights import SHADOW_SUFFIX, shadow_id


def judge_frame(
    frame: pd.DataFrame,
    r: Rollout,
    counts: dict[str, dict[str, int]],
    config: JudgeConfig,
    *,
    shadow: bool,
    decide: Callable[..., Judgement] = judge,
) -> Judgement:
    """Split the store's rows into the judge's inputs and judge them with `decide` (the
    reference's `judge` unless the controller runs a learner's; pure, tested directly)."""
    if frame.empty:
        frame = pd.DataFrame(
            columns=["request_id", "variant", "model_version", "score", "decision", "latency_ms"]
        )
    mirrored = frame["request_id"].astype(str).str.endswith(SHADOW_SUFFIX)
    stable_rows = frame[(frame["variant"] == "stable") & ~mirrored & (frame["model_version"] == r.champion)]
    canary_rows = frame[
        (frame["variant"] == "canary") & (mirrored == shadow) & (frame["model_version"] == r.candidate)
    ]
    c_stable = counts.get("stable", {"requests": 0, "errors": 0})
    c_canary = counts.get("canary", {"requests": 0, "errors": 0})
    stable = _variant(stable_rows, c_stable)
    canary = _variant(canary_rows, c_canary)
    expectation = (
        Expectation.from_json(r.expectation)
        if r.expectation
        else Expectation.identical(
            score_sd=float(np.std(logit(stable.scores))) if stable.n > 1 else 1.0,
            flagged=float(stable.decisions.mean()) if stable.n else 0.05,
        )
    )
    paired = None
    if shadow:
        keyed = stable_rows.assign(request_id=stable_rows["request_id"].map(shadow_id))
        both = keyed.merge(canary_rows, on="request_id", suffixes=("_s", "_c"))
        paired = Paired(
            both["score_s"].to_numpy(float),
            both["score_c"].to_numpy(float),
            both["decision_s"].to_numpy(bool),
            both["decision_c"].to_numpy(bool),
        )
    previous = r.fraction.get("paired" if shadow else "split", 0.0)
    verdict = decide(stable, canary, expectation, config, previous_fraction=previous, paired=paired)
    if verdict.verdict == "INCONCLUSIVE" and previous >= 1.0 and config.sequential:
        # The sequential design is complete: every bit of its alpha is spent and its last look
        # passed (a FAIL rolls back). Later looks can test nothing, so that PASS stands instead
        # of an INCONCLUSIVE that would roll a good canary back at high traffic; passive health
        # and readiness still catch a canary that breaks.
        reason = f"the design is complete ({verdict.canary_samples:,} canary samples): its last look passed"
        verdict = replace(verdict, verdict="PASS", reason=reason)
    return verdict


def _variant(rows: pd.DataFrame, counts: dict[str, int]) -> Variant:
    n = len(rows)
    # The store only holds answered requests; the router counted the failures too.
    requests = max(int(counts.get("requests", 0)), n)
    return Variant.of(
        rows["score"].to_numpy(float),
        rows["decision"].to_numpy(bool),
        rows["latency_ms"].to_numpy(float),
        requests=requests,
        errors=int(counts.get("errors", 0)),
    )
