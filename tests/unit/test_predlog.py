"""The prediction log's schema helpers."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from spamfilter.monitoring.predlog import new_prediction_id, text_sha256


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


def test_sqlite_fast_path_reads_back_like_the_portable_path(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from spamfilter.monitoring import predlog

    engine = predlog.connect(f"sqlite:///{tmp_path / 'log.db'}")
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    fast = predlog.PredictionRecord(predlog.new_prediction_id(), at, "3", 5, "a" * 64, 0.25, "ham", "hello")
    portable = predlog.PredictionRecord(predlog.new_prediction_id(), at, "3", 5, "b" * 64, 0.75, "spam", None)
    predlog.insert_predictions(engine, [fast])
    with engine.begin() as connection:
        connection.execute(insert(predlog.predictions), [portable.__dict__])
    rows = predlog.read_predictions(engine).records
    assert [r.id for r in rows] == [fast.id, portable.id]
    assert rows[0].created_at == rows[1].created_at == at.replace(tzinfo=None)
    assert (rows[0].text, rows[0].spam_probability, rows[0].label) == ("hello", 0.25, "ham")
