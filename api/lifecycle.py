"""Startup, shutdown and model reloads: the lifespan and its background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI

from api.deps import AppState
from api.metrics import multiprocess_dir
from api.model_holder import ReloadOutcome
from api.prediction_log import PredictionLogWriter, log_engine

log = logging.getLogger(__name__)

WATCH_TICK = 0.5  # seconds between checks for another worker's reload request
RETRY_FIRST_LOAD = 5.0  # seconds between attempts while no model has loaded


async def reload_model(state: AppState, force: bool, announce: bool = False) -> ReloadOutcome:
    """Load (in a thread, so serving goes on) and swap; with `announce`, tell the other workers."""
    outcome = await asyncio.to_thread(state.holder.reload, force)
    if outcome.swapped or not outcome.ok:
        state.metrics.reloads.labels("ok" if outcome.ok else "failed").inc()
    loaded = state.holder.current
    if loaded is not None:
        state.metrics.serving(loaded.info.name, loaded.info.version)
    if announce and state.signal is not None:  # failed too: every worker then reports the failure
        state.signal.announce()
    return outcome


async def watch_source(state: AppState) -> None:
    """Retry a failed first load, follow other workers' reloads, poll the source if asked."""
    interval = state.settings.model_poll_interval
    last_poll = time.monotonic()
    last_attempt = time.monotonic()
    while True:
        await asyncio.sleep(WATCH_TICK)
        now = time.monotonic()
        try:
            if state.signal is not None and state.signal.requested():
                log.info("reload requested through another worker")
                await reload_model(state, force=True)
            elif state.holder.current is None:
                if now - last_attempt >= max(interval, RETRY_FIRST_LOAD):
                    last_attempt = now
                    await reload_model(state, force=True)
            elif interval and now - last_poll >= interval:
                last_poll = now
                await reload_model(state, force=False)
        except Exception:  # the watcher must outlive any surprise
            log.exception("model watcher")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.api
    settings = state.settings
    if settings.prediction_log_url:
        # Not connected yet: a database that is down now is retried by the writer, never fatal.
        state.writer = PredictionLogWriter(
            log_engine(settings.prediction_log_url),
            log_text=settings.log_text,
            flush_interval=settings.prediction_log_flush_interval,
            max_batch=settings.prediction_log_max_batch,
            max_pending=settings.prediction_log_max_pending,
            on_written=state.metrics.log_written.inc,
            on_dropped=state.metrics.log_dropped.inc,
        )
        state.writer.start()
    # The model loads once, in the background: /health answers at once, /ready says 503 until then.
    first_load = asyncio.create_task(reload_model(state, force=True), name="first-model-load")
    watcher = asyncio.create_task(watch_source(state), name="model-watcher")
    state.background = [first_load, watcher]
    try:
        yield
    finally:
        for task in state.background:
            if isinstance(task, asyncio.Task):
                task.cancel()
        for task in state.background:
            if isinstance(task, asyncio.Task):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if state.writer is not None:
            await asyncio.to_thread(state.writer.stop)
        if multiprocess_dir():
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # untyped upstream
