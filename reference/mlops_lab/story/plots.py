"""The demo report's plots: drift per window, router weights, canary vs stable scores, latency.

    python -c "import mlops_lab.story.plots as p; help(p)"

Each function takes what the demo recorded and adds one figure to the report; none fails the
story (an empty series draws nothing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from mlops_lab.canary.judgement import logit
from mlops_lab.load.traffic import Answer
from mlops_lab.store.db import Store
from mlops_lab.story.report import Report, new_figure

_COLORS = {"stable": "#0969da", "canary": "#cf222e"}


def drift_windows(report: Report, windows: list[dict[str, Any]], switches: list[tuple[float, str]]) -> None:
    if not windows:
        return
    windows = sorted(windows, key=lambda w: w["window"])
    t = [w["t"] for w in windows]
    fig, ax = new_figure(9, 3.4)
    ax.plot(t, [w.get("share_drifted") or 0.0 for w in windows], "o-", label="share of columns drifted")
    ax.plot(
        t,
        [w.get("importance_share") or 0.0 for w in windows],
        "s-",
        label="importance of drifted columns (severity-weighted)",
    )
    triggers = [w["t"] for w in windows if w.get("trigger")]
    for x in triggers:
        ax.axvline(
            x, color="#cf222e", linewidth=2, label="retraining triggered" if x == triggers[0] else None
        )
    for x, name in switches:
        ax.axvline(x, color="#6e7781", linestyle=":")
        ax.text(x, 0.98, f" {name}", rotation=90, va="top", fontsize=7, transform=ax.get_xaxis_transform())
    ax.set(
        xlabel="seconds into the demo", ylabel="share", ylim=(0, 1.05), title="Drift per monitoring window"
    )
    ax.legend(fontsize=8, loc="center right")
    report.figure(
        "Drift per window",
        fig,
        "Each point is one window of stable-variant predictions against the champion's training reference. "
        "Retraining needs drift on features that matter (importance, weighted by how far past its "
        "threshold each column is) for K windows in a row.",
    )


def router_weights(report: Report, samples: list[tuple[float, int, bool]]) -> None:
    if not samples:
        return
    t = np.array([s[0] for s in samples])
    fig, ax = new_figure(9, 3.0)
    ax.step(t, [s[1] for s in samples], where="post", color=_COLORS["canary"], label="canary weight (%)")
    shadow = np.array([s[2] for s in samples])
    if shadow.any():
        ax.fill_between(
            t, 0, 100, where=shadow, step="post", alpha=0.15, color="#8250df", label="shadow (mirrored)"
        )
    ax.set(
        xlabel="seconds into the demo", ylabel="% of cards", ylim=(0, 100), title="Router weights over time"
    )
    ax.legend(fontsize=8)
    report.figure("Router weights", fig, "What the controller told the router, sampled every 0.5 s.")


def rollout_scores(report: Report, store: Store, rollouts: dict[str, Any]) -> None:
    """Canary vs stable score distributions (logit) during each rollout."""
    if not rollouts:
        return
    fig = plt.figure(figsize=(9, 3.2 * len(rollouts)))
    for i, (version, r) in enumerate(rollouts.items(), start=1):
        ax = fig.add_subplot(len(rollouts), 1, i)
        since = datetime.fromtimestamp(r.started, UTC)
        frame = store.scores_frame(since)
        bins = list(np.linspace(-12, 4, 65))
        for variant in ("stable", "canary"):
            version_served = r.candidate if variant == "canary" else r.champion
            rows = frame[(frame["variant"] == variant) & (frame["model_version"] == version_served)]
            if len(rows):
                ax.hist(
                    logit(rows["score"]),
                    bins=bins,
                    density=True,
                    alpha=0.5,
                    color=_COLORS[variant],
                    label=f"{variant} v{rows['model_version'].iloc[0]} ({len(rows):,})",
                )
        ax.set(xlabel="logit(score)", ylabel="density", title=f"v{version}: {r.phase}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    report.figure(
        "Canary vs stable scores",
        fig,
        "A good retrain shifts scores the way its evaluation predicted; the skewed candidate's scores "
        "leave the expected band (the judge compares against the recorded expectation, not against zero).",
    )


def latency_per_variant(report: Report, answers: list[Answer]) -> None:
    fig, ax = new_figure()
    bins = list(np.logspace(-1, 3, 60))
    for variant in ("stable", "canary"):
        lat = [a.latency_ms for a in answers if a.variant == variant]
        if lat:
            p99 = np.percentile(lat, 99)
            ax.hist(
                lat,
                bins=bins,
                alpha=0.5,
                color=_COLORS[variant],
                label=f"{variant} ({len(lat):,}, p99 {p99:.1f} ms)",
            )
    ax.set_xscale("log")
    ax.set(
        xlabel="latency (ms, client side, through the router)", ylabel="requests", title="Latency per variant"
    )
    ax.legend(fontsize=8)
    report.figure("Latency per variant", fig)
