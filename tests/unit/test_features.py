"""The feature job: per-card history features, the slow definition and the fast version, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_lab.cli.data import features as feature_job
from mlops_lab.data.features import FEATURES, card_features, card_features_slow, event_times
from mlops_lab.data.generator import generate
from mlops_lab.data.io import read_frame, write_frame
from mlops_lab.errors import BadData, UsageError, UserError

START = pd.Timestamp("2024-05-01 08:00")


def log(n: int, seed: int, cards: int, minutes: int | None = 240, scenario: str = "baseline") -> pd.DataFrame:
    """Generated transactions folded onto `cards` cards; a whole-minute clock (ties, exact hours)
    over `minutes`, rows out of time order; no clock when `minutes` is None."""
    frame = generate(scenario, n, seed=seed)
    frame["card_id"] = (frame["card_id"].astype(int) % cards).astype(str)
    if minutes is not None:
        minute = np.random.default_rng(seed).integers(0, minutes, size=n)
        frame["ts"] = START + pd.to_timedelta(minute, unit="min")
    return frame


def assert_same(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("n", "seed", "cards", "minutes", "scenario"),
    [
        (600, 1, 60, None, "baseline"),  # no clock: the row order is the time
        (500, 2, 20, 240, "baseline"),  # out of time order, ties, exact hours
        (300, 3, 4, 90, "covariate_shift"),  # long histories, busy windows
        (300, 4, 30, 600, "missing_values"),  # NaN in other columns pass through
    ],
)
def test_fast_version_matches_the_slow_definition(
    n: int, seed: int, cards: int, minutes: int | None, scenario: str
) -> None:
    frame = log(n, seed, cards, minutes, scenario)
    assert_same(card_features_slow(frame), card_features(frame))


def test_features_by_hand() -> None:
    """The definition on a log small enough to check with a pencil, out of time order."""
    frame = pd.DataFrame(
        {
            "card_id": ["a", "a", "b", "a", "a", "a"],
            "amount": [30.0, 10.0, 5.0, 20.0, 40.0, 50.0],
            "channel": ["online", "online", "card_present", "contactless", "online", "online"],
            "ts": pd.to_datetime(["11:00", "10:00", "10:15", "10:30", "11:00", "12:30"], format="%H:%M"),
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    for fn in (card_features_slow, card_features):
        got = fn(frame)
        assert list(got.index) == [10, 11, 12, 13, 14, 15]
        # card a in time order: 10:00 $10, 10:30 $20, 11:00 $30, 11:00 $40 (tied: later in the log), 12:30 $50
        assert got["card_txns_1h"].tolist() == [2, 0, 0, 1, 3, 0]  # 10:00 is exactly an hour before 11:00
        assert got["card_amount_1h"].tolist() == [30.0, 0.0, 0.0, 10.0, 60.0, 0.0]
        assert got.loc[10, "card_seconds_since_last"] == 1800.0
        assert got.loc[[11, 12], "card_seconds_since_last"].isna().all()  # first transactions
        assert got.loc[14, "card_seconds_since_last"] == 0.0  # the tie: no time since the last
        assert got.loc[15, "card_seconds_since_last"] == 5400.0
        # z of 11:00 $30 against [10, 20]: mean 15, sample std 7.07
        assert got.loc[10, "card_amount_z"] == pytest.approx(15 / np.std([10, 20], ddof=1))
        assert got.loc[[11, 12, 13], "card_amount_z"].isna().all()  # fewer than two earlier amounts
        assert got.loc[15, "card_online_share"] == pytest.approx(3 / 4)  # online, contactless, online, online
        assert np.isnan(got.loc[12, "card_online_share"])  # card b's first transaction
        assert got["card_txns_1h"].dtype == np.int64


def test_a_constant_amount_has_no_z_score() -> None:
    frame = log(200, 5, 5)
    frame.loc[frame["card_id"] == "2", "amount"] = 0.1  # 0.1 + 0.1 + 0.1 != 0.3 in binary
    for fn in (card_features_slow, card_features):
        assert fn(frame).loc[frame["card_id"] == "2", "card_amount_z"].isna().all()


def test_input_untouched_order_and_index_kept() -> None:
    frame = log(200, 6, 10)
    frame.index = pd.Index(np.arange(len(frame))[::-1] * 3, name="txn")
    before = frame.copy(deep=True)
    got = card_features(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert got.index.equals(frame.index)
    assert list(got.columns) == [*frame.columns, *FEATURES]
    pd.testing.assert_frame_equal(got[list(frame.columns)], frame)


def test_an_empty_log_gets_empty_feature_columns() -> None:
    empty = log(10, 7, 3).iloc[:0]
    assert_same(card_features_slow(empty), card_features(empty))
    assert card_features(empty)["card_txns_1h"].dtype == np.int64


def test_the_clock_is_ts_in_any_time_zone_or_the_row_order() -> None:
    frame = log(5, 8, 2)
    aware = frame.assign(ts=frame["ts"].dt.tz_localize("Europe/Paris"))
    shift = 2 * 3_600 * 10**9  # Paris is UTC+2 in May
    assert (event_times(frame) - event_times(aware) == shift).all()
    assert event_times(frame.drop(columns="ts")).tolist() == [i * 10**9 for i in range(5)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="channel"), "no column channel"),
        (lambda f: f.assign(amount=f["amount"].mask(f.index == 3)), "1 missing amount"),
        (lambda f: f.assign(card_id=f["card_id"].mask(f.index < 2)), "2 missing card_id"),
        (lambda f: f.assign(ts=f["ts"].mask(f.index == 0)), "1 missing times in ts"),
    ],
)
def test_a_broken_log_is_refused_with_what_is_wrong(change: object, message: str) -> None:
    broken = change(log(20, 9, 3))  # type: ignore[operator]
    for fn in (card_features_slow, card_features):
        with pytest.raises(BadData, match=message):
            fn(broken)


# ---------------------------------------------------------------- mlops-lab data features
def test_feature_job_writes_the_log_with_its_features(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_frame(log(300, 10, 30), tmp_path / "tx.parquet")
    feature_job(input=source, output=tmp_path / "features.csv", impl="reference")
    assert "wrote 300 rows of 30 cards with 5 features" in capsys.readouterr().out
    written = read_frame(tmp_path / "features.csv")
    assert list(written.columns[-5:]) == list(FEATURES)
    expected = card_features(read_frame(source))
    np.testing.assert_allclose(written[list(FEATURES)].to_numpy(), expected[list(FEATURES)].to_numpy())


def test_feature_job_runs_the_learners_code_and_says_when_it_is_not_written(tmp_path: Path) -> None:
    mine = tmp_path / "copy" / "exercises" / "lab6" / "features.py"
    mine.parent.mkdir(parents=True)
    mine.write_text(
        "from mlops_lab.data.features import *  # noqa: F403\n\n\n"
        "def card_features(frame):\n"
        '    raise NotImplementedError("TODO(lab-6): the card features, vectorised")\n'
    )
    source = write_frame(log(20, 11, 3), tmp_path / "tx.csv")
    with pytest.raises(UserError, match=r"fast-features exercise is not written yet .* make lab-6"):
        feature_job(input=source, output=tmp_path / "out.parquet", impl=str(tmp_path / "copy"))
    assert not (tmp_path / "out.parquet").exists()
    with pytest.raises(UsageError, match="give --input and --output"):
        feature_job(input=source, impl="reference")


def test_feature_job_profiles_the_slow_version(capsys: pytest.CaptureFixture[str]) -> None:
    feature_job(profile=True, rows=150, impl="reference")
    out = capsys.readouterr().out
    assert "card_features_slow" in out  # pyinstrument's call tree names it
    assert "150 rows: card_features_slow" in out and "x (the grader asks for 20x)" in out
