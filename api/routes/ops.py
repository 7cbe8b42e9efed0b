"""Operations: liveness, readiness, what model answers on each channel, Prometheus metrics.

Readiness with several channels: 200 while at least one channel serves (`status` is `degraded` when
another has no model or its last reload failed, and `channels` says which), 503 only when none does.
A load balancer then keeps sending traffic to a server that can answer part of it; the degraded
state shows in /ready, in `spam_api_channel_serving` and in the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import AppState, State, current_model
from api.model_holder import LoadedModel, ModelHolder
from api.schemas import ChannelModel, ModelResponse, ReadyResponse, error_responses
from spamfilter.config import Channel

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def readiness(holder: ModelHolder) -> dict[str, Any]:
    """One channel's readiness: `ready` (serving, no failure), `degraded` (serving; the last reload failed),
    `loading` (no model yet) or `failed` (no model, and loading it failed)."""
    loaded = holder.current
    if loaded is not None:
        status = "degraded" if holder.last_error else "ready"
    else:
        status = "failed" if holder.last_error else "loading"
    return {
        "ready": loaded is not None,
        "status": status,
        "model_version": loaded.info.version if loaded else None,
        "model_source": holder.uri,
        "loaded_at": loaded.loaded_at if loaded else None,
        "last_reload_error": holder.last_error,
        "last_reload_error_at": holder.last_error_at,
        "reloads": holder.reloads,
        "failed_reloads": holder.failed_reloads,
    }


def overall_status(channels: Mapping[Channel, dict[str, Any]]) -> str:
    """The server's status from its channels': ready, degraded (one serves), loading or failed (none does)."""
    states = [detail["status"] for detail in channels.values()]
    if any(detail["ready"] for detail in channels.values()):
        return "ready" if all(status == "ready" for status in states) else "degraded"
    return "failed" if all(status == "failed" for status in states) else "loading"


@router.get(
    "/ready",
    summary="Readiness: 200 while a model serves (degraded when a channel does not), 503 when none does",
    responses={
        200: {"model": ReadyResponse, "description": "A model serves (on one channel at least)"},
        503: {"model": ReadyResponse, "description": "No channel has a model yet"},
    },
)
async def ready(state: State) -> JSONResponse:
    primary = state.primary()
    assert primary is not None  # create_app refuses a server without channels
    body = readiness(primary.holder)
    if not state.sms_only:
        # The top-level fields keep describing one channel (SMS when it serves), as before channels;
        # `ready` and `status` are the server's, and `channels` has each one's.
        channels = {channel: readiness(service.holder) for channel, service in state.channels.items()}
        body["ready"] = any(detail["ready"] for detail in channels.values())
        body["status"] = overall_status(channels)
        body["channel"] = primary.channel
        body["channels"] = channels
    # The prediction log never decides readiness (a down database only delays rows), but it shows here.
    writer = state.writer
    body["prediction_log"] = (
        None
        if writer is None
        else {
            "connected": writer.connected,
            "pending": writer.pending_count(),
            "dropped": writer.dropped,
            "last_error": writer.last_error,
        }
    )
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


def channel_model(loaded: LoadedModel) -> ChannelModel:
    # What ModelInfo holds that the response documents, plus how this process serves it.
    public = loaded.info.model_dump(include=set(ChannelModel.model_fields) - {"loaded_at", "scorer"})
    return ChannelModel(**public, loaded_at=loaded.loaded_at, scorer=loaded.scorer_kind)


def describe_models(state: AppState) -> ModelResponse:
    primary = state.primary()
    assert primary is not None
    loaded = current_model(state, primary.channel)  # 503 when no channel serves
    channels = {
        channel: channel_model(service.holder.current) if service.holder.current else None
        for channel, service in state.channels.items()
    }
    return ModelResponse(**channel_model(loaded).model_dump(), channels=channels)


@router.get(
    "/model",
    summary="The models answering: name, version, alias, metrics, training time, data fingerprint, per channel",
    responses=error_responses(
        {503: "No model loaded yet on any channel"}, {503: {"Retry-After": "Seconds to wait before trying again"}}
    ),
)
async def model(state: State) -> ModelResponse:
    return describe_models(state)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"description": "The text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
)
async def metrics(state: State) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
