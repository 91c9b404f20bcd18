"""The canary's expectation: how the challenger should differ from the champion online.

    python -m mlops_lab.canary.expectation     # a retrain on drifted data against the champion

A good retrain is *supposed* to score drifted traffic differently from the champion, so the
canary cannot be judged by "the two score distributions differ". At evaluation time both
models score the same recent production rows; what that shows (the mean shift of the logit
scores, its spread per row, how often the two decide the same, each one's flagged rate) is
recorded as a tag on the candidate's version. Online, the judge compares the canary with this
expectation, not with the champion: a retrain that moves as expected passes, and a candidate
that moves differently online than offline (a training/serving skew) fails.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mlops_lab.canary.judgement import MIN_SE, Expectation, logit

__all__ = ["Expectation", "expectation_from_scores"]


def expectation_from_scores(
    champion_scores: npt.ArrayLike,
    challenger_scores: npt.ArrayLike,
    champion_threshold: float,
    challenger_threshold: float,
) -> Expectation:
    """The expectation from both models' scores on the same rows (same order).

    Scores are probabilities (arrays or lists; 0 and 1 are clipped by `logit`); a model flags a
    row when its score is at or above its own threshold. The SDs are sample SDs (ddof=1), and
    `score_sd` is floored at MIN_SE so that the judge's tolerance never has a zero unit. Raises
    ValueError unless both have the same shape and at least two rows.
    """
    champ, chall = np.asarray(champion_scores, dtype=float), np.asarray(challenger_scores, dtype=float)
    if champ.shape != chall.shape or champ.size < 2:
        raise ValueError("need at least two rows scored by both models, in the same order")
    lc, lh = logit(champ), logit(chall)
    flag_c, flag_h = champ >= champion_threshold, chall >= challenger_threshold
    return Expectation(
        rows=int(champ.size),
        score_shift=float(lh.mean() - lc.mean()),
        score_sd=float(max(lc.std(ddof=1), MIN_SE)),
        paired_sd=float((lh - lc).std(ddof=1)),
        agreement=float((flag_c == flag_h).mean()),
        flagged_champion=float(flag_c.mean()),
        flagged_challenger=float(flag_h.mean()),
    )


def _main() -> None:
    from typing import Any

    import pandas as pd

    from mlops_lab.data.generator import features_only, generate
    from mlops_lab.data.schema import SCHEMA
    from mlops_lab.lifecycle.model import Hyperparams, budget_threshold, build_pipeline, scores

    def fit(frame: pd.DataFrame) -> tuple[Any, float]:
        model = build_pipeline(Hyperparams()).fit(frame[SCHEMA.names], frame[SCHEMA.label])
        return model, budget_threshold(scores(model, frame[SCHEMA.names]), 0.05)

    champion, thr = fit(generate("baseline", 20_000, seed=1))
    retrained, r_thr = fit(generate("prior_shift", 20_000, seed=2))
    recent = features_only(generate("prior_shift", 5_000, seed=3))
    same = expectation_from_scores(scores(champion, recent), scores(champion, recent), thr, thr)
    print("A/A:      ", same.describe())
    print(
        "retrained:",
        expectation_from_scores(scores(champion, recent), scores(retrained, recent), thr, r_thr).describe(),
    )


if __name__ == "__main__":
    _main()
