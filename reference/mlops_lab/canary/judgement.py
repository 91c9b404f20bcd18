"""What the canary judge takes and gives: observations, the expectation, the verdict.

    python -c "from mlops_lab.canary.judgement import Expectation; print(Expectation.identical().describe())"

Plain data, shared by whoever records an expectation (`canary.expectation`, at evaluation
time), whoever gathers the online observations (`canary.evidence`, from the store and the
router's counters) and the judge itself (`canary.judge`), so each of them can be replaced by a
learner's version without touching the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]

# Scores are probabilities squashed near 0; their logits are close to normal, so mean
# differences are stable and a tolerance in SD units means the same thing for every model.
EPS = 1e-6
# A variance floor so that identical deterministic models (every paired difference exactly 0)
# give a finite statistic.
MIN_SE = 1e-9


def logit(scores: npt.ArrayLike) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=float), EPS, 1 - EPS)
    return np.asarray(np.log(p / (1 - p)))


@dataclass(frozen=True)
class Expectation:
    """How the challenger is expected to differ from the champion, measured offline by the
    evaluate step on production-like rows (both models scoring the same rows)."""

    rows: int
    score_shift: float  # mean logit(challenger) - mean logit(champion)
    score_sd: float  # SD of the champion's logit scores: the unit of the score tolerance
    paired_sd: float  # SD of the per-row logit differences
    agreement: float  # share of rows on which both models decide the same
    flagged_champion: float  # flagged rate of each model at its own threshold
    flagged_challenger: float

    @property
    def flagged_shift(self) -> float:
        return self.flagged_challenger - self.flagged_champion

    @classmethod
    def identical(cls, score_sd: float = 1.0, flagged: float = 0.05) -> Expectation:
        """The expectation of an A/A canary: no difference at all."""
        return cls(0, 0.0, score_sd, 0.0, 1.0, flagged, flagged)

    def to_json(self) -> str:
        return json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> Expectation:
        return cls(**json.loads(text))

    def describe(self) -> str:
        return (
            f"score shift {self.score_shift:+.3f} logit ({self.score_shift / self.score_sd:+.2f} SD), "
            f"agreement {self.agreement:.1%}, flagged {self.flagged_champion:.1%} -> "
            f"{self.flagged_challenger:.1%} (on {self.rows:,} rows)"
        )


@dataclass(frozen=True)
class JudgeConfig:
    alpha: float = 0.01  # family-wise false-rollback budget for the whole rollout
    planned_samples: int = 2_000  # canary samples at which the whole alpha is spent (t = 1)
    min_samples: int = 200  # fewer canary samples: INCONCLUSIVE
    score_tolerance_sd: float = 0.1  # |observed - expected| score shift allowed, in score SDs
    decision_tolerance: float = 0.02  # flagged-rate (split) or agreement (shadow) slack, absolute
    error_tolerance: float = 0.001  # extra canary error rate allowed (the SLO's error budget)
    latency_tolerance: float = 0.03  # extra share of canary requests above stable's p95
    # Latencies under this count as equally fast: a 40 us scorer taking 50 us is jitter, not
    # a regression anyone could feel against a 50 ms SLO (and it made the judge fail good models).
    latency_floor_ms: float = 1.0
    latency_quantile: float = 0.95
    slo_p99_ms: float = 50.0
    sequential: bool = True  # False: test at alpha at every look (the naive judge, for the bench)

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or self.planned_samples < 1 or self.min_samples < 1:
            raise ValueError(f"invalid judge config: {self}")


@dataclass(frozen=True)
class Variant:
    """One variant's online observations in the rollout so far."""

    scores: np.ndarray
    decisions: np.ndarray
    latency_ms: np.ndarray
    requests: int  # requests the router sent (from its counters), errors included
    errors: int

    @classmethod
    def of(
        cls,
        scores: Sequence[float] | np.ndarray,
        decisions: Sequence[bool] | np.ndarray,
        latency_ms: Sequence[float] | np.ndarray,
        requests: int | None = None,
        errors: int = 0,
    ) -> Variant:
        s = np.asarray(scores, dtype=float)
        return cls(
            s,
            np.asarray(decisions, dtype=bool),
            np.asarray(latency_ms, dtype=float),
            len(s) + errors if requests is None else requests,
            errors,
        )

    @property
    def n(self) -> int:
        return int(self.scores.size)


@dataclass(frozen=True)
class Paired:
    """Shadow mode: the same requests scored by both (stable answered, canary mirrored)."""

    stable_scores: np.ndarray
    canary_scores: np.ndarray
    stable_decisions: np.ndarray
    canary_decisions: np.ndarray

    @property
    def n(self) -> int:
        return int(self.canary_scores.size)


@dataclass(frozen=True)
class Check:
    name: str
    failed: bool
    statistic: float  # the one-sided z beyond the tolerance (larger = worse)
    boundary: float  # fail when statistic > boundary
    detail: str

    def describe(self) -> str:
        mark = "FAIL" if self.failed else "ok"
        return f"{self.name}: {mark} ({self.detail}; z {self.statistic:.2f} vs {self.boundary:.2f})"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    checks: tuple[Check, ...]
    canary_samples: int
    fraction: float  # information fraction t reached at this look (carry it to the next look)
    alpha_spent: float  # nominal alpha used by this look, over all its tests
    reason: str
    paired: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.verdict}: {self.reason}"
