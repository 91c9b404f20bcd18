"""The prediction, label and audit store (SQLAlchemy Core; SQLite in WAL mode by default, any URL).

    python -c "from mlops_lab.store.db import Store; print(Store('sqlite:///var/store.db').count_predictions())"

Tables:
  predictions  request_id, ts, variant, model_version, features (JSON), score, decision, latency_ms
  labels       request_id, ts (arrival), label
  audit        ts, actor, action, details (JSON): every alias move and rollout step, with who and why
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

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


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # WAL lets the monitor read while servers write; busy_timeout rides out short write locks.
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


class Store:
    """Thin, typed access to the three tables. Creates them on first use (idempotent)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        metadata.create_all(self.engine)

    def insert_predictions(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows; a request_id already stored is skipped (a client retry is idempotent)."""
        if not rows:
            return
        dialect = self.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            insert = sqlite_insert if dialect == "sqlite" else pg_insert
            statement: Any = insert(predictions).on_conflict_do_nothing(index_elements=["request_id"])
        else:
            statement = predictions.insert()
        with self.engine.begin() as conn:
            conn.execute(statement, list(rows))

    def insert_labels(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert labels, ignoring ones already stored (labels are re-delivered in practice)."""
        if not rows:
            return 0
        with self.engine.begin() as conn:
            have = {
                r[0]
                for r in conn.execute(
                    sa.select(labels.c.request_id).where(
                        labels.c.request_id.in_([r["request_id"] for r in rows])
                    )
                )
            }
            fresh = [r for r in rows if r["request_id"] not in have]
            if fresh:
                conn.execute(labels.insert(), fresh)
        return len(fresh)

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

    def count_predictions(self, variant: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(predictions)
        if variant:
            query = query.where(predictions.c.variant == variant)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def prediction_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(predictions.c.request_id))}

    def predictions_frame(self, since: datetime | None = None, variant: str | None = None) -> pd.DataFrame:
        """Predictions with their features expanded into columns (for monitoring and labels)."""
        query = sa.select(predictions).order_by(predictions.c.id)
        if since is not None:
            query = query.where(predictions.c.ts >= since)
        if variant:
            query = query.where(predictions.c.variant == variant)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if not rows:
            return pd.DataFrame()
        frame = pd.DataFrame(rows)
        feats = pd.DataFrame(list(frame.pop("features")))
        return pd.concat([frame, feats], axis=1)

    def labels_frame(self) -> pd.DataFrame:
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


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
