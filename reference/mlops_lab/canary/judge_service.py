"""The judge API's looks, without HTTP: pin a rollout, read the store, judge, carry the state.

    python -c "from mlops_lab.canary.judge_service import JudgeService; help(JudgeService.look)"

The judge is sequential: alpha is spent over the looks of a whole rollout (`canary.judge`), so
the information fraction reached at one look must reach the next one, whoever asks and however
often. Each rollout keeps its state in one small JSON file (home/canary/judge-api/<id>.json),
replaced atomically under a lock (threads and processes): the candidate, the champion, `by`,
the expectation and the window (`since`, per mode), pinned at the first look; then the
fraction and the alpha spent per mode, and the looks. A look that repeats an earlier one, or
comes with no new data, spends nothing (the judge answers INCONCLUSIVE: "no new canary samples
since the last look"); a restarted server carries on from the file, and a look that contradicts
what was pinned is refused (`Conflict`): its fraction would mean nothing.

The champion defaults to @champion, the expectation is the candidate version's
`canary_expectation` tag (without it the judge expects no difference, as the controller does):
both read from the registry once, at the rollout's first look. The window defaults to the
candidate's first prediction in the mode. `by` says how the arms are told apart: the `variant`
column (this project's servers), or the version alone (`canary.judge_api` says when).
Never a PASS on fewer than `canary_min_samples` canary samples, whoever wrote the judge.
HTTP (`canary.judge_api`) maps `Invalid` to 422, `Conflict` to 409, `Unavailable` to 503.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter

from mlops_lab.canary.controller import EXPECTATION_TAG, JUDGE, judge_config
from mlops_lab.canary.evidence import judge_frame
from mlops_lab.canary.judgement import Expectation, Judgement
from mlops_lab.canary.state import Rollout
from mlops_lab.canary.weights import SHADOW_SUFFIX
from mlops_lab.data.io import write_json_atomic
from mlops_lab.errors import BrokenStateFile
from mlops_lab.parts import Part
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store, predictions

Mode = Literal["split", "paired"]
By = Literal["variant", "version"]
MAX_LOOKS = 500  # kept in the state file; a 10 s look for a day is 8,640, the recent ones matter


class Unavailable(Exception):
    """The prediction store or the registry cannot be reached now: 503, retry later."""

    def __init__(self, what: str, exc: BaseException) -> None:
        super().__init__(f"{what} unreachable: {_short(exc)}")
        self.what = what


class Conflict(Exception):
    """A parameter contradicts what the rollout pinned at its first look: 409."""


class Invalid(Exception):
    """A parameter is well-formed but wrong (a version the registry does not hold): 422."""

    def __init__(self, loc: list[str], msg: str) -> None:
        super().__init__(msg)
        self.loc, self.msg = loc, msg


class Registry(Protocol):
    """What the judge API asks the model registry, once per rollout."""

    def champion(self) -> str | None:
        """The version @champion points at (None: no champion yet)."""

    def expectation(self, version: str) -> str | None:
        """The version's `canary_expectation` tag (None: untagged); LookupError: no such version."""


class MlflowRegistry:
    """The registry of `settings` (the MLflow server, or SQLite under home)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def champion(self) -> str | None:
        from mlops_lab.lifecycle.tracking import CHAMPION, client_for, version_by_alias

        mv = version_by_alias(client_for(self.settings), self.settings.model_name, CHAMPION)
        return None if mv is None else str(mv.version)

    def expectation(self, version: str) -> str | None:
        from mlflow.exceptions import MlflowException

        from mlops_lab.lifecycle.tracking import client_for

        try:
            mv = client_for(self.settings).get_model_version(self.settings.model_name, version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise LookupError(version) from exc
            raise
        return (mv.tags or {}).get(EXPECTATION_TAG)


@dataclass
class JudgeState:
    """One rollout as the judge API remembers it (home/canary/judge-api/<rollout_id>.json)."""

    rollout_id: str
    candidate: str
    champion: str
    by: str
    expectation: str | None  # Expectation JSON, pinned at the first look
    expectation_source: str
    since: dict[str, str] = field(default_factory=dict)  # mode -> ISO time, pinned per mode
    fraction: dict[str, float] = field(default_factory=lambda: {"split": 0.0, "paired": 0.0})
    alpha_spent: dict[str, float] = field(default_factory=lambda: {"split": 0.0, "paired": 0.0})
    looks: list[dict[str, Any]] = field(default_factory=list)
    created: float = 0.0


class StateFiles:
    """One JSON file per rollout, replaced atomically; one lock serialises looks across threads
    and processes, so two engines' looks at the same rollout never both spend the same alpha."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._thread_lock = threading.Lock()

    def path(self, rollout_id: str) -> Path:
        return self.folder / f"{rollout_id}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.folder / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self, rollout_id: str) -> JudgeState | None:
        path = self.path(rollout_id)
        try:
            return JudgeState(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as err:
            # Starting over would spend the rollout's alpha a second time: refuse instead.
            raise BrokenStateFile(f"unreadable judge state {path} ({err}); fix or delete it") from err

    def save(self, state: JudgeState) -> None:
        state.looks = state.looks[-MAX_LOOKS:]
        write_json_atomic(self.path(state.rollout_id), asdict(state), indent=1)


class JudgeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # The controller's name for the same thing: dashboards and rules read either.
        self.verdicts = Counter(
            "mlops_canary_verdicts_total", "Judge looks by verdict", ["verdict"], registry=r
        )
        self.unavailable = Counter(
            "mlops_judge_api_unavailable_total",
            "Looks answered 503: the store or the registry unreachable",
            ["what"],
            registry=r,
        )


@dataclass(frozen=True)
class Look:
    """One look asked for: the validated query."""

    rollout_id: str
    candidate: str
    champion: str | None
    since: datetime | None
    mode: Mode
    by: By


class JudgeService:
    """The looks themselves, without HTTP: resolve and pin the rollout, read, judge, persist."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        registry: Registry | None = None,
        part: Part = importlib.import_module,
        metrics: JudgeMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.config = judge_config(settings)  # the controller's: same settings, same judge
        self.decide = part(JUDGE).judge
        self.registry = registry or MlflowRegistry(settings)
        self.files = StateFiles(settings.home / "canary" / "judge-api")
        self.metrics = metrics or JudgeMetrics()
        self._store = store

    @property
    def store(self) -> Store:
        # Made on first use, and again after a failure: a store down at start must not stop the
        # server from starting (an engine then sees 503s, not connection errors).
        if self._store is None:
            try:
                self._store = Store(self.settings.resolved_store_url)
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                raise Unavailable("prediction store", exc) from exc
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()

    def state(self, rollout_id: str) -> JudgeState | None:
        return self.files.load(rollout_id)

    def look(self, q: Look) -> dict[str, Any]:
        with self.files.locked():
            state = self.files.load(q.rollout_id) or self._start(q)
            _check_pinned(state, q)
            since = q.since or parse_time(state.since.get(q.mode)) or self._first_row(q, state)
            if since is None:
                reason = f"no {q.mode} predictions of v{state.candidate} in the store yet"
                judgement = Judgement("INCONCLUSIVE", (), 0, state.fraction[q.mode], 0.0, reason)
            else:
                state.since.setdefault(q.mode, since.isoformat())
                judgement = self._judge(state, q.mode, since)
            previous = state.fraction[q.mode]
            state.fraction[q.mode] = judgement.fraction
            state.alpha_spent[q.mode] = state.alpha_spent[q.mode] + judgement.alpha_spent
            state.looks.append(
                {
                    "t": round(time.time(), 3),
                    "mode": q.mode,
                    "verdict": judgement.verdict,
                    "samples": judgement.canary_samples,
                    "fraction": round(judgement.fraction, 6),
                    "alpha": judgement.alpha_spent,
                    "reason": judgement.reason[:300],
                }
            )
            self.files.save(state)
        self.metrics.verdicts.labels(judgement.verdict).inc()
        return _answer(state, q.mode, judgement, previous, self.config.alpha)

    def _start(self, q: Look) -> JudgeState:
        """A rollout's first look: pin the champion and the expectation (one registry read)."""
        try:
            champion = q.champion or self.registry.champion()
            if champion is None:
                raise Invalid(["query", "champion"], "no @champion in the registry: pass champion=")
            try:
                raw = self.registry.expectation(q.candidate)
            except LookupError:
                name = self.settings.model_name
                raise Invalid(
                    ["query", "candidate"], f"no version {q.candidate} of {name} in the registry"
                ) from None
        except (Invalid, Conflict):
            raise
        except Exception as exc:  # MLflow's client raises many kinds while its server is down
            raise Unavailable("registry", exc) from exc
        if q.by == "version" and champion == q.candidate:
            raise Invalid(["query", "champion"], "by=version needs the champion to differ from the candidate")
        expectation, source = _expectation(raw, q.candidate)
        return JudgeState(
            q.rollout_id, q.candidate, champion, q.by, expectation, source, created=round(time.time(), 3)
        )

    def _first_row(self, q: Look, state: JudgeState) -> datetime | None:
        """The candidate's first prediction in this mode: where its rollout's evidence starts."""
        mirrored = predictions.c.request_id.like(f"%{SHADOW_SUFFIX}")
        query = sa.select(sa.func.min(predictions.c.ts)).where(
            predictions.c.model_version == state.candidate, mirrored if q.mode == "paired" else ~mirrored
        )
        if state.by == "variant":
            query = query.where(predictions.c.variant == "canary")
        try:
            with self.store.engine.connect() as conn:
                first = conn.execute(query).scalar_one_or_none()
        except sa.exc.SQLAlchemyError as exc:
            raise Unavailable("prediction store", exc) from exc
        if first is None:
            return None
        return first.replace(tzinfo=UTC) if first.tzinfo is None else first.astimezone(UTC)

    def _judge(self, state: JudgeState, mode: str, since: datetime) -> Judgement:
        try:
            frame = self.store.scores_frame(since)
        except sa.exc.SQLAlchemyError as exc:
            raise Unavailable("prediction store", exc) from exc
        if state.by == "version":
            frame = _arms_by_version(frame, state.candidate, state.champion)
        r = Rollout(
            rollout_id=state.rollout_id,
            candidate=state.candidate,
            champion=state.champion,
            expectation=state.expectation,
            fraction=dict(state.fraction),
        )
        # No router counters here: the store's rows are every request this judge can see.
        judgement = judge_frame(frame, r, {}, self.config, shadow=mode == "paired", decide=self.decide)
        if judgement.verdict == "PASS" and judgement.canary_samples < self.config.min_samples:
            # An engine promotes on PASS: whoever wrote the judge, too little data is not one.
            reason = (
                f"PASS on {judgement.canary_samples} canary samples (< {self.config.min_samples}) ignored"
            )
            return Judgement(
                "INCONCLUSIVE", judgement.checks, judgement.canary_samples, r.fraction[mode], 0.0, reason
            )
        return judgement


def _check_pinned(state: JudgeState, q: Look) -> None:
    """A look must ask about the rollout its first look pinned: else its fraction means nothing."""
    asked = {"candidate": q.candidate, "champion": q.champion, "by": q.by}
    for name, value in asked.items():
        pinned = getattr(state, name)
        if value is not None and value != pinned:
            raise Conflict(
                f"rollout {state.rollout_id} judges {name}={pinned}, not {value}: use a new rollout id"
            )
    pinned_since = parse_time(state.since.get(q.mode))
    if q.since is not None and pinned_since is not None and q.since != pinned_since:
        raise Conflict(
            f"rollout {state.rollout_id} judges {q.mode} since {pinned_since.isoformat()}, "
            f"not {q.since.isoformat()}: use a new rollout id for another window"
        )


def _expectation(raw: str | None, candidate: str) -> tuple[str | None, str]:
    if raw is None:
        return None, f"none: v{candidate} has no {EXPECTATION_TAG} tag, so no difference is expected"
    try:
        Expectation.from_json(raw)
    except (ValueError, TypeError) as exc:
        # Expecting no difference can only fail a good candidate, never pass a bad one.
        return None, f"none: v{candidate}'s {EXPECTATION_TAG} tag is unreadable ({_short(exc)})"
    return raw, f"the {EXPECTATION_TAG} tag of v{candidate}"


def _arms_by_version(frame: pd.DataFrame, candidate: str, champion: str) -> pd.DataFrame:
    """Relabel the rows' variant from their version: the candidate's are the canary's."""
    if frame.empty:
        return frame
    version = frame["model_version"].astype(str)
    arm = np.where(version == candidate, "canary", np.where(version == champion, "stable", "other"))
    return frame.assign(variant=arm)


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _answer(state: JudgeState, mode: str, j: Judgement, previous: float, alpha: float) -> dict[str, Any]:
    body = {
        "rollout_id": state.rollout_id,
        "verdict": j.verdict,
        "reason": j.reason,
        "checks": [asdict(c) for c in j.checks],
        "canary_samples": j.canary_samples,
        "alpha_spent": j.alpha_spent,  # by this look
        "alpha_spent_total": state.alpha_spent[mode],  # by every look of this mode so far
        "alpha": alpha,  # the family-wise budget of the mode (spent in full at fraction 1)
        "fraction": j.fraction,
        "previous_fraction": previous,
        "look": len(state.looks),
        "candidate": state.candidate,
        "champion": state.champion,
        "mode": mode,
        "by": state.by,
        "since": state.since.get(mode),
        "expectation": json.loads(state.expectation) if state.expectation else None,
        "expectation_source": state.expectation_source,
    }
    return jsonable(body)


def jsonable(value: Any) -> Any:
    """JSON has no infinity: a boundary of +inf (a look with no alpha) becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return jsonable(value.item())
    return value


def _short(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", f"{exc.__class__.__name__}: {exc}")[:200]
