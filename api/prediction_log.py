"""The batching background writer of the prediction log (schema: `spamfilter.predlog`).

Requests only append a record to an in-memory queue; a writer thread inserts whatever has
accumulated every `flush_interval` seconds (or sooner when a batch fills) in one transaction,
off the request path. When the database is unreachable, records wait, up to `max_pending`;
beyond that the oldest are dropped and counted, so a dead database never takes the service down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, event, select
from sqlalchemy.exc import SQLAlchemyError

from spamfilter.monitoring import predlog
from spamfilter.monitoring.predlog import PredictionRecord, text_sha256

log = logging.getLogger(__name__)


def _sqlite_pragmas(engine: Engine) -> None:
    # WAL: several worker processes append while the monitor reads; busy_timeout waits for the lock.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL never corrupts the file; a power cut may lose the last commits, which
        # for a prediction log is an acceptable trade for not syncing every batch to disk.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def open_log(url: str, attempts: int = 5) -> Engine:
    """Connect (creating the tables if missing); retried, since several workers start at once."""
    for attempt in range(1, attempts + 1):
        try:
            engine = predlog.connect(url)
            break
        except SQLAlchemyError:
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)
    if engine.dialect.name == "sqlite":
        _sqlite_pragmas(engine)
        engine.dispose()  # reconnect with the pragmas
    return engine


class PredictionLogWriter:
    def __init__(
        self,
        engine: Engine,
        log_text: bool,
        flush_interval: float = 0.5,
        max_batch: int = 250,
        max_pending: int = 100_000,
        on_written: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.log_text = log_text
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self._pending: deque[PredictionRecord] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_written = on_written
        self._on_dropped = on_dropped
        self.written = 0
        self.dropped = 0
        self.failures = 0

    def record(self, model_version: str, text: str, probability: float, label: str) -> str:
        """Queue one prediction; returns its id. Never blocks on the database."""
        record = PredictionRecord(
            id=predlog.new_prediction_id(),
            created_at=datetime.now(UTC),
            model_version=model_version,
            text_length=len(text),
            text_sha256=text_sha256(text),
            spam_probability=probability,
            label=label,
            text=text if self.log_text else None,
        )
        pending = self._pending
        with self._lock:
            if len(pending) == pending.maxlen:
                self.dropped += 1
                if self._on_dropped:
                    self._on_dropped(1)
            pending.append(record)
            full = len(pending) >= self.max_batch
        if full:
            self._wake.set()
        return record.id

    def pending_ids(self) -> set[str]:
        with self._lock:
            return {record.id for record in self._pending}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write everything queued so far; returns how many rows were written."""
        written = 0
        with self._flush_lock:
            while True:
                with self._lock:
                    batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
                if not batch:
                    return written
                try:
                    predlog.insert_predictions(self.engine, batch)
                except SQLAlchemyError as exc:
                    self.failures += 1
                    log.warning("prediction log: writing %d rows failed (will retry): %s", len(batch), exc)
                    with self._lock:  # back to the front, in order; what no longer fits is dropped
                        overflow = len(batch) + len(self._pending) - (self._pending.maxlen or 0)
                        self._pending.extendleft(reversed(batch))
                    if overflow > 0:
                        self.dropped += overflow
                        if self._on_dropped:
                            self._on_dropped(overflow)
                    return written
                written += len(batch)
                self.written += len(batch)
                if self._on_written:
                    self._on_written(len(batch))
                time.sleep(0)  # hand the GIL to the event loop between batches

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        self.engine.dispose()

    def prediction_exists(self, prediction_id: str) -> bool:
        with self.engine.connect() as connection:
            found = connection.execute(
                select(predlog.predictions.c.id).where(predlog.predictions.c.id == prediction_id)
            ).first()
        return found is not None
