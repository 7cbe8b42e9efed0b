"""The prediction log per channel, on SQLite and on a real PostgreSQL: a log written by the previous version
(no channels) is brought up to the current schema in place with every row kept (old rows are SMS), by
`predlog.ensure_schema` and by the API's log writer at start-up, idempotently and with several processes at
once; e-mail rows keep their own fields; the monitor reads one channel's rows; labels given to a message (spamd's
TELL) reach every logged prediction of it."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, DateTime, Engine, Float, ForeignKey, Integer, MetaData, String, Table, Text, inspect
from sqlalchemy import create_engine as sqlalchemy_engine

from api.prediction_log import PredictionLogWriter, log_engine, open_log
from spamfilter.mail import parse_message
from spamfilter.monitoring import monitor, predlog
from spamfilter.monitoring.predlog import PredictionRecord, new_prediction_id

T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
OLD_ROWS = 40
EMAIL = (
    b"From: Prize Desk <desk@prizes.example>\r\nTo: you@example.org\r\nSubject: You won\r\n"
    b"Content-Type: text/html\r\n\r\n<p>Claim at <a href='http://claim.example/x'>here</a> or "
    b"http://www.other.example/y</p>\r\n"
)


def previous_schema() -> MetaData:
    """The log's tables as the version before channels created them (spamfilter/predlog.py at d772e2a)."""
    old = MetaData()
    Table(
        "predictions",
        old,
        Column("id", String(36), primary_key=True),
        Column("created_at", DateTime(timezone=True), nullable=False, index=True),
        Column("model_version", String(64), nullable=False),
        Column("text_length", Integer, nullable=False),
        Column("text_sha256", String(64), nullable=False),
        Column("spam_probability", Float, nullable=False),
        Column("label", String(8), nullable=False),
        Column("text", Text, nullable=True),
    )
    Table(
        "feedback",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("prediction_id", String(36), ForeignKey("predictions.id"), nullable=False, index=True),
        Column("true_label", String(8), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    return old


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def old_log(url: str) -> list[str]:
    """A log in the previous schema with OLD_ROWS predictions (every third with feedback); their ids in order."""
    old = previous_schema()
    engine = sqlalchemy_engine(url)
    try:
        old.create_all(engine)
        ids = [new_prediction_id() for _ in range(OLD_ROWS)]
        with engine.begin() as connection:
            connection.execute(
                old.tables["predictions"].insert(),
                [
                    {
                        "id": prediction_id,
                        "created_at": T0 + timedelta(seconds=i),
                        "model_version": "1",
                        "text_length": 10 + i,
                        "text_sha256": f"{i:064x}",
                        "spam_probability": i / OLD_ROWS,
                        "label": "spam" if i % 2 else "ham",
                        "text": f"old text {i}",
                    }
                    for i, prediction_id in enumerate(ids)
                ],
            )
            connection.execute(
                old.tables["feedback"].insert(),
                [
                    {"prediction_id": prediction_id, "true_label": "spam", "created_at": T0 + timedelta(hours=1)}
                    for prediction_id in ids[::3]
                ],
            )
        return ids
    finally:
        engine.dispose()


@pytest.fixture
def engine(log_url: str) -> Iterator[Engine]:
    engine = sqlalchemy_engine(log_url)
    yield engine
    engine.dispose()


def columns(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}


def email_record(at: datetime, sha256: str = "e" * 64, probability: float = 0.9) -> PredictionRecord:
    parsed = parse_message(EMAIL)
    return PredictionRecord(
        new_prediction_id(),
        at,
        "7",
        len(parsed.body_text),
        sha256,
        probability,
        "spam" if probability >= 0.5 else "ham",
        None,
        channel="email",
        size_bytes=len(EMAIL),
        sender_domain=parsed.sender_domain,
        url_domains=parsed.url_domains,
    )


# --- the migration ----------------------------------------------------------------------------------------------


def test_an_old_log_is_brought_up_to_date_in_place_and_keeps_every_row(log_url: str, engine: Engine) -> None:
    ids = old_log(log_url)
    assert "channel" not in columns(engine, "predictions")

    added = predlog.ensure_schema(engine)

    assert set(added) >= {
        "predictions.channel",
        "predictions.size_bytes",
        "predictions.sender_domain",
        "predictions.url_domains",
        "feedback.channel",
        "index ix_predictions_channel_created_at",
    }
    read = predlog.read_predictions(engine)
    assert read.skipped == {}
    assert [record.id for record in read.records] == ids
    for i, record in enumerate(read.records):
        assert (record.channel, record.text, record.text_length, record.label) == (
            "sms",
            f"old text {i}",
            10 + i,
            "spam" if i % 2 else "ham",
        )
        assert (record.size_bytes, record.sender_domain, record.url_domains) == (None, None, None)
    assert predlog.read_feedback(engine) == dict.fromkeys(ids[::3], "spam")
    with engine.connect() as connection:
        channels = {row[0] for row in connection.exec_driver_sql("SELECT DISTINCT channel FROM feedback")}
    assert channels == {"sms"}
    assert predlog.read_predictions(engine, channel="email").records == []


def test_the_migration_is_idempotent(log_url: str, engine: Engine) -> None:
    old_log(log_url)
    assert predlog.ensure_schema(engine)
    assert predlog.ensure_schema(engine) == []
    assert len(predlog.read_predictions(engine).records) == OLD_ROWS


def test_workers_migrating_the_same_log_at_once_all_succeed(log_url: str) -> None:
    # As the API's workers do when `python -m api` could not reach the log before starting them.
    old_log(log_url)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    results: list[list[str]] = []

    def migrate() -> None:
        engine = sqlalchemy_engine(log_url)
        try:
            barrier.wait()
            results.append(predlog.ensure_schema(engine))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    added = [change for result in results for change in result]
    assert added.count("predictions.channel") <= 1  # whoever came second found it there
    check = sqlalchemy_engine(log_url)
    try:
        assert predlog.ensure_schema(check) == []
        assert len(predlog.read_predictions(check).records) == OLD_ROWS
    finally:
        check.dispose()


def test_the_api_brings_an_old_log_up_to_date_at_start_up_and_writes_both_channels(log_url: str) -> None:
    ids = old_log(log_url)
    open_log(log_url).dispose()  # what `python -m api` does before starting the workers
    writer = PredictionLogWriter(log_engine(log_url), log_text=True)
    try:
        sms_id = writer.record("3", "see you at 6", 0.1, "ham")
        parsed = parse_message(EMAIL)
        email_id = writer.record_email("7", EMAIL, parsed, "f" * 64, 42, 0.95, "spam")
        assert writer.flush() == 2
        read = predlog.read_predictions(writer.engine)
        assert [record.id for record in read.records][: len(ids)] == ids
        by_id = {record.id: record for record in read.records}
        sms, email = by_id[sms_id], by_id[email_id]
        assert (sms.channel, sms.text, sms.size_bytes, sms.url_domains) == ("sms", "see you at 6", None, None)
        assert email.channel == "email" and email.text == EMAIL.decode("utf-8")
        assert (email.size_bytes, email.sender_domain, email.text_sha256, email.text_length) == (
            len(EMAIL),
            "prizes.example",
            "f" * 64,
            42,
        )
        assert email.url_domains == ("claim.example", "other.example")
        assert writer.prediction_channel(email_id) == "email" and writer.prediction_channel(sms_id) == "sms"
        assert writer.prediction_channel("no-such-id") is None
    finally:
        writer.engine.dispose()


def test_a_fresh_log_has_the_same_columns_as_a_migrated_one(tmp_path: Path, log_url: str, engine: Engine) -> None:
    old_log(log_url)
    predlog.ensure_schema(engine)
    fresh = predlog.connect(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        for table in ("predictions", "feedback", "message_feedback"):
            assert columns(engine, table) == columns(fresh, table), table
    finally:
        fresh.dispose()


# --- e-mail rows, channels and message labels -------------------------------------------------------------------


def test_email_rows_without_log_text_keep_their_fields_but_not_the_message(log_url: str) -> None:
    writer = PredictionLogWriter(log_engine(log_url), log_text=False)
    try:
        prediction_id = writer.record_email("7", EMAIL, parse_message(EMAIL), "a" * 64, 12, 0.2, "ham")
        writer.flush()
        (record,) = predlog.read_predictions(writer.engine, channel="email").records
        assert record.id == prediction_id and record.text is None
        assert record.size_bytes == len(EMAIL) and record.sender_domain == "prizes.example"
    finally:
        writer.engine.dispose()


def test_a_message_that_postgresql_could_not_store_is_stored_all_the_same(log_url: str) -> None:
    # A NUL byte in the body and a sender domain longer than its column: one such row must not fail its batch.
    raw = EMAIL.replace(b"Subject: You won", b"Subject: nul").replace(b"</p>", b"\x00</p>")
    parsed = parse_message(raw)
    long_domain = dataclasses.replace(parsed, sender_domain="x" * 300)
    writer = PredictionLogWriter(log_engine(log_url), log_text=True)
    try:
        writer.record_email("7", raw, long_domain, "b" * 64, 12, 0.2, "ham")
        assert writer.flush() == 1
        (record,) = predlog.read_predictions(writer.engine, channel="email").records
        assert record.text is not None and "\x00" not in record.text and "\ufffd</p>" in record.text
        assert record.sender_domain == "x" * 255
    finally:
        writer.engine.dispose()


def test_the_monitor_reads_only_its_channels_rows(log_url: str, engine: Engine) -> None:
    old_ids = old_log(log_url)
    predlog.ensure_schema(engine)
    emails = [email_record(T0 + timedelta(minutes=i), f"{i:064x}", 0.1 + i / 10) for i in range(5)]
    predlog.insert_predictions(engine, emails)

    sms_rows = monitor.WindowRows()
    monitor.read_log_window(log_url, None, None, sms_rows, "sms")
    email_rows = monitor.WindowRows()
    monitor.read_log_window(log_url, None, None, email_rows, "email")
    every_rows = monitor.WindowRows()
    monitor.read_log_window(log_url, None, None, every_rows)

    assert len(sms_rows.scores) == len(old_ids) and email_rows.scores == [r.spam_probability for r in emails]
    assert len(every_rows.scores) == len(old_ids) + len(emails)
    # The newest `last` of the channel, not of the whole log (the e-mails are the newest rows overall).
    last_sms = monitor.WindowRows()
    monitor.read_log_window(log_url, 3, None, last_sms, "sms")
    assert last_sms.lengths == [10 + i for i in range(OLD_ROWS - 3, OLD_ROWS)]


def test_a_label_given_to_a_message_reaches_each_of_its_predictions_on_its_channel(engine: Engine) -> None:
    predlog.ensure_schema(engine)
    first, again, other = (
        email_record(T0, "1" * 64),
        email_record(T0 + timedelta(seconds=1), "1" * 64),
        email_record(T0, "2" * 64),
    )
    sms_same_hash = PredictionRecord(new_prediction_id(), T0, "3", 5, "1" * 64, 0.4, "ham", None)
    predlog.insert_predictions(engine, [first, again, other, sms_same_hash])

    assert predlog.learn_message(engine, "email", "1" * 64, "spam", at=T0 + timedelta(minutes=1))
    assert not predlog.learn_message(engine, "email", "1" * 64, "spam")  # already so: nothing written
    ids = [first.id, again.id, other.id, sms_same_hash.id]
    assert predlog.read_feedback(engine, ids) == {first.id: "spam", again.id: "spam"}

    # The latest label wins, whichever way it came.
    predlog.insert_feedback(engine, again.id, "ham", at=T0 + timedelta(minutes=2), channel="email")
    assert predlog.read_feedback(engine, ids) == {first.id: "spam", again.id: "ham"}
    assert predlog.learn_message(engine, "email", "1" * 64, "ham", at=T0 + timedelta(minutes=3))
    assert predlog.learn_message(engine, "email", "1" * 64, "spam", at=T0 + timedelta(minutes=4))
    assert predlog.read_feedback(engine, ids) == {first.id: "spam", again.id: "spam"}
    assert predlog.read_feedback(engine) == {first.id: "spam", again.id: "spam"}

    assert predlog.forget_message(engine, "email", "1" * 64)
    assert not predlog.forget_message(engine, "email", "1" * 64)
    assert predlog.read_feedback(engine, ids) == {again.id: "ham"}  # the label given by id stays
