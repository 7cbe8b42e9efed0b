"""Operations: liveness, readiness, what model answers, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import State, current_model
from api.schemas import ErrorResponse, ModelResponse

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: 200 once a model is loaded, else 503; reports a failed reload",
    responses={503: {"description": "No model loaded yet"}},
)
async def ready(state: State) -> JSONResponse:
    holder = state.holder
    loaded = holder.current
    body: dict[str, Any] = {
        "ready": loaded is not None,
        # degraded: a reload failed and the previous model is still serving.
        "status": ("degraded" if holder.last_error else "ready") if loaded else "loading",
        "model_version": loaded.info.version if loaded else None,
        "model_source": holder.uri,
        "loaded_at": loaded.loaded_at if loaded else None,
        "last_reload_error": holder.last_error,
        "last_reload_error_at": holder.last_error_at,
        "reloads": holder.reloads,
        "failed_reloads": holder.failed_reloads,
    }
    if loaded is None and holder.last_error:
        body["status"] = "failed"
    return JSONResponse(body, status_code=200 if loaded else 503)


@router.get(
    "/model",
    summary="The model answering: name, version, alias, metrics, training time, data fingerprint",
    responses={503: {"model": ErrorResponse, "description": "No model loaded yet"}},
)
async def model(state: State) -> ModelResponse:
    loaded = current_model(state)
    # What ModelInfo holds that the response documents, plus how this process serves it.
    public = loaded.info.model_dump(include=set(ModelResponse.model_fields) - {"loaded_at", "scorer"})
    return ModelResponse(**public, loaded_at=loaded.loaded_at, scorer=loaded.scorer_kind)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: State) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
