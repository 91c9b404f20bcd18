"""The generator, its scenarios, the schema checks, file IO and delayed labels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import SCENARIOS, fraud_probability, generate
from mlops_lab.data.io import fingerprint, read_frame, write_frame
from mlops_lab.data.labels import delayed_labels
from mlops_lab.data.schema import LABEL, SCHEMA

N = 20_000


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {name: generate(name, N, seed=3) for name in SCENARIOS}


def test_same_seed_same_rows_different_seed_different_rows() -> None:
    pd.testing.assert_frame_equal(generate("baseline", 500, seed=1), generate("baseline", 500, seed=1))
    assert not generate("baseline", 500, seed=1).equals(generate("baseline", 500, seed=2))


def test_scenarios_do_not_share_random_streams(frames: dict[str, pd.DataFrame]) -> None:
    # Same seed, different scenario: card ids must not line up row for row.
    assert (frames["baseline"]["card_id"] != frames["irrelevant_drift"]["card_id"]).mean() > 0.9


def test_unknown_scenario_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        generate("nope", 10)


def test_baseline_is_valid_and_has_a_realistic_fraud_rate(frames: dict[str, pd.DataFrame]) -> None:
    base = frames["baseline"]
    assert SCHEMA.problems(base) == []
    assert 0.02 < base[LABEL].mean() < 0.06


def test_covariate_shift_moves_features_that_matter(frames: dict[str, pd.DataFrame]) -> None:
    base, shifted = frames["baseline"], frames["covariate_shift"]
    assert shifted["amount"].median() > 1.5 * base["amount"].median()
    assert (shifted["channel"] == "online").mean() > (base["channel"] == "online").mean() + 0.15
    assert (shifted["country"] != "US").mean() > (base["country"] != "US").mean() + 0.1


def test_unit_bug_sends_cents(frames: dict[str, pd.DataFrame]) -> None:
    ratio = frames["unit_bug"]["amount"].median() / frames["baseline"]["amount"].median()
    assert 80 < ratio < 125


def test_prior_shift_triples_fraud_and_keeps_size(frames: dict[str, pd.DataFrame]) -> None:
    assert len(frames["prior_shift"]) == N
    assert frames["prior_shift"][LABEL].mean() == pytest.approx(
        3 * frames["baseline"][LABEL].mean(), rel=0.25
    )


def test_concept_drift_keeps_inputs_but_changes_the_truth(frames: dict[str, pd.DataFrame]) -> None:
    base, drift = frames["baseline"], frames["concept_drift"]
    assert abs(base["amount"].median() - drift["amount"].median()) / base["amount"].median() < 0.1
    corr = np.corrcoef(fraud_probability(drift), fraud_probability(drift, "concept_drift"))[0, 1]
    assert corr < 0.5


def test_missing_values_and_schema_break_are_caught_by_the_schema(frames: dict[str, pd.DataFrame]) -> None:
    missing = SCHEMA.problems(frames["missing_values"], max_null_fraction=0.01)
    assert any("distance_from_home_km" in p and "missing values" in p for p in missing)
    broken = SCHEMA.problems(frames["schema_break"])
    assert any("missing columns: amount" in p for p in broken)
    assert any(p.startswith("hour: expected numbers") for p in broken)


def test_irrelevant_drift_moves_only_device_os(frames: dict[str, pd.DataFrame]) -> None:
    base, drift = frames["baseline"], frames["irrelevant_drift"]
    assert (drift["device_os"] == "other").mean() > 0.4 > (base["device_os"] == "other").mean()
    for col in ("amount", "distance_from_home_km"):
        assert abs(base[col].median() - drift[col].median()) / base[col].median() < 0.1
    # The ground truth ignores device_os: same inputs apart from it, same fraud probability.
    swapped = drift.assign(device_os="ios")
    np.testing.assert_allclose(fraud_probability(drift), fraud_probability(swapped))


def test_schema_flags_out_of_range_and_unknown_categories() -> None:
    bad = generate("baseline", 50).assign(amount=-1.0)
    bad.loc[0, "channel"] = "carrier_pigeon"
    problems = SCHEMA.problems(bad)
    assert "amount: values below 0.0" in problems
    assert any(p.startswith("channel: unknown categories ['carrier_pigeon']") for p in problems)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_read_roundtrip_and_fingerprint(tmp_path: Path, suffix: str) -> None:
    frame = generate("baseline", 300)
    path = write_frame(frame, tmp_path / f"x{suffix}")
    back = read_frame(path)
    assert list(back.columns) == list(frame.columns)
    assert fingerprint(back[SCHEMA.numeric]) == fingerprint(frame[SCHEMA.numeric])
    assert not list(tmp_path.glob(".x*")), "temporary files left behind"


def test_bad_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"use a \.parquet or \.csv file"):
        write_frame(generate("baseline", 3), tmp_path / "x.xlsx")


def test_delayed_labels_are_deterministic_and_arrive_later() -> None:
    frame = generate("baseline", 2000, seed=5)
    frame["request_id"] = [f"r{i}" for i in range(len(frame))]
    frame["ts"] = datetime(2026, 1, 1, tzinfo=UTC)
    first = list(delayed_labels(frame, mean_delay_s=30))
    again = list(delayed_labels(frame, mean_delay_s=30))
    assert first == again
    delays = np.array([(lab.arrives_at - frame["ts"][0]).total_seconds() for lab in first])
    assert (delays >= 0).all() and 20 < delays.mean() < 40
    rate = np.mean([lab.label for lab in first])
    assert rate == pytest.approx(fraud_probability(frame).mean(), abs=0.015)


def test_delayed_labels_of_a_fraud_wave_carry_its_fraud_rate() -> None:
    """Labels drawn with the baseline truth would turn prior_shift traffic back into baseline."""
    frame = generate("prior_shift", 20_000, seed=6)
    frame["request_id"] = [f"w{i}" for i in range(len(frame))]
    frame["ts"] = datetime(2026, 1, 1, tzinfo=UTC)
    wave = np.mean([lab.label for lab in delayed_labels(frame, 30, concept="prior_shift")])
    plain = np.mean([lab.label for lab in delayed_labels(frame, 30)])
    assert wave == pytest.approx(frame["is_fraud"].mean(), abs=0.01)
    assert plain < 0.6 * wave
