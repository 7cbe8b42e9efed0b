"""The prediction log: what the API served on each channel, and the true labels fed back later.

One SQL schema (SQLAlchemy Core), written by the API's background writer and read by the
monitor. A SQLite file by default, PostgreSQL by URL (`PREDICTION_LOG_URL`).

    predictions       one row per answer; `channel` names the model that gave it ('sms' or 'email').
                      Always: time, model version, text length, sha256, P(spam), label. `text` only
                      with LOG_TEXT (an e-mail's is the raw message). E-mail rows add the message's
                      size in bytes, its sender's domain and the domains its links point to.
    feedback          the true label of one prediction, by its id (the API's POST /feedback)
    message_feedback  the true label of a message, by channel and sha256: spamd's TELL carries no
                      prediction id, so the label applies to every logged prediction of that message

`ensure_schema` brings a log written by an earlier version up to this one in place: it adds the
columns that log lacks (its rows, written before channels existed, are SMS) and loses no row. It is
idempotent and safe when several processes run it at once; the writer and the monitor run it before
they use a log.
"""

from __future__ import annotations

import hashlib
import logging
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
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    inspect,
    select,
    type_coerce,
)
from sqlalchemy.exc import DBAPIError

from spamfilter.config import CHANNELS
from spamfilter.labels import LABELS

log = logging.getLogger(__name__)

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
    # Added with the e-mail channel (see ensure_schema). A row that names no channel is an SMS
    # prediction: every row written before channels existed, and any a previous version still writes.
    Column("channel", String(16), nullable=False, server_default="sms"),
    Column("size_bytes", Integer, nullable=True),  # e-mail: bytes of the raw message
    Column("sender_domain", String(255), nullable=True),  # e-mail: the From address's domain ("" if none)
    Column("url_domains", Text, nullable=True),  # e-mail: link domains, space-separated, in order ("" if none)
    Index("ix_predictions_channel_created_at", "channel", "created_at"),  # the monitor reads one channel
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prediction_id", String(36), ForeignKey("predictions.id"), nullable=False, index=True),
    Column("true_label", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("channel", String(16), nullable=False, server_default="sms"),  # the prediction's channel
)

message_feedback = Table(
    "message_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("text_sha256", String(64), nullable=False),  # as `predictions.text_sha256` of the same message
    Column("true_label", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_message_feedback_channel_text_sha256", "channel", "text_sha256"),
)

# Columns added since the log's first schema, with the SQL type that adds each one to an existing table
# (the same DDL `create_all` writes for a new table). Plain SQL, the same on SQLite and PostgreSQL.
_ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "predictions": (
        ("channel", "VARCHAR(16) NOT NULL DEFAULT 'sms'"),
        ("size_bytes", "INTEGER"),
        ("sender_domain", "VARCHAR(255)"),
        ("url_domains", "TEXT"),
    ),
    "feedback": (("channel", "VARCHAR(16) NOT NULL DEFAULT 'sms'"),),
}


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
    channel: str = "sms"
    # E-mail only (None on SMS rows): the raw message's size, the sender's domain, the links' domains.
    size_bytes: int | None = None
    sender_domain: str | None = None
    url_domains: tuple[str, ...] | None = None


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
    """An engine for the log, with the tables created if missing and an older log brought up to date."""
    engine = create_engine(url, future=True)
    ensure_schema(engine)
    return engine


def _column_names(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """`create_all` checks, then creates: another process may create a table in between, so a failure is
    retried (the next check finds that table) until every table exists."""
    for attempt in range(1, attempts + 1):
        try:
            metadata.create_all(engine)
            return
        except DBAPIError:
            if set(inspect(engine).get_table_names()) >= set(metadata.tables):
                return
            if attempt == attempts:
                raise


def ensure_schema(engine: Engine) -> list[str]:
    """Create the missing tables and add the columns and indexes an older log lacks; returns what was added.

    Each column is one `ALTER TABLE ... ADD COLUMN` in its own transaction, so nothing is copied and no row
    is lost; a NOT NULL column comes with its default, which old rows take. Idempotent: what exists is left
    alone. Several processes may run it at once (the API's workers): when another one created a table or
    added a column or an index first, the failed statement is checked against the database and passes."""
    _create_tables(engine)
    added: list[str] = []
    for table, columns in _ADDED_COLUMNS.items():
        for column, ddl in columns:
            if column in _column_names(engine, table):
                continue
            try:
                with engine.begin() as connection:
                    connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
            except DBAPIError:
                if column not in _column_names(engine, table):
                    raise
                continue  # another process added it meanwhile
            added.append(f"{table}.{column}")
    for table_object in metadata.sorted_tables:
        for index in table_object.indexes:
            existing = {found["name"] for found in inspect(engine).get_indexes(table_object.name)}
            if index.name in existing:
                continue
            try:
                index.create(engine)
            except DBAPIError:
                if index.name not in {found["name"] for found in inspect(engine).get_indexes(table_object.name)}:
                    raise
                continue
            added.append(f"index {index.name}")
    if added:
        log.info("prediction log: brought up to date, added %s", ", ".join(added))
    return added


_COLUMNS = (
    "id",
    "created_at",
    "model_version",
    "text_length",
    "text_sha256",
    "spam_probability",
    "label",
    "text",
    "channel",
    "size_bytes",
    "sender_domain",
    "url_domains",
)
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
                    # SQLite keeps the wall time only: store it in UTC, as the portable path does.
                    (r.created_at.astimezone(UTC) if r.created_at.tzinfo else r.created_at).strftime(_SQLITE_DATETIME),
                    r.model_version,
                    r.text_length,
                    r.text_sha256,
                    r.spam_probability,
                    r.label,
                    r.text,
                    r.channel,
                    r.size_bytes,
                    r.sender_domain,
                    _joined(r.url_domains),
                )
                for r in records
            ]
            connection.exec_driver_sql(_SQLITE_INSERT, rows)
        else:
            connection.execute(
                insert(predictions),
                [{**record.__dict__, "url_domains": _joined(record.url_domains)} for record in records],
            )


def _joined(domains: tuple[str, ...] | None) -> str | None:
    # Host names hold no spaces, so one space separates them unambiguously.
    return None if domains is None else " ".join(domains)


def insert_feedback(
    engine: Engine, prediction_id: str, true_label: str, at: datetime | None = None, channel: str = "sms"
) -> None:
    """The true label of one logged prediction (of `channel`)."""
    with engine.begin() as connection:
        connection.execute(
            insert(feedback).values(
                prediction_id=prediction_id,
                true_label=true_label,
                created_at=at or datetime.now(UTC),
                channel=channel,
            )
        )


def learn_message(engine: Engine, channel: str, text_sha256: str, true_label: str, at: datetime | None = None) -> bool:
    """The true label of every prediction of one message (by its sha256) on `channel`; False, and nothing
    written, when that message's latest label is already `true_label`."""
    latest = (
        select(message_feedback.c.true_label)
        .where(message_feedback.c.channel == channel, message_feedback.c.text_sha256 == text_sha256)
        .order_by(message_feedback.c.id.desc())
        .limit(1)
    )
    with engine.begin() as connection:
        if connection.execute(latest).scalar() == true_label:
            return False
        connection.execute(
            insert(message_feedback).values(
                channel=channel, text_sha256=text_sha256, true_label=true_label, created_at=at or datetime.now(UTC)
            )
        )
    return True


def forget_message(engine: Engine, channel: str, text_sha256: str) -> bool:
    """Withdraw the labels given to one message on `channel`; False when it had none."""
    with engine.begin() as connection:
        result = connection.execute(
            delete(message_feedback).where(
                message_feedback.c.channel == channel, message_feedback.c.text_sha256 == text_sha256
            )
        )
    return bool(result.rowcount)


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
        channel = str(row.get("channel") or "sms")
        _require(channel in CHANNELS, f"channel is not one of {', '.join(CHANNELS)}")
        size = row.get("size_bytes")
        size_bytes = None if size is None else int(size)
        _require(size_bytes is None or size_bytes >= 0, "negative size_bytes")
        domains = row.get("url_domains")
        url_domains = None if domains is None else tuple(str(domains).split())
        sender = row.get("sender_domain")
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
        channel=channel,
        size_bytes=size_bytes,
        sender_domain=None if sender is None else str(sender),
        url_domains=url_domains,
    )


@dataclass
class LogRead:
    """Predictions read from the log, oldest first, and the corrupt rows skipped (reason → count)."""

    records: list[PredictionRecord] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def read_predictions(
    engine: Engine, last: int | None = None, since: datetime | None = None, channel: str | None = None
) -> LogRead:
    """The most recent predictions (newest `last`, and/or those at or after `since`; of one `channel`, or
    of all), oldest first.

    Columns are read untyped and each row validated by `parse_row`, so one corrupt row (a bad
    timestamp, a probability of "abc") is skipped and counted instead of failing the whole read."""
    query = select(*[type_coerce(column, String).label(column.name) for column in predictions.columns]).order_by(
        predictions.c.created_at.desc()
    )
    if since is not None:
        # The log stores UTC; SQLite keeps the wall time only, so compare in UTC.
        query = query.where(predictions.c.created_at >= (since.astimezone(UTC) if since.tzinfo else since))
    if channel is not None:
        query = query.where(predictions.c.channel == channel)
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
    """prediction_id → the latest true label given for it: by its id (`feedback`), or to its message on its
    channel (`message_feedback`), whichever came later; by id when both came at the same time."""
    wanted = None if prediction_ids is None else list(prediction_ids)
    by_id = select(feedback.c.prediction_id, feedback.c.true_label, feedback.c.created_at).order_by(feedback.c.id)
    by_message = (
        select(predictions.c.id.label("prediction_id"), message_feedback.c.true_label, message_feedback.c.created_at)
        .join(
            message_feedback,
            (message_feedback.c.channel == predictions.c.channel)
            & (message_feedback.c.text_sha256 == predictions.c.text_sha256),
        )
        .order_by(message_feedback.c.id)
    )
    if wanted is not None:
        by_id = by_id.where(feedback.c.prediction_id.in_(wanted))
        by_message = by_message.where(predictions.c.id.in_(wanted))
    latest: dict[str, tuple[Any, str]] = {}
    with engine.connect() as connection:
        for row in connection.execute(by_message):
            latest[row.prediction_id] = (row.created_at, row.true_label)
        message_labels = dict(latest)
        for row in connection.execute(by_id):
            given = message_labels.get(row.prediction_id)
            if given is None or row.created_at >= given[0]:
                latest[row.prediction_id] = (row.created_at, row.true_label)
    return {prediction_id: label for prediction_id, (_, label) in latest.items()}
