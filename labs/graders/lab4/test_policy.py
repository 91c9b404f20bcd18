"""Grader of lab 4 / trigger-policy (exercises/lab4/policy.py): retrain on drift that matters, and only then.

The exercise is open-ended, so the policy is graded on what it does over many windows, streamed
through it by mlops_lab.monitoring.simulate the way the monitor does (one window a minute of
simulated time). The data is built once per session: a real model (labs.grading.fit_tiny_model),
its permutation importance on a 5,000-row baseline reference, and 500-row windows whose drift
is Evidently's default verdict (normed Wasserstein or Jensen-Shannon, drift from 0.1) computed by
simulate.fast_drift with the reference statistics:

  no drift      500 baseline windows (about 8 hours): at most one retrain. The reference policy
                gives none; a naive "any column drifted" alarm fires on about 27% of them.
  irrelevant    100 windows where only device_os drifts (the generator's irrelevant_drift): none.
  power         a 0.5 SD shift of the model's most important numeric feature, on 50 seeds: a
                retrain within K+1 windows on at least 45 (the reference: 50, on the K-th).
Then the contract the monitor relies on, with windows taken from the same data: K in a row,
what counts and what resets, the cooldown, alarms passed through, a state that survives a
restart (saved atomically, loaded strictly), a pure `decide`.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from mlops_lab.bench.canary import clopper_pearson_upper
from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.errors import BrokenStateFile
from mlops_lab.labs.grading import TinyModel, cached
from mlops_lab.monitoring.importance import feature_importance
from mlops_lab.monitoring.simulate import START, fast_drift, shifted, stream, verdict_of, windows_of
from mlops_lab.monitoring.window import WindowVerdict, unit_changes
from mlops_lab.settings import Settings

ROWS = 500  # a window, as the monitor cuts them (settings.monitor_window_rows)
NULL_WINDOWS = 500
IRRELEVANT_WINDOWS = 100
SEEDS = range(100, 150)
MIN_DETECTED = 45  # of 50 seeds (90%); the reference detects all 50
SHIFT_SDS = 0.5
MAX_FALSE_TRIGGERS = 1  # over 500 no-drift windows; the reference triggers on none
MINUTE = timedelta(minutes=1)
# Windows 90 s apart never land exactly on the end of a 600 s cooldown, so that whether the
# boundary itself is still cooling down (< or <=) changes nothing graded.
OFF_BEAT = timedelta(seconds=90)
MISSING = ("distance_from_home_km: 15.0% missing values (allowed 1.0%)",)


@dataclass(frozen=True)
class World:
    importance: dict[str, float]
    top: str  # the model's most important numeric feature: the one shifted
    null: list[WindowVerdict]  # baseline windows
    irrelevant: list[WindowVerdict]  # irrelevant_drift windows: device_os drifts
    power: list[list[WindowVerdict]]  # per seed, K+1 windows shifted by SHIFT_SDS of `top`
    clean: WindowVerdict  # a baseline window in which no column drifted
    only_device_os: WindowVerdict  # an irrelevant_drift window in which only device_os drifted
    small_drifted: WindowVerdict  # ROWS - 1 rows of a shifted window
    small_clean: WindowVerdict  # ROWS - 1 rows of a clean window
    quality: WindowVerdict  # a missing_values window with its data-quality alarms
    unit: WindowVerdict  # amounts in cents: an enormous drift, with its unit-change alarm
    not_computed: WindowVerdict  # a schema break: drift could not be computed

    @property
    def drifted(self) -> list[WindowVerdict]:
        """Shifted windows, every seed's in turn: drift that persists."""
        return [v for seed in self.power for v in seed]


@pytest.fixture(scope="session")
def world(request: pytest.FixtureRequest) -> World:
    """Every verdict the checks use: about 800 windows through fast_drift (10 to 25 ms each on
    a laptop core), the grader's one real cost, so it is kept between runs (labs.grading.cached,
    rebuilt when any module it comes from changes)."""
    sources = [sys.modules[__name__], *(importlib.import_module(name) for name in WORLD_SOURCES)]
    kept = cached(
        "lab4-policy-world", sources, lambda: vars_of(build_world(request.getfixturevalue("tiny_model")))
    )
    return World(**kept)


# What the world's verdicts are computed with: a change to any of them rebuilds the cached world.
WORLD_SOURCES = (
    "mlops_lab.data.generator",
    "mlops_lab.data.schema",
    "mlops_lab.labs.grading",
    "mlops_lab.lifecycle.model",
    "mlops_lab.monitoring.drift",
    "mlops_lab.monitoring.importance",
    "mlops_lab.monitoring.performance",
    "mlops_lab.monitoring.simulate",
    "mlops_lab.monitoring.stats",
    "mlops_lab.monitoring.window",
    "mlops_lab.pipeline.validate",
    "mlops_lab.settings",
)


def vars_of(world: World) -> dict[str, Any]:
    return {f.name: getattr(world, f.name) for f in fields(World)}


def build_world(tiny_model: TinyModel) -> World:
    reference = features_only(generate("baseline", 5_000, seed=2))
    importance = feature_importance(tiny_model.pipeline, reference)
    top = max(SCHEMA.numeric, key=lambda name: importance[name])

    def verdict(frame: pd.DataFrame) -> WindowVerdict:
        return verdict_of(fast_drift(reference, frame), importance)

    null_frames = windows_of(features_only(generate("baseline", NULL_WINDOWS * ROWS, seed=3)), ROWS)
    null = [verdict(w) for w in null_frames]
    irrelevant_frames = features_only(generate("irrelevant_drift", IRRELEVANT_WINDOWS * ROWS, seed=5))
    irrelevant = [verdict(w) for w in windows_of(irrelevant_frames, ROWS)]
    k = Settings.model_fields["monitor_consecutive_windows"].default  # each seed gets K+1 windows
    power = []
    for seed in SEEDS:
        frames = windows_of(features_only(generate("baseline", (k + 1) * ROWS, seed=seed)), ROWS)
        power.append([verdict(shifted(w, top, SHIFT_SDS, reference)) for w in frames])

    clean_at = next(i for i, v in enumerate(null) if not drifted_columns(v))
    small_clean = next(s for w in null_frames if not drifted_columns(s := verdict(w.iloc[: ROWS - 1])))
    quality = next(v for seed in range(6, 60) if not drifted_columns(v := with_alarms(verdict, seed)))
    lacks = ("drift not computed: the current window lacks columns: amount",)
    return World(
        importance=importance,
        top=top,
        null=null,
        irrelevant=irrelevant,
        power=power,
        clean=null[clean_at],
        only_device_os=next(v for v in irrelevant if drifted_columns(v) == ["device_os"]),
        small_drifted=verdict(shifted(null_frames[0].iloc[: ROWS - 1], top, SHIFT_SDS, reference)),
        small_clean=small_clean,
        quality=quality,
        unit=unit_window(verdict, reference),
        not_computed=replace(null[clean_at], drift=None, data_quality=lacks),
    )


def with_alarms(verdict: Callable[[pd.DataFrame], WindowVerdict], seed: int) -> WindowVerdict:
    """A missing_values window (a failed join blanks 15% of two columns) with its alarms."""
    missing = features_only(generate("missing_values", ROWS, seed=seed))
    return replace(verdict(missing), data_quality=tuple(SCHEMA.problems(missing, max_null_fraction=0.01)))


def unit_window(verdict: Callable[[pd.DataFrame], WindowVerdict], reference: pd.DataFrame) -> WindowVerdict:
    """A unit_bug window (amounts in cents) with the alarm the monitor raises for it."""
    cents = features_only(generate("unit_bug", ROWS, seed=4))
    return replace(verdict(cents), data_quality=tuple(unit_changes(reference, cents)))


def drifted_columns(v: WindowVerdict) -> list[str]:
    return v.drift.drifted_columns if v.drift is not None else []


def decisions(
    impl: ModuleType,
    policy: Any,
    verdicts: Sequence[WindowVerdict],
    state: Any | None = None,
    *,
    start: datetime = START,
    step: timedelta = MINUTE,
) -> tuple[list[Any], Any]:
    """Each window's Decision in turn, `step` apart from `start`, and the last state."""
    state = impl.PolicyState() if state is None else state
    out = []
    for i, v in enumerate(verdicts):
        decision, state = policy.decide(state, v, start + i * step)
        out.append(decision)
    return out, state


def triggered(found: list[Any]) -> list[int]:
    """The 1-based numbers of the windows that triggered."""
    return [i + 1 for i, d in enumerate(found) if d.trigger]


def sequence(world: World, pattern: str) -> list[WindowVerdict]:
    """Windows by letter: D drifted (0.5 SD, distinct windows), C clean, O only device_os
    drifted, s a small drifted window, c a small clean one, Q data-quality alarms, U amounts in
    cents (an enormous drift and its alarm), N drift not computed."""
    drifted = iter(world.drifted)
    fixed = {
        "C": world.clean,
        "O": world.only_device_os,
        "s": world.small_drifted,
        "c": world.small_clean,
        "Q": world.quality,
        "U": world.unit,
        "N": world.not_computed,
    }
    return [next(drifted) if ch == "D" else fixed[ch] for ch in pattern]


def expect_triggers(impl: ModuleType, world: World, pattern: str, want: list[int], why: str) -> None:
    found, _ = decisions(impl, impl.TriggerPolicy(), sequence(world, pattern))
    got = triggered(found)
    assert got == want, (
        f"expected windows {pattern} (K=3) to trigger on window(s) {want} ({why}), got {got}; "
        f"reasons: {[d.reason for d in found]}"
    )


# ---------------------------------------------------------------- measured over many windows
def test_no_false_alarms(impl: ModuleType, world: World) -> None:
    """no drift: at most 1 retrain over 500 clean windows (about 8 hours of traffic)

    On a clean window some column is just past its threshold about a quarter of the time, by
    chance: weigh each drifted column by its importance and by how far past the threshold it is
    (WindowVerdict.drifted_importance), and ask for K such windows in a row.
    """
    result, _ = stream(impl.TriggerPolicy(), world.null, state=impl.PolicyState())
    summary = result.summary()
    assert len(result.triggers) <= MAX_FALSE_TRIGGERS, (
        f"expected at most {MAX_FALSE_TRIGGERS} retrain over {result.windows} no-drift windows (the "
        f"reference: 0), got {len(result.triggers)} (first at windows {result.triggers[:5]}); "
        f"{summary['counted_rate']:.1%} of the windows counted towards a trigger; a naive 'any column "
        f"drifted' alarm would fire on {summary['any_column_rate']:.1%} of them "
        f"(flagged: {summary['columns_flagged']})"
    )


def test_irrelevant_drift(impl: ModuleType, world: World) -> None:
    """drift only on device_os, a feature the model ignores, never retrains (100 windows)

    device_os really drifts on every one of these windows, but the model barely uses it: a drifted
    column counts by the importance it carries (window.importance), not by its being drifted.
    """
    result, _ = stream(impl.TriggerPolicy(), world.irrelevant, state=impl.PolicyState())
    summary = result.summary()
    assert not result.triggers, (
        f"expected no retrain over {result.windows} irrelevant_drift windows (device_os carries "
        f"{world.importance['device_os']:.1%} of the importance), got {len(result.triggers)} (windows "
        f"{result.triggers[:5]}); {summary['counted_rate']:.0%} of the windows counted towards a trigger"
    )


def test_power(impl: ModuleType, world: World) -> None:
    """a 0.5 SD shift of the most important numeric feature retrains within K+1 windows on >= 45 of 50 seeds

    The shift moves that column's normed Wasserstein distance to about 5x its threshold: such a
    window must count, and K of them in a row retrain.
    """
    policy = impl.TriggerPolicy()
    k = policy.consecutive_windows
    firsts = [stream(policy, windows, state=impl.PolicyState())[0].first_trigger for windows in world.power]
    hits = sum(first is not None and first < k + 1 for first in firsts)
    misses = len(firsts) - hits
    assert hits >= MIN_DETECTED, (
        f"expected a retrain within {k + 1} windows on at least {MIN_DETECTED}/{len(firsts)} seeds of a "
        f"{SHIFT_SDS} SD shift of {world.top} ({world.importance[world.top]:.1%} of the importance), got "
        f"{hits}/{len(firsts)} (a miss rate of {misses / len(firsts):.0%}, 95% upper bound "
        f"{clopper_pearson_upper(misses, len(firsts)):.0%}); first window that triggered per seed: "
        f"{firsts[:10]}"
    )


# ---------------------------------------------------------------- K in a row: what counts and resets
def test_kth_window(impl: ModuleType, world: World) -> None:
    """drift that matters retrains on the K-th window in a row, not before (K = 1, 3, 5)

    consecutive_windows=K means K windows that count, this one included: the count before this
    window is state.consecutive, and it is this window that makes it K.
    """
    for k in (1, 3, 5):
        policy = impl.TriggerPolicy(consecutive_windows=k)
        found, _ = decisions(impl, policy, world.drifted[: k + 2])
        got = triggered(found)
        assert got[:1] == [k], (
            f"expected the first retrain on window {k} of {k + 2} drifted windows with "
            f"consecutive_windows={k}, got retrains on windows {got}; reasons: {[d.reason for d in found]}"
        )


def test_small_window(impl: ModuleType, world: World) -> None:
    """a window under min_samples neither counts nor resets the count

    499 rows (min_samples is 500) say too little to count, drifted or not, but a short window in
    the middle of real drift must not cost K more windows either: return the state unchanged.
    """
    expect_triggers(impl, world, "DDsDD", [4], "the small window 3 neither counts nor resets")
    expect_triggers(impl, world, "DDcD", [4], "the small clean window 3 does not reset the count")


def test_clean_window_resets(impl: ModuleType, world: World) -> None:
    """a window that does not count (no drift, or drift only on device_os) resets the count

    K windows *in a row*: a full-size window whose drift does not matter breaks the run, and the
    count starts over (replace(state, consecutive=0)).
    """
    expect_triggers(impl, world, "DDCDDD", [6], "the clean window 3 starts the count over")
    expect_triggers(impl, world, "DDODDD", [6], "window 3, where only device_os drifted, starts it over")


def test_data_quality(impl: ModuleType, world: World) -> None:
    """data-quality alarms are passed through in Decision.alarms, and never trigger

    A blanked column is a broken producer, not a changed world: retraining would learn the bug.
    Hand window.data_quality on in every decision, whatever else is decided.
    """
    windows = [world.quality] * 5 + [replace(v, data_quality=MISSING) for v in sequence(world, "DsN")]
    found, _ = decisions(impl, impl.TriggerPolicy(), windows)
    assert not any(d.trigger for d in found[:5]), (
        f"expected 5 windows with data-quality alarms and no drift never to trigger, got retrains on "
        f"windows {triggered(found[:5])}: {[d.reason for d in found[:5]]}"
    )
    for d, v in zip(found, windows, strict=True):
        assert tuple(d.alarms) == v.data_quality, (
            f"expected Decision.alarms == the window's data_quality {v.data_quality}, got {d.alarms!r} "
            f"(reason: {d.reason})"
        )


def test_unit_change_holds(impl: ModuleType, world: World) -> None:
    """drift with a data-quality alarm holds: amounts in cents never retrain, nor reset the count

    A producer sending cents makes amount drift at hundreds of times its threshold, and the
    monitor raises a unit-change alarm for it. Retraining would learn the bug: while a window
    has an alarm it neither counts nor resets (like a window too small to judge).
    """
    assert world.unit.data_quality and "amount" in world.unit.drift.drifted_columns  # type: ignore[union-attr]
    found, _ = decisions(impl, impl.TriggerPolicy(), sequence(world, "UUUUUU"))
    assert not any(d.trigger for d in found), (
        f"expected 6 windows of amounts in cents (alarm: {world.unit.data_quality[0]}) never to "
        f"retrain, got retrains on windows {triggered(found)}: {[d.reason for d in found]}"
    )
    expect_triggers(impl, world, "DDUD", [4], "the alarmed window 3 neither counts nor resets")


def test_drift_not_computed(impl: ModuleType, world: World) -> None:
    """a window whose drift was not computed (verdict.drift is None) never triggers nor counts

    evaluate_window sets drift to None when the window cannot be compared (a renamed column): its
    data_quality says why. There is nothing to weigh: it must not crash either.
    """
    found, _ = decisions(impl, impl.TriggerPolicy(), sequence(world, "DDNNNN"))
    late = found[2:]
    assert not any(d.trigger or d.drifted_where_it_matters for d in late), (
        f"expected windows 3-6 (drift None) neither to trigger nor to count, got "
        f"{[(d.trigger, d.drifted_where_it_matters, d.reason) for d in late]}"
    )


# ---------------------------------------------------------------- the cooldown
def test_cooldown(impl: ModuleType, world: World) -> None:
    """drift that persists retrains once per cooldown: never sooner, and on the first window after it

    A retrain takes minutes (train, gate, canary): while it runs, more drifted windows are no news.
    Keep counting through the cooldown, so the first window after it retrains; waiting for K new
    windows would leave a stale model up longer for nothing.
    """
    policy = impl.TriggerPolicy()
    windows = world.drifted[:40]  # 60 minutes of drift, a window every 90 s
    result, _ = stream(policy, windows, state=impl.PolicyState(), step=OFF_BEAT)
    times = [(t - START).total_seconds() / 60 for t in result.trigger_times]
    gaps = [b - a for a, b in zip(result.trigger_times, result.trigger_times[1:], strict=False)]
    shown = f"retrains at minutes {times} (a window every 90 s, cooldown_s={policy.cooldown_s:g})"
    assert len(result.triggers) >= 2, f"expected a retrain again once the cooldown is over, got {shown}"
    cooldown = timedelta(seconds=policy.cooldown_s)
    assert all(g >= cooldown for g in gaps), f"expected no two retrains closer than the cooldown, got {shown}"
    assert all(g < cooldown + OFF_BEAT for g in gaps), (
        f"expected each retrain on the first window after the previous one's cooldown (the drift never "
        f"stopped), got {shown}"
    )


# ---------------------------------------------------------------- restarts: the state on disk
def test_restart(impl: ModuleType, world: World, tmp_path: Path) -> None:
    """cut anywhere, saved and loaded, a stream decides exactly as it does uninterrupted

    The monitor saves the state after every window and loads it when it starts: whatever decide
    relies on (the count, the last trigger time with its time zone) must go through save and load.
    """
    policy = impl.TriggerPolicy()
    windows = sequence(world, "DDDDsDDDDDCDDNDDQDDDDDDDODDDDDDDD")
    straight, _ = decisions(impl, policy, windows, step=OFF_BEAT)
    want = [(d.trigger, d.drifted_where_it_matters) for d in straight]
    path = tmp_path / "monitor" / "policy_state.json"
    for cut in range(1, len(windows)):
        before, state = decisions(impl, policy, windows[:cut], step=OFF_BEAT)
        state.save(path)
        resumed = impl.PolicyState.load(path)
        after, _ = decisions(
            impl, policy, windows[cut:], resumed, start=START + cut * OFF_BEAT, step=OFF_BEAT
        )
        got = [(d.trigger, d.drifted_where_it_matters) for d in before + after]
        assert got == want, (
            f"expected the same retrains with a restart after window {cut} as without, got retrains on "
            f"windows {triggered(before + after)} instead of {triggered(straight)} (state saved: "
            f"{state!r}, loaded: {resumed!r})"
        )


def test_save_is_atomic(impl: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """save is atomic: a crash while saving leaves the old state, never half a file

    Write a temporary file in the same folder, flush and fsync it, then os.replace it over the
    old one; remove the temporary file if anything fails. Writing the file in place truncates it
    first: a crash then leaves an empty file, and the cooldown is lost.
    """
    path = tmp_path / "monitor" / "policy_state.json"
    old = impl.PolicyState(consecutive=2, last_trigger_ts=START)
    new = impl.PolicyState(consecutive=0, last_trigger_ts=START + timedelta(hours=1))
    old.save(path)
    left = sorted(p.name for p in path.parent.iterdir())
    assert left == [path.name], f"expected only {path.name} in the folder after a save, got {left}"
    back = impl.PolicyState.load(path)
    assert back == old, f"expected {old!r} back from save and load, got {back!r}"
    dumps = json.dumps  # the real one, for the fake json.dump below

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise OSError("simulated crash")

    def crash_mid_write(obj: Any, fp: Any, *args: Any, **kwargs: Any) -> None:
        text = dumps(obj)
        fp.write(text[: len(text) // 2])  # half the file, then the process dies
        raise OSError("simulated crash")

    # A crash just before the rename, then one in the middle of serialising and writing.
    for name, patches in (
        ("before the rename", [(os, "replace", crash), (os, "rename", crash)]),
        ("while writing", [(json, "dump", crash_mid_write), (json, "dumps", crash)]),
    ):
        crashed = False
        with monkeypatch.context() as m:
            for target, attr, fake in patches:
                m.setattr(target, attr, fake)
            try:
                new.save(path)
            except OSError:
                crashed = True
        if name == "before the rename":
            assert crashed, (
                f"expected save to write a temporary file and rename it over {path.name} (os.replace), "
                f"got a save that finished without any rename: it wrote the file in place"
            )
        if not crashed:
            continue  # this save does not serialise through json.dump(s): nothing was crashed
        try:
            after = impl.PolicyState.load(path)
        except Exception as exc:  # half a file: the reason this check exists
            after = f"an unreadable file ({type(exc).__name__}: {exc}; it holds {path.read_text()!r})"
        assert after == old, f"expected the old state {old!r} after a crash {name}, got {after!r}"


def test_load(impl: ModuleType, tmp_path: Path) -> None:
    """load: no file gives a fresh state, a saved one comes back equal, a broken one raises BrokenStateFile

    A broken file must not read as a fresh start: that silently forgets the last retrain and skips
    the cooldown. Raise mlops_lab.errors.BrokenStateFile naming the file (a person deletes it to reset).
    """
    missing = tmp_path / "nowhere" / "policy_state.json"
    fresh = impl.PolicyState.load(missing)
    assert fresh == impl.PolicyState(), f"expected a fresh PolicyState() with no file, got {fresh!r}"
    path = tmp_path / "policy_state.json"
    state = impl.PolicyState(consecutive=4, last_trigger_ts=datetime(2026, 3, 1, 12, 30, tzinfo=UTC))
    state.save(path)
    back = impl.PolicyState.load(path)
    assert back == state, f"expected {state!r} back from save and load, got {back!r}"
    for text in ("", "{not json", "[]", '{"consecutive": "three"}', '{"last_trigger_ts": "yesterday"}'):
        path.write_text(text)
        try:
            got = impl.PolicyState.load(path)
        except BrokenStateFile:
            continue
        except NotImplementedError:
            raise
        except Exception as exc:
            got = f"{type(exc).__name__}: {exc}"
        pytest.fail(f"expected BrokenStateFile for a state file holding {text!r}, got {got!r}", pytrace=False)


def test_naive_now(impl: ModuleType, world: World) -> None:
    """a naive `now` (no time zone) is refused with ValueError

    The saved trigger time is UTC: comparing it with a naive time either crashes later or is
    silently hours off. Check now.tzinfo before anything else.
    """
    naive = datetime(2026, 1, 1, 12, 0)
    for v in (world.clean, world.drifted[0]):
        with pytest.raises(ValueError):
            impl.TriggerPolicy().decide(impl.PolicyState(), v, naive)


def test_pure(impl: ModuleType, world: World) -> None:
    """decide is pure: the state it is given never changes, and the same inputs give the same decision

    The monitor saves the state decide returns, and only that: a state changed in place would be
    saved by accident (or not at all). Return a new one (dataclasses.replace).
    """
    policy = impl.TriggerPolicy()
    states = [
        impl.PolicyState(),
        impl.PolicyState(consecutive=2),
        impl.PolicyState(consecutive=2, last_trigger_ts=START - MINUTE),
    ]
    windows = sequence(world, "DCOscQN")
    for state in states:
        for v in windows:
            before = copy.deepcopy(state)
            first = policy.decide(state, v, START)
            assert state == before, f"expected decide to leave the state {before!r} as it was, got {state!r}"
            again = policy.decide(state, v, START)
            assert again == first, (
                f"expected the same decision for the same inputs, got {first!r} then {again!r}"
            )
