"""The prediction log's schema and its read and write paths, on SQLite and on a real PostgreSQL.

Every test writes through `predlog.insert_predictions` (the driver's executemany on SQLite, SQLAlchemy's
portable insert elsewhere) and reads through `predlog.read_predictions` and the monitor's window reader,
so both dialects' real paths run. The PostgreSQL server's own time zone is not UTC (+05:30)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine

from spamfilter.monitoring import monitor, predlog
from spamfilter.monitoring.predlog import PredictionRecord, new_prediction_id, text_sha256

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
PLUS_2 = timezone(timedelta(hours=2))
INDIA = timezone(timedelta(hours=5, minutes=30))


def test_prediction_ids_are_version_7_uuids_ordered_by_time() -> None:
    first = new_prediction_id()
    time.sleep(0.002)
    later = [new_prediction_id() for _ in range(1000)]
    parsed = uuid.UUID(first)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert abs((parsed.int >> 80) - time.time_ns() // 1_000_000) < 5_000
    assert all(first < other for other in later)
    assert len(set(later)) == 1000


def test_text_sha256() -> None:
    assert text_sha256("hello") == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def engine(log_url: str) -> Iterator[Engine]:
    engine = predlog.connect(log_url)
    yield engine
    engine.dispose()


def as_utc(moment: datetime) -> datetime:
    """The instant a stored time stands for: the log stores UTC, and SQLite keeps no zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def records_at(*moments: datetime, text: str | None = "hello") -> list[PredictionRecord]:
    return [
        PredictionRecord(new_prediction_id(), at, "3", 5 + i, f"{i:064d}", i / 10, ("ham", "spam")[i % 2], text)
        for i, at in enumerate(moments)
    ]


def test_predictions_read_back_as_written_oldest_first(engine: Engine) -> None:
    written = records_at(T0 + timedelta(seconds=2), T0, T0 + timedelta(seconds=1))
    written[1] = PredictionRecord(**{**written[1].__dict__, "text": None})  # LOG_TEXT off for this one
    predlog.insert_predictions(engine, written)
    read = predlog.read_predictions(engine)
    assert read.skipped == {}
    expected = sorted(written, key=lambda record: record.created_at)
    assert [r.id for r in read.records] == [r.id for r in expected]
    for got, want in zip(read.records, expected, strict=True):
        assert as_utc(got.created_at) == want.created_at
        assert (got.model_version, got.text_length, got.text_sha256) == (
            want.model_version,
            want.text_length,
            want.text_sha256,
        )
        assert (got.spam_probability, got.label, got.text) == (want.spam_probability, want.label, want.text)
    newest_two = predlog.read_predictions(engine, last=2).records
    assert [r.id for r in newest_two] == [r.id for r in expected[1:]]


def test_since_selects_predictions_at_or_after_the_instant_in_any_zone(engine: Engine, log_url: str) -> None:
    written = records_at(*(T0 + timedelta(minutes=i) for i in range(10)))
    predlog.insert_predictions(engine, written)
    boundary = written[6].created_at
    for since in (boundary, boundary.astimezone(INDIA), boundary.astimezone(PLUS_2)):
        assert [r.id for r in predlog.read_predictions(engine, since=since).records] == [r.id for r in written[6:]]
    one_microsecond_later = boundary + timedelta(microseconds=1)
    assert [r.id for r in predlog.read_predictions(engine, since=one_microsecond_later).records] == [
        r.id for r in written[7:]
    ]
    # The monitor's reader, as `spamfilter monitor --since` calls it.
    rows = monitor.WindowRows()
    monitor.read_log_window(log_url, None, boundary.astimezone(INDIA), rows)
    assert len(rows.lengths) == 4 and rows.sources == [log_url]
    assert rows.first_at is not None and rows.last_at is not None
    assert as_utc(datetime.fromisoformat(rows.first_at)) == boundary
    assert as_utc(datetime.fromisoformat(rows.last_at)) == written[-1].created_at


def test_a_time_given_in_another_zone_keeps_its_instant(
    engine: Engine, log_url: str, request: pytest.FixtureRequest
) -> None:
    (record,) = records_at(T0.astimezone(PLUS_2))
    predlog.insert_predictions(engine, [record])
    (got,) = predlog.read_predictions(engine).records
    assert as_utc(got.created_at) == T0
    assert predlog.read_predictions(engine, since=T0 + timedelta(microseconds=1)).records == []


def test_feedback_keeps_the_latest_label_per_prediction(engine: Engine) -> None:
    first, second = records_at(T0, T0 + timedelta(seconds=1))
    predlog.insert_predictions(engine, [first, second])
    predlog.insert_feedback(engine, first.id, "spam")
    predlog.insert_feedback(engine, first.id, "ham")
    predlog.insert_feedback(engine, second.id, "spam")
    assert predlog.read_feedback(engine) == {first.id: "ham", second.id: "spam"}
    assert predlog.read_feedback(engine, [second.id]) == {second.id: "spam"}
