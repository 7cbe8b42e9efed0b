"""Startup, shutdown and model reloads: the lifespan and its background tasks (per channel), and the
spamd listener when SPAMD_PORT is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence

from fastapi import FastAPI

from api.deps import AppState, ChannelService
from api.email_channel import spamd_feedback, spamd_scorer
from api.metrics import multiprocess_dir
from api.model_holder import ReloadOutcome
from api.prediction_log import PredictionLogWriter, log_engine
from api.spamd import start_spamd
from spamfilter.config import Channel

log = logging.getLogger(__name__)

WATCH_TICK = 0.5  # seconds between checks for another worker's reload request
RETRY_FIRST_LOAD = 5.0  # seconds between attempts while a channel has no model


async def reload_channel(state: AppState, service: ChannelService, force: bool) -> ReloadOutcome:
    """Load one channel's model (in a thread, so serving goes on) and swap it in."""
    outcome = await asyncio.to_thread(service.holder.reload, force)
    if outcome.swapped or not outcome.ok:
        state.metrics.reloaded(service.channel, outcome.ok)
    loaded = service.holder.current
    if loaded is not None:
        state.metrics.serving(service.channel, loaded.info.name, loaded.info.version)
    return outcome


async def reload_models(
    state: AppState, channels: Sequence[Channel], force: bool, announce: bool = False
) -> dict[Channel, ReloadOutcome]:
    """Reload `channels` side by side (a slow or broken source holds up no other channel); with `announce`,
    tell the other workers to do the same."""
    services = [state.channels[channel] for channel in channels]
    outcomes = await asyncio.gather(*(reload_channel(state, service, force) for service in services))
    if announce and state.signal is not None:  # failed too: every worker then reports the failure
        state.signal.announce(channels)
    return dict(zip(channels, outcomes, strict=True))


async def watch_source(state: AppState) -> None:
    """Per channel: retry a failed first load, follow other workers' reloads, poll the source if asked."""
    interval = state.settings.model_poll_interval
    started = time.monotonic()
    last_poll = dict.fromkeys(state.channels, started)
    last_attempt = dict.fromkeys(state.channels, started)
    while True:
        await asyncio.sleep(WATCH_TICK)
        now = time.monotonic()
        try:
            requested = state.signal.requested() if state.signal is not None else None
            if requested is not None:
                asked = [channel for channel in state.channels if channel in requested]
                log.info("reload of %s requested through another worker", ", ".join(asked) or "no channel")
                await reload_models(state, asked, force=True)
                continue
            due: list[tuple[ChannelService, bool]] = []
            for channel, service in state.channels.items():
                if service.holder.current is None:
                    if now - last_attempt[channel] >= max(interval, RETRY_FIRST_LOAD):
                        last_attempt[channel] = now
                        due.append((service, True))
                elif interval and now - last_poll[channel] >= interval:
                    last_poll[channel] = now
                    due.append((service, False))
            if due:
                await asyncio.gather(*(reload_channel(state, service, force) for service, force in due))
        except Exception:  # the watcher must outlive any surprise
            log.exception("model watcher")


async def _start_spamd(state: AppState) -> None:
    settings = state.settings
    assert settings.spamd_port is not None
    if "email" not in state.channels:
        log.warning("SPAMD_PORT is set but the e-mail channel is off: spamd answers every scan with EX_TEMPFAIL")
    feedback = None
    if settings.spamd_allow_tell:
        if state.writer is None:
            log.warning("SPAMD_ALLOW_TELL is set but the prediction log is off: TELL stays refused")
        else:
            feedback = spamd_feedback(state)
    state.spamd = await start_spamd(
        settings.spamd_host or settings.host,
        settings.spamd_port,
        spamd_scorer(state),
        settings.spamd_settings(),
        feedback,
        # Every worker listens on the one port and the kernel spreads the connections between them.
        reuse_port=settings.workers > 1,
    )


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
    # The models load once, in the background: /health answers at once, /ready says 503 until one serves.
    first_load = asyncio.create_task(reload_models(state, list(state.channels), force=True), name="first-model-load")
    watcher = asyncio.create_task(watch_source(state), name="model-watcher")
    state.background = [first_load, watcher]
    try:
        if settings.spamd_port is not None:
            await _start_spamd(state)
        yield
    finally:
        if state.spamd is not None:
            await state.spamd.close()
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
