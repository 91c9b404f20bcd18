"""Lab 5, exercise `canary-expectation`: record what the canary should look like online.

    make lab-5        grade it          make hint-5      one more hint
    Reference: reference/mlops_lab/canary/expectation.py     Docs: docs/labs/lab-5-system-design.md

A model retrained on drifted data is *supposed* to score today's traffic differently from the
champion: that is why it was retrained. So the canary cannot roll back on "the two score
distributions differ", or it would roll back every good retrain. Instead, at evaluation time,
both models score the same recent production rows, and what that shows is recorded on the
candidate's version (the tag `canary_expectation`, through Expectation.to_json). Online, the
judge compares the canary with this expectation: a retrain that moves as it did offline passes;
a candidate that moves differently online than offline (a training/serving skew) is rolled back.

You write `expectation_from_scores`: from the two models' scores on the same rows (row i of
one is row i of the other), the seven numbers of an `Expectation`. The pipeline's evaluate step
(pipeline/steps.py) and canary/stage.py call it; the judge (canary/judge.py) reads the result.

What you work with:

    champion_scores, challenger_scores   fraud probabilities in [0, 1], 0 and 1 included, as
                         numpy arrays or plain lists, one per row, the same rows in the same order
    champion_threshold, challenger_threshold   each model's own threshold: a row is flagged by a
                         model when its score is at or above (>=) that model's threshold
    Expectation          the frozen dataclass to return (mlops_lab.canary.judgement): its fields
                         say what each number means; Expectation.identical() is the A/A one
    logit(scores)        log(p / (1 - p)), with p clipped to [EPS, 1 - EPS] first (EPS = 1e-6)
    MIN_SE               1e-9, a floor for a spread that must never be 0

Why logits: fraud scores bunch up near 0, where a probability difference of 0.01 is huge for
one row and nothing for another; logit scores are close to normal, so a mean shift and a
tolerance in SD units mean the same thing for every model.
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
    # TODO(lab-5): turn both inputs into float arrays; raise ValueError unless they have the same
    #  shape and at least 2 rows. Then, on the logit scores (logit() clips 0 and 1 for you):
    #    rows                the number of rows, a plain int
    #    score_shift         mean logit(challenger) - mean logit(champion)
    #    score_sd            the sample SD (ddof=1) of the champion's logits, never below MIN_SE
    #    paired_sd           the sample SD (ddof=1) of the per-row differences challenger - champion
    #    agreement           the share of rows on which both models decide the same (flagged or not)
    #    flagged_champion    the share of rows each model flags at its OWN threshold (>=)
    #    flagged_challenger
    #  Return plain Python numbers (float(), int()): the expectation is stored as JSON.
    #  Think about: a model retrained on drifted data and a model trained on amounts in cents
    #  (evaluated on the warehouse's export, in cents, but served dollars) both score live traffic
    #  differently from the champion. Which of the two does this expectation tell apart from
    #  "what it did in evaluation", and why must the two models score the very same rows?
    raise NotImplementedError("TODO(lab-5): the canary expectation from both models' scores")
