"""The prediction log: what the API served, and the true labels fed back later.

One SQL schema (SQLAlchemy Core), written by the API's background writer and read by the
monitor. A SQLite file by default, PostgreSQL by URL (`PREDICTION_LOG_URL`).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    select,
)

metadata = MetaData()

predictions = Table(
    "predictions",
    metadata,
    Column("id", String(36), primary_key=True),  # `new_prediction_id()`, returned by the API as `prediction_id`
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_version", String(64), nullable=False),
    Column("text_length", Integer, nullable=False),
    Column("text_sha256", String(64), nullable=False),
    Column("spam_probability", Float, nullable=False),
    Column("label", String(8), nullable=False),
    Column("text", Text, nullable=True),  # only when LOG_TEXT=true
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prediction_id", String(36), ForeignKey("predictions.id"), nullable=False, index=True),
    Column("true_label", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class PredictionRecord:
    id: str
    created_at: datetime
    model_version: str
    text_length: int
    text_sha256: str
    spam_probability: float
    label: str
    text: str | None = None


def new_prediction_id() -> str:
    """A time-ordered UUID (version 7 layout: 48-bit Unix milliseconds, then random bits).

    Ids that grow with time append to the primary-key index; random ones (version 4) land all
    over it, which made each logged row cost about three times the CPU once the log held 100k rows.
    """
    millis = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (
        (millis & (1 << 48) - 1) << 80
        | 0x7 << 76  # version 7
        | (random_bits >> 68) << 64  # 12 random bits
        | 0b10 << 62  # RFC 4122 variant
        | random_bits & (1 << 62) - 1  # 62 random bits
    )
    return str(uuid.UUID(int=value))


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def connect(url: str) -> Engine:
    """An engine for the log, with the tables created if missing."""
    engine = create_engine(url, future=True)
    metadata.create_all(engine)
    return engine


_COLUMNS = ("id", "created_at", "model_version", "text_length", "text_sha256", "spam_probability", "label", "text")
_SQLITE_INSERT = f"INSERT INTO predictions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
# SQLAlchemy's own storage format for DateTime on SQLite, so rows read back the same either way.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def insert_predictions(engine: Engine, records: Sequence[PredictionRecord]) -> None:
    """Append predictions in one transaction.

    On SQLite the rows go straight to the driver's executemany: SQLAlchemy's per-row parameter
    processing costs ~10 µs a row in the serving process, where it competes with requests for the
    GIL; the driver binds them in C. Other databases take SQLAlchemy's portable path.
    """
    if not records:
        return
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            rows = [
                (
                    r.id,
                    r.created_at.strftime(_SQLITE_DATETIME),
                    r.model_version,
                    r.text_length,
                    r.text_sha256,
                    r.spam_probability,
                    r.label,
                    r.text,
                )
                for r in records
            ]
            connection.exec_driver_sql(_SQLITE_INSERT, rows)
        else:
            connection.execute(insert(predictions), [record.__dict__ for record in records])


def insert_feedback(engine: Engine, prediction_id: str, true_label: str, at: datetime | None = None) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(feedback).values(
                prediction_id=prediction_id, true_label=true_label, created_at=at or datetime.now(UTC)
            )
        )


def read_predictions(engine: Engine, last: int | None = None, since: datetime | None = None) -> list[PredictionRecord]:
    """The most recent predictions (newest `last`, and/or since a time), oldest first."""
    query = select(predictions).order_by(predictions.c.created_at.desc())
    if since is not None:
        query = query.where(predictions.c.created_at >= since)
    if last is not None:
        query = query.limit(last)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [PredictionRecord(**dict(row)) for row in reversed(rows)]


def read_feedback(engine: Engine, prediction_ids: Iterable[str] | None = None) -> dict[str, str]:
    """prediction_id → the latest true label given for it."""
    query = select(feedback.c.prediction_id, feedback.c.true_label).order_by(feedback.c.id)
    if prediction_ids is not None:
        query = query.where(feedback.c.prediction_id.in_(list(prediction_ids)))
    with engine.connect() as connection:
        return {row.prediction_id: row.true_label for row in connection.execute(query)}
