"""The batching background writer of the prediction log (schema: `spamfilter.monitoring.predlog`).

Requests only append a record to an in-memory queue; a writer thread inserts whatever has
accumulated every `flush_interval` seconds (or sooner when a batch fills) in one transaction,
off the request path. When the database is unreachable, records wait, up to `max_pending`;
beyond that the oldest are dropped and counted, so a dead database never takes the service down.
That holds at start-up too: the writer starts without a connection and creates the tables on its
first successful flush, so a database that is down when the server starts is retried, not fatal.
A log written by an earlier version is brought up to the current schema there too (`ensure_schema`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import SQLAlchemyError

from spamfilter.mail import MailRecord
from spamfilter.monitoring import predlog
from spamfilter.monitoring.predlog import PredictionRecord, text_sha256

log = logging.getLogger(__name__)

MAX_LOGGED_DOMAINS = 100  # link domains kept per e-mail row: a message cannot make its row grow without bound
_DOMAIN_COLUMN = 255  # predictions.sender_domain is VARCHAR(255): longer is refused by PostgreSQL


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL; one such row would fail its whole batch on every retry.
    return text.replace("\x00", "\ufffd")


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


def log_engine(url: str) -> Engine:
    """An engine for the log, not yet connected (SQLAlchemy connects on first use), with the SQLite
    pragmas set on each connection. A malformed URL raises here; an unreachable database does not."""
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        _sqlite_pragmas(engine)
    return engine


def open_log(url: str, attempts: int = 5) -> Engine:
    """Connect and create the tables if missing; retried, since several workers start at once.
    Raises the last SQLAlchemyError when the database stays unreachable."""
    engine = log_engine(url)
    attempt = 1
    while True:
        try:
            predlog.ensure_schema(engine)
            return engine
        except SQLAlchemyError:
            if attempt >= attempts:
                engine.dispose()
                raise
            time.sleep(0.2 * attempt)
            attempt += 1


class PredictionLogWriter:
    """Queues predictions and writes them from a background thread; see the module docstring.

    `connected` is False from a failed write until the next one succeeds (`last_error` says why):
    the service keeps answering meanwhile, and the queued records wait for the database."""

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
        self._tables_ready = False
        self.connected = False
        self.last_error: str | None = None
        self.written = 0
        self.dropped = 0
        self.failures = 0

    def record(self, model_version: str, text: str, probability: float, label: str) -> str:
        """Queue one SMS prediction; returns its id. Never blocks on the database."""
        return self._queue(
            PredictionRecord(
                id=predlog.new_prediction_id(),
                created_at=datetime.now(UTC),
                model_version=model_version,
                text_length=len(text),
                text_sha256=text_sha256(text),
                spam_probability=probability,
                label=label,
                text=_storable(text) if self.log_text else None,
            )
        )

    def record_email(
        self,
        model_version: str,
        raw: bytes,
        parsed: MailRecord,
        message_sha256: str,
        text_length: int,
        probability: float,
        label: str,
    ) -> str:
        """Queue one e-mail prediction; returns its id. `text_length` is the length of the text the monitor
        profiles for e-mail; the raw message is kept only with LOG_TEXT (decoded as UTF-8, any byte that is
        not UTF-8 replaced: the column is text)."""
        return self._queue(
            PredictionRecord(
                id=predlog.new_prediction_id(),
                created_at=datetime.now(UTC),
                model_version=model_version,
                text_length=text_length,
                text_sha256=message_sha256,
                spam_probability=probability,
                label=label,
                text=_storable(raw.decode("utf-8", "replace")) if self.log_text else None,
                channel="email",
                size_bytes=len(raw),
                sender_domain=_storable(parsed.sender_domain)[:_DOMAIN_COLUMN],
                url_domains=tuple(_storable(domain) for domain in parsed.url_domains[:MAX_LOGGED_DOMAINS]),
            )
        )

    def _queue(self, record: PredictionRecord) -> str:
        pending = self._pending
        with self._lock:
            if len(pending) == pending.maxlen:  # append drops the oldest record
                self._count_dropped(1)
            pending.append(record)
            full = len(pending) >= self.max_batch
        if full:
            self._wake.set()
        return record.id

    def pending_ids(self) -> set[str]:
        with self._lock:
            return {record.id for record in self._pending}

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.flush()  # creates the tables now, not one interval later
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()

    def _count_dropped(self, count: int) -> None:
        self.dropped += count
        if self._on_dropped:
            self._on_dropped(count)

    def _failed(self, doing: str, exc: SQLAlchemyError) -> None:
        self.failures += 1
        message = f"{doing}: {type(exc).__name__}: {exc}".splitlines()[0]
        if self.connected or self.last_error is None:  # once per outage, not on every retry
            log.warning(
                "prediction log unreachable, serving on and retrying every %.1f s (%d records waiting): %s",
                self.flush_interval,
                self.pending_count(),
                message,
            )
        self.connected = False
        self.last_error = message

    def flush(self) -> int:
        """Write everything queued so far; returns how many rows were written.

        On a database error the batch goes back to the front of the queue, in order, and the next
        flush retries it; where the queue is full meanwhile, the oldest records are dropped."""
        written = 0
        with self._flush_lock:
            if not self._tables_ready:
                try:
                    predlog.ensure_schema(self.engine)
                except SQLAlchemyError as exc:
                    self._failed("creating the tables", exc)
                    return 0
                self._tables_ready = True
            while True:
                with self._lock:
                    batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
                if not batch:
                    break
                try:
                    predlog.insert_predictions(self.engine, batch)
                except SQLAlchemyError as exc:
                    with self._lock:
                        room = (self._pending.maxlen or 0) - len(self._pending)
                        overflow = max(len(batch) - room, 0)
                        # The batch is older than anything queued since: its head goes first.
                        self._pending.extendleft(reversed(batch[overflow:]))
                        if overflow:
                            self._count_dropped(overflow)
                    self._failed(f"writing {len(batch)} rows", exc)
                    return written
                written += len(batch)
                self.written += len(batch)
                if self._on_written:
                    self._on_written(len(batch))
                time.sleep(0)  # hand the GIL to the event loop between batches
        if not self.connected:
            if self.last_error is not None:
                log.info("prediction log reachable again: %d rows written", written)
            self.connected = True
            self.last_error = None
        return written

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        lost = self.pending_count()
        if lost:
            log.error("prediction log: %d records not written at shutdown: %s", lost, self.last_error)
        self.engine.dispose()

    def prediction_exists(self, prediction_id: str) -> bool:
        return self.prediction_channel(prediction_id) is not None

    def prediction_channel(self, prediction_id: str) -> str | None:
        """The channel of a logged prediction, or None when no logged prediction has this id."""
        if not self._tables_ready:
            self.flush()  # the tables may not exist yet; a database still down raises below
        with self.engine.connect() as connection:
            found = connection.execute(
                select(predlog.predictions.c.channel).where(predlog.predictions.c.id == prediction_id)
            ).scalar()
        return None if found is None else str(found)
