"""The prediction, label and audit store (SQLAlchemy Core; SQLite in WAL mode by default, any URL).

    python -c "from mlops_lab.store.db import Store; print(Store('sqlite:///var/store.db').count_predictions())"

Tables:
  predictions  request_id, ts, variant, model_version, features (JSON), score, decision, latency_ms
  labels       request_id, ts (arrival), label
  audit        ts, actor, action, details (JSON): every alias move and rollout step, with who and why
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from itertools import chain
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from mlops_lab.store.block import LOGGED, EncodedJSON, InsertPlan, PredictionBlock, bind

if TYPE_CHECKING:  # pandas is imported by the methods that build frames: the model server never does
    import pandas as pd

metadata = sa.MetaData()

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("variant", sa.String(16), nullable=False, index=True),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("decision", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
)

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("label", sa.Integer, nullable=False),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
)


def dump_json(value: Any) -> str:
    """Every engine's JSON serializer: json.dumps, except for text already encoded."""
    return str.__str__(value) if type(value) is EncodedJSON else json.dumps(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # WAL lets the monitor read while servers write; busy_timeout rides out short write locks.
        engine = sa.create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, json_serializer=dump_json
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        # timestamptz values come back in the *session's* time zone, which is the server's default
        # unless set. Pin it to UTC, so readers that compare naive UTC times (registry.champion_at,
        # the label clock) are right whatever zone the server runs in (tests/system/test_store.py).
        options = " ".join(filter(None, [str(parsed.query.get("options") or ""), "-c timezone=UTC"]))
        return sa.create_engine(
            parsed.update_query_dict({"options": options}), pool_pre_ping=True, json_serializer=dump_json
        )
    return sa.create_engine(url, pool_pre_ping=True, json_serializer=dump_json)


class Store:
    """Thin, typed access to the three tables. Creates them on first use (idempotent)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        metadata.create_all(self.engine)

    def insert_predictions(self, rows: Sequence[Mapping[str, Any] | PredictionBlock]) -> None:
        """Insert rows (mappings with the LOGGED keys) and blocks of rows in one transaction and
        one statement; a request_id already stored is skipped (a client retry is idempotent).

        The statement is compiled once for the engine's dialect and each value goes through its
        column type's bind processor, as `conn.execute(insert, rows)` would do, but a block's
        shared values are processed once and its features are encoded column by column: that
        per-row work was most of the cost of logging a batch (measured with 1,000 rows).
        SQLite gets every row in the VALUES list of one INSERT, other databases an executemany
        (psycopg pipelines it): an executemany on SQLite steps once per row, each step handing
        the GIL to the server's event loop and waiting to get it back (a 500-row flush took
        3.5x as long next to a busy thread, measured on one core)."""
        if not rows:
            return
        plan = self._insert_plan
        sql, positions = plan.sql, plan.positions
        try:
            values = bind(rows, plan)
            params: list[Any]
            if positions is None:  # a named paramstyle (psycopg's %(name)s)
                params = [dict(zip(LOGGED, v, strict=True)) for v in values]
            elif positions == list(LOGGED):  # SQLite's "?", in the order of LOGGED
                params = values
            else:
                order = [LOGGED.index(name) for name in positions]
                params = [tuple(v[i] for i in order) for v in values]
        except Exception as exc:  # a row without a column, a value its type refuses: not transient
            raise sa_exc.StatementError(f"a prediction row cannot be bound: {exc!r}", sql, None, exc) from exc
        with self.engine.begin() as conn:
            if plan.rows_per_statement is None:
                conn.exec_driver_sql(sql, params)
                return
            for start in range(0, len(params), plan.rows_per_statement):
                part = params[start : start + plan.rows_per_statement]
                conn.exec_driver_sql(multi_row_sql(sql, len(part)), tuple(chain.from_iterable(part)))

    @cached_property
    def _insert_plan(self) -> InsertPlan:
        dialect = self.engine.dialect
        if dialect.name in ("sqlite", "postgresql"):
            insert = sqlite_insert if dialect.name == "sqlite" else pg_insert
            statement: Any = insert(predictions).on_conflict_do_nothing(index_elements=["request_id"])
        else:
            statement = predictions.insert()
        compiled = statement.compile(dialect=dialect, column_keys=list(LOGGED))
        positions = list(compiled.positiontup) if compiled.positional and compiled.positiontup else None
        processors = [predictions.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in LOGGED]
        encoded = processors[LOGGED.index("features")]
        probe = '{"probe": 1}'
        if encoded is not None and type(given := encoded(EncodedJSON(probe))) is str and given == probe:
            encoded = None  # this dialect stores JSON as the text itself (SQLite): no call per row
        per_statement = None
        if dialect.name == "sqlite" and dialect.paramstyle == "qmark":
            with self.engine.connect() as conn:  # how many "?" one statement may have
                getlimit = getattr(conn.connection.dbapi_connection, "getlimit", None)
                limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit else 999
            per_statement = max(1, limit // len(LOGGED))
        return InsertPlan(compiled.string, positions, processors, encoded, per_statement)

    def insert_labels(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Store labels; returns how many were new or corrected. A label delivered again is
        ignored; one delivered again with another value and a later `ts` replaces the stored one
        (a chargeback reversed, a purchase disputed weeks later: the later message is what is
        known now, as monitoring.performance.latest_labels reads a window's labels)."""
        if not rows:
            return 0
        with self.engine.begin() as conn:
            have = {
                r.request_id: r
                for r in conn.execute(
                    sa.select(labels.c.request_id, labels.c.label, labels.c.ts).where(
                        labels.c.request_id.in_([r["request_id"] for r in rows])
                    )
                )
            }
            fresh: dict[str, Mapping[str, Any]] = {}  # a repeat within this call is a re-delivery
            corrected = []
            for row in rows:
                old = have.get(row["request_id"])
                if old is None:
                    fresh.setdefault(row["request_id"], row)
                elif int(row["label"]) != int(old.label) and _utc(row["ts"]) > _utc(old.ts):
                    corrected.append(row)
            if fresh:
                conn.execute(labels.insert(), list(fresh.values()))
            for row in corrected:
                conn.execute(
                    labels.update()
                    .where(labels.c.request_id == row["request_id"])
                    .values(label=int(row["label"]), ts=row["ts"])
                )
        return len(fresh) + len(corrected)

    def audit(self, actor: str, action: str, **details: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                audit.insert(),
                {"ts": utcnow(), "actor": actor, "action": action, "details": _jsonable(details)},
            )

    def audit_log(self, action: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(audit).order_by(audit.c.id)
        if action:
            query = query.where(audit.c.action == action)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def count_predictions(self, variant: str | None = None, after_id: int | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(predictions)
        if variant:
            query = query.where(predictions.c.variant == variant)
        if after_id is not None:
            query = query.where(predictions.c.id > after_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def prediction_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(predictions.c.request_id))}

    def predictions_frame(
        self,
        since: datetime | None = None,
        variant: str | None = None,
        *,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Predictions with their features expanded into columns (for monitoring and labels).

        Oldest first. `after_id` and `limit` read the log in id order, a page at a time (the
        drift monitor's windows: ids only grow, so a window never overlaps the previous one).
        """
        query = sa.select(predictions).order_by(predictions.c.id)
        if since is not None:
            query = query.where(predictions.c.ts >= since)
        if variant:
            query = query.where(predictions.c.variant == variant)
        if after_id is not None:
            query = query.where(predictions.c.id > after_id)
        if limit is not None:
            query = query.limit(limit)
        import pandas as pd

        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if not rows:
            return pd.DataFrame()
        frame = pd.DataFrame(rows)
        feats = pd.DataFrame(list(frame.pop("features")))
        return pd.concat([frame, feats], axis=1)

    def iter_predictions(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        variant: str | None = None,
        *,
        page_rows: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """The predictions with since <= ts < until (half-open; None: unbounded), in id order,
        as a stream: id, request_id, ts (aware, UTC), variant, model_version, score, decision,
        latency_ms (the features are left out).

        Read `page_rows` at a time by keyset pagination (id > the last id seen), each page its
        own short query: the whole log is never in memory, and no read transaction stays open
        while the caller works on a page (a long one would pin SQLite's WAL or Postgres's
        vacuum). The first page starts at the window's first id, found through the ts index,
        rather than after every older row. Rows logged while the stream is read are included
        when they fall in the window. A naive since/until is taken as UTC.
        """
        if page_rows < 1:
            raise ValueError(f"page_rows must be at least 1, got {page_rows}")
        cols = [
            predictions.c[c]
            for c in ("id", "request_id", "ts", "variant", "model_version", "score", "decision", "latency_ms")
        ]
        where = []
        # SQLite keeps no time zone: every ts is stored as its UTC wall clock, so bounds must be too.
        if since is not None:
            where.append(predictions.c.ts >= _utc(since))
        if until is not None:
            where.append(predictions.c.ts < _utc(until))
        if variant:
            where.append(predictions.c.variant == variant)
        with self.engine.connect() as conn:
            first = conn.execute(sa.select(sa.func.min(predictions.c.id)).where(*where)).scalar_one_or_none()
        if first is None:
            return
        after = int(first) - 1
        while True:
            query = sa.select(*cols).where(*where, predictions.c.id > after).order_by(predictions.c.id)
            with self.engine.connect() as conn:
                page = [dict(r._mapping) for r in conn.execute(query.limit(page_rows))]
            for row in page:
                row["ts"] = _utc(row["ts"])
                yield row
            if len(page) < page_rows:
                return
            after = page[-1]["id"]

    def scores_frame(self, since: datetime, variant: str | None = None) -> pd.DataFrame:
        """What the canary judge reads: request_id, variant, model_version, score, decision,
        latency_ms of the predictions since `since` (features left out: they are not needed)."""
        cols = [
            predictions.c[c]
            for c in ("request_id", "variant", "model_version", "score", "decision", "latency_ms")
        ]
        import pandas as pd

        query = sa.select(*cols).where(predictions.c.ts >= since).order_by(predictions.c.id)
        if variant:
            query = query.where(predictions.c.variant == variant)
        with self.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(query)]
        return pd.DataFrame(rows, columns=[c.name for c in cols])

    def prediction_id_at(self, after_id: int, offset: int, variant: str | None = None) -> int | None:
        """The id of the `offset`-th prediction (0-based) after `after_id`, or None when there are fewer."""
        query = sa.select(predictions.c.id).where(predictions.c.id > after_id)
        if variant:
            query = query.where(predictions.c.variant == variant)
        query = query.order_by(predictions.c.id).offset(offset).limit(1)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return None if found is None else int(found)

    def labelled_predictions(self, upto_id: int, rows: int, variant: str | None = None) -> pd.DataFrame:
        """Of the newest `rows` predictions with id <= upto_id, those whose label has arrived:
        request_id, score, decision, label (realized performance over a trailing span)."""
        import pandas as pd

        recent = sa.select(predictions.c.request_id, predictions.c.score, predictions.c.decision).where(
            predictions.c.id <= upto_id
        )
        if variant:
            recent = recent.where(predictions.c.variant == variant)
        span = recent.order_by(predictions.c.id.desc()).limit(rows).subquery()
        query = sa.select(span.c.request_id, span.c.score, span.c.decision, labels.c.label).join(
            labels, labels.c.request_id == span.c.request_id
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(
                [dict(r._mapping) for r in conn.execute(query)],
                columns=["request_id", "score", "decision", "label"],
            )

    def labels_frame(self) -> pd.DataFrame:
        import pandas as pd

        with self.engine.connect() as conn:
            return pd.DataFrame(
                [dict(r._mapping) for r in conn.execute(sa.select(labels))],
                columns=["request_id", "ts", "label"],
            )

    def unlabeled_predictions(self) -> pd.DataFrame:
        frame = self.predictions_frame()
        if frame.empty:
            return frame
        have = set(self.labels_frame()["request_id"])
        return frame[~frame["request_id"].isin(have)].reset_index(drop=True)

    def dispose(self) -> None:
        self.engine.dispose()


@lru_cache(maxsize=32)  # a chunk's size: flush_rows, or what a flush finds queued
def multi_row_sql(sql: str, rows: int) -> str:
    """`sql` (an INSERT of one row, "?" placeholders) inserting `rows` rows: its VALUES group repeated."""
    start = sql.index("VALUES (") + len("VALUES ")
    end = sql.index(")", start) + 1
    return sql[:start] + ", ".join([sql[start:end]] * rows) + sql[end:]


def _utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC (SQLite gives back what it stored)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _jsonable(value: Any) -> Any:
    # NaN and infinities become null: JSON has no such values and Postgres refuses them.
    return json.loads(json.dumps(value, default=str), parse_constant=lambda _token: None)
