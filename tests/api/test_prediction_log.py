"""The prediction-log writer when its database fails: records wait and are retried in order, the
bound drops the oldest and counts them, and a database that is down when the server starts leaves
the service answering. The databases are real: a SQLite file whose directory does not exist yet
(unreachable until the test creates it) and a PostgreSQL server that the test stops and starts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event

from api.prediction_log import PredictionLogWriter, log_engine
from spamfilter.monitoring import predlog
from tests.api.conftest import start_server

TEXT = "Are we still meeting for lunch at 1?"


def logged_ids(url: str) -> list[str]:
    """The ids in the log, in insertion-time order (ids are time-ordered too)."""
    engine = predlog.connect(url)
    try:
        return [record.id for record in predlog.read_predictions(engine).records]
    finally:
        engine.dispose()


def record_n(writer: PredictionLogWriter, n: int) -> list[str]:
    return [writer.record("1", f"{TEXT} #{i}", 0.25, "ham") for i in range(n)]


MakeWriter = Callable[..., tuple[PredictionLogWriter, list[int]]]


@pytest.fixture
def writers() -> Iterator[MakeWriter]:
    """`writer, dropped = writers(url, **settings)`: a writer (no background thread: the test flushes)
    and the counts it reported through `on_dropped`; disposed of at the end."""
    made: list[PredictionLogWriter] = []

    def make(url: str, **kwargs: Any) -> tuple[PredictionLogWriter, list[int]]:
        dropped: list[int] = []
        writer = PredictionLogWriter(log_engine(url), log_text=False, on_dropped=dropped.append, **kwargs)
        made.append(writer)
        return writer, dropped

    yield make
    for writer in made:
        writer.engine.dispose()


def test_records_wait_while_the_database_is_unreachable_and_are_written_in_order_later(
    tmp_path: Path, writers: MakeWriter
) -> None:
    url = f"sqlite:///{tmp_path / 'not-yet' / 'log.db'}"
    writer, _ = writers(url, max_batch=2)
    ids = record_n(writer, 5)
    assert writer.flush() == 0
    assert writer.connected is False and writer.failures == 1
    assert "unable to open database file" in str(writer.last_error)
    assert writer.flush() == 0 and writer.failures == 2  # each flush retries
    assert writer.pending_count() == 5 and writer.dropped == 0

    (tmp_path / "not-yet").mkdir()
    assert writer.flush() == 5
    assert writer.connected is True and writer.last_error is None
    assert logged_ids(url) == ids
    assert writer.pending_count() == 0


def test_at_the_bound_the_oldest_records_are_dropped_and_counted(tmp_path: Path, writers: MakeWriter) -> None:
    url = f"sqlite:///{tmp_path / 'not-yet' / 'log.db'}"
    writer, dropped = writers(url, max_pending=4)
    ids = record_n(writer, 7)
    assert writer.flush() == 0
    assert writer.dropped == 3 and dropped == [1, 1, 1]
    assert writer.pending_ids() == set(ids[3:])
    (tmp_path / "not-yet").mkdir()
    assert writer.flush() == 4
    assert logged_ids(url) == ids[3:]


def test_a_failed_insert_puts_the_batch_back_and_the_next_flush_writes_it(
    postgres_url: str, postgres_server: Any, writers: MakeWriter
) -> None:
    """The insert path proper (tables exist, connections pooled): the server goes away mid-service."""
    writer, _ = writers(postgres_url, max_batch=3)
    first = record_n(writer, 2)
    assert writer.flush() == 2 and writer.connected is True
    later = record_n(writer, 7)
    postgres_server.stop()
    try:
        assert writer.flush() == 0
        assert writer.connected is False and writer.failures == 1
        assert writer.pending_count() == 7, "the failed batch went back to the queue"
        assert writer.flush() == 0 and writer.failures == 2
    finally:
        postgres_server.start()
    assert writer.flush() == 7
    assert writer.connected is True and writer.dropped == 0
    assert logged_ids(postgres_url) == first + later


def test_records_arriving_during_a_failed_insert_push_out_the_oldest_of_the_batch(
    postgres_url: str, postgres_server: Any, writers: MakeWriter
) -> None:
    """Requests keep coming while the writer tries to reach the database: when the queue is full by the
    time the failed batch goes back, the oldest records (the batch's head) are the ones dropped."""
    writer, dropped = writers(postgres_url, max_batch=4, max_pending=6)
    writer.flush()  # tables created
    batch = record_n(writer, 4)
    arriving: list[str] = []

    def requests_arrive(*_: object) -> None:  # runs as the writer (re)connects, the insert in flight
        if not arriving:
            arriving.extend(writer.record("1", f"late {i}", 0.5, "spam") for i in range(5))

    engine: Engine = writer.engine
    engine.dispose()  # the next insert has to connect, so the hook below runs inside the flush
    event.listen(engine, "do_connect", requests_arrive)
    postgres_server.stop()
    try:
        assert writer.flush() == 0
    finally:
        postgres_server.start()
    # 4 popped + 5 arrived = 9 for 6 places: the batch's 3 oldest go, counted once, together.
    assert writer.dropped == 3 and dropped == [3]
    assert writer.pending_ids() == {batch[3], *arriving}
    assert writer.flush() == 6
    assert logged_ids(postgres_url) == [batch[3], *arriving]


def test_a_database_down_at_start_up_leaves_the_service_answering_and_is_retried(
    tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path
) -> None:
    """The image's command with the log on a database that is unreachable until the test makes it so."""
    import shutil

    workdir = tmp_path_factory.mktemp("log-down")
    shutil.copytree(bundle_dir, workdir / "bundle" / "sms")
    log_dir = workdir / "log-not-yet"
    url = f"sqlite:///{log_dir / 'predictions.db'}"
    server = start_server(workdir, {"WORKERS": "1", "PREDICTION_LOG_URL": url, "PREDICTION_LOG_FLUSH_INTERVAL": "0.2"})
    try:
        answers = [httpx.post(f"{server.url}/predict", json={"text": f"{TEXT} {i}"}, timeout=30) for i in range(3)]
        assert [answer.status_code for answer in answers] == [200, 200, 200], answers[0].text
        ids = [answer.json()["prediction_id"] for answer in answers]
        assert all(ids)
        assert "prediction log unreachable" in server.log_text()
        log_dir.mkdir()
        deadline = time.monotonic() + 30
        while not log_dir.joinpath("predictions.db").exists() or logged_ids(url) != ids:
            assert time.monotonic() < deadline, f"queued predictions never reached the log:\n{server.log_text()}"
            time.sleep(0.2)
        assert "prediction log reachable again" in server.log_text()
    finally:
        server.stop()
