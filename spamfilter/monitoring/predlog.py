"""The prediction log: what the API served, and the true labels fed back later.

One SQL schema (SQLAlchemy Core), written by the API's background writer and read by the
monitor. A SQLite file by default, PostgreSQL by URL (`PREDICTION_LOG_URL`).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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
    type_coerce,
)

from spamfilter.labels import LABELS

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


class _CorruptRowError(ValueError):
    pass


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise _CorruptRowError(reason)


def parse_row(row: Mapping[str, Any]) -> PredictionRecord | str:
    """A validated prediction record, or the reason the row is corrupt."""
    try:
        created = row["created_at"]
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        _require(isinstance(created, datetime), "created_at is not a timestamp")
        probability = float(row["spam_probability"])
        _require(math.isfinite(probability) and 0.0 <= probability <= 1.0, "spam_probability outside [0, 1]")
        label = str(row["label"])
        _require(label in LABELS, "label is not ham or spam")
        length = int(row["text_length"])
        _require(length >= 0, "negative text_length")
        text = row.get("text")
        _require(text is None or isinstance(text, str), "text is not a string")
    except _CorruptRowError as exc:
        return str(exc)
    except (KeyError, TypeError, ValueError):
        return "unreadable value"
    return PredictionRecord(
        id=str(row["id"]),
        created_at=created,
        model_version=str(row.get("model_version", "")),
        text_length=length,
        text_sha256=str(row.get("text_sha256", "")),
        spam_probability=probability,
        label=label,
        text=text or None,
    )


@dataclass
class LogRead:
    """Predictions read from the log, oldest first, and the corrupt rows skipped (reason → count)."""

    records: list[PredictionRecord] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def read_predictions(engine: Engine, last: int | None = None, since: datetime | None = None) -> LogRead:
    """The most recent predictions (newest `last`, and/or those at or after `since`), oldest first.

    Columns are read untyped and each row validated by `parse_row`, so one corrupt row (a bad
    timestamp, a probability of "abc") is skipped and counted instead of failing the whole read."""
    query = select(*[type_coerce(column, String).label(column.name) for column in predictions.columns]).order_by(
        predictions.c.created_at.desc()
    )
    if since is not None:
        # The log stores UTC; SQLite keeps the wall time only, so compare in UTC.
        query = query.where(predictions.c.created_at >= (since.astimezone(UTC) if since.tzinfo else since))
    if last is not None:
        query = query.limit(last)
    with engine.connect() as connection:
        raw_rows = [dict(row) for row in connection.execute(query).mappings()]
    read = LogRead()
    for raw in reversed(raw_rows):
        parsed = parse_row(raw)
        if isinstance(parsed, str):
            read.skipped[parsed] = read.skipped.get(parsed, 0) + 1
        else:
            read.records.append(parsed)
    return read


def read_feedback(engine: Engine, prediction_ids: Iterable[str] | None = None) -> dict[str, str]:
    """prediction_id → the latest true label given for it."""
    query = select(feedback.c.prediction_id, feedback.c.true_label).order_by(feedback.c.id)
    if prediction_ids is not None:
        query = query.where(feedback.c.prediction_id.in_(list(prediction_ids)))
    with engine.connect() as connection:
        return {row.prediction_id: row.true_label for row in connection.execute(query)}
