"""A solution of lab 5's `canary-expectation` (exercises/lab5/expectation.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab5/canary-expectation.toml applied to it (a check must fail on each).
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
    """The expectation from both models' scores on the same rows (same order)."""
    # Lists come in too (the pipeline passes arrays, a notebook passes lists): one float array each.
    champion = np.asarray(champion_scores, dtype=float)
    challenger = np.asarray(challenger_scores, dtype=float)
    # Row i of one must be row i of the other: numpy would happily broadcast a single score
    # against many, and every number below would be silently wrong.
    if champion.shape != challenger.shape:
        raise ValueError(f"the two models scored different rows: {champion.shape} vs {challenger.shape}")
    # A sample SD needs two rows; with one it is NaN, and NaN compares False everywhere in the judge.
    if champion.size < 2:
        raise ValueError(f"need at least two rows scored by both models, got {champion.size}")

    # Logits, not probabilities: near 0 a probability gap means nothing, in logits it is a
    # steady unit. The shared logit() clips 0 and 1, which would otherwise be -inf and +inf.
    champion_logit, challenger_logit = logit(champion), logit(challenger)
    # Paired on purpose: the per-row difference cancels what the row itself contributes, which
    # is why the shadow phase needs so few requests (the judge pairs the same way online).
    per_row = challenger_logit - champion_logit
    # The champion's spread is the yardstick of the judge's tolerance (0.1 SD). A champion that
    # gives every row the same score has SD 0, and a zero unit divides by zero in describe().
    spread = float(np.std(champion_logit, ddof=1))

    # Each model flags at its own threshold: a retrain comes with its own (budget_threshold),
    # and "at or above" is how serving decides.
    champion_flags = champion >= champion_threshold
    challenger_flags = challenger >= challenger_threshold

    # float() everywhere: the result goes through to_json into an MLflow tag.
    return Expectation(
        rows=len(champion),
        score_shift=float(np.mean(challenger_logit) - np.mean(champion_logit)),
        score_sd=max(spread, MIN_SE),
        paired_sd=float(np.std(per_row, ddof=1)),
        # Agreeing means deciding the same, both flagging or both letting through.
        agreement=float(np.mean(champion_flags == challenger_flags)),
        flagged_champion=float(np.mean(champion_flags)),
        flagged_challenger=float(np.mean(challenger_flags)),
    )
