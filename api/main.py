"""The FastAPI application: `create_app()` wires settings, a model holder per channel, the batcher, the
log and the routes."""

from __future__ import annotations

from fastapi import FastAPI

from api.batcher import MicroBatcher
from api.deps import AppState, ChannelService
from api.errors import install_error_handlers
from api.lifecycle import lifespan
from api.limits import BodyLimitMiddleware
from api.metrics import ApiMetrics, MetricsMiddleware
from api.model_holder import ModelHolder
from api.openapi import install_openapi
from api.reload_signal import ReloadSignal
from api.routes import admin, ops, page, predict
from api.settings import ApiSettings
from spamfilter.errors import ConfigError

DESCRIPTION = """Classifies SMS messages (`POST /predict`) and raw e-mails (`POST /predict/email`) as spam or
ham, each channel with its own champion model.

Every answer names the model version that gave it. Predictions are logged (hash, length, probability,
label; for e-mail also size, sender domain and link domains) for the monitor; `POST /feedback` adds the
true label later.
"""


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    sources = settings.model_sources()
    if not sources:
        raise ConfigError("no channel to serve: MODEL_URI is empty and the e-mail channel is off (EMAIL_MODEL_URI)")
    metrics = ApiMetrics()
    metrics.configure(list(sources))
    app = FastAPI(title="spamfilter", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.api = AppState(
        settings=settings,
        channels={
            channel: ChannelService(
                channel,
                ModelHolder(uri, channel),
                # E-mails are scored in a worker thread instead (see api/routes/predict.py).
                MicroBatcher(settings.micro_batch_max, on_batch=metrics.micro_batch.observe)
                if channel == "sms"
                else None,
            )
            for channel, uri in sources.items()
        },
        metrics=metrics,
        signal=ReloadSignal(settings.run_dir) if settings.run_dir else None,
    )
    app.state.page_html = page.PAGE.read_text(encoding="utf-8")
    install_error_handlers(app)
    for router in (predict.router, ops.router, admin.router, page.router):
        app.include_router(router)
    install_openapi(app, settings, list(sources))
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        raw_bodies={predict.EMAIL_PATH: (settings.email_max_bytes, "EMAIL_MAX_BYTES")},
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
