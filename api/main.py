"""The FastAPI application: `create_app()` wires settings, model holder, batcher, log and routes."""

from __future__ import annotations

from fastapi import FastAPI

from api.batcher import MicroBatcher
from api.deps import AppState
from api.errors import install_error_handlers
from api.lifecycle import lifespan
from api.limits import BodyLimitMiddleware
from api.metrics import ApiMetrics, MetricsMiddleware
from api.model_holder import ModelHolder
from api.reload_signal import ReloadSignal
from api.routes import admin, ops, page, predict
from api.settings import ApiSettings

DESCRIPTION = """Classifies SMS messages as spam or ham with the champion model.

Every answer names the model version that gave it. Predictions are logged (text hash, length,
probability, label) for the monitor; `POST /feedback` adds the true label later.
"""


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    metrics = ApiMetrics()
    app = FastAPI(title="spamfilter", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.api = AppState(
        settings=settings,
        holder=ModelHolder(settings.model_uri),
        batcher=MicroBatcher(settings.micro_batch_max, on_batch=metrics.micro_batch.observe),
        metrics=metrics,
        signal=ReloadSignal(settings.run_dir) if settings.run_dir else None,
    )
    app.state.page_html = page.PAGE.read_text(encoding="utf-8")
    install_error_handlers(app)
    for router in (predict.router, ops.router, admin.router, page.router):
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
