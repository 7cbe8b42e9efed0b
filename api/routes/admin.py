"""Administration: reloading the models from their sources without a restart."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from api.deps import CHANNEL_NAMES, State, channel_service, require_admin_key
from api.errors import ApiError
from api.lifecycle import reload_models
from api.model_holder import ReloadOutcome
from api.schemas import CHANNELS_EXTENSION, ChannelsReloadResponse, ReloadResponse, error_responses
from spamfilter.config import Channel

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin_key)],
    # Every status code in some configuration; api.openapi drops the ones this server's settings rule out.
    responses=error_responses(
        {
            401: "Missing or wrong admin API key",
            403: "Admin is off (no ADMIN_API_KEY or API_KEY set)",
            404: "`channel` names a channel this server does not serve",
            413: "Body too large",
            422: "`channel` is not a channel name",
            502: "A model could not be loaded; the old one serves on",
        },
        {401: {"WWW-Authenticate": "ApiKey"}},
    ),
)


def _answer(outcome: ReloadOutcome) -> ReloadResponse:
    return ReloadResponse(
        ok=outcome.ok, swapped=outcome.swapped, version=outcome.version, previous_version=outcome.previous_version
    )


@router.post(
    "/reload",
    summary="Load what each channel's model URI names now and swap it in, in every worker",
    response_model=ChannelsReloadResponse,
    responses={200: {"description": "Reloaded; `channels` only on a server of more than one channel"}},
    openapi_extra={CHANNELS_EXTENSION: ["sms", "email"]},
)
async def reload(
    state: State,
    channel: Annotated[Channel | None, Query(description="Reload this channel only (default: every channel).")] = None,
) -> JSONResponse:
    if channel is not None:
        channel_service(state, channel)  # 404 when the server does not serve it
    channels: list[Channel] = [channel] if channel is not None else list(state.channels)
    outcomes = await reload_models(state, channels, force=True, announce=True)
    failed = {name: outcome for name, outcome in outcomes.items() if not outcome.ok}
    if failed:
        messages = []
        details: list[dict[str, object]] = []
        for name, outcome in failed.items():
            serving = f"still serving version {outcome.version}" if outcome.version else "no model serves it yet"
            prefix = "" if state.sms_only else f"{CHANNEL_NAMES[name]}: "
            messages.append(f"{prefix}{outcome.error}; {serving}")
            details.append(
                {"serving_version": outcome.version}
                if state.sms_only
                else {"channel": name, "serving_version": outcome.version}
            )
        raise ApiError(502, "reload_failed", " | ".join(messages), details)
    answer = _answer(outcomes[channels[0]])
    if state.sms_only:
        return JSONResponse(answer.model_dump())
    both = ChannelsReloadResponse(
        **answer.model_dump(), channels={name: _answer(outcome) for name, outcome in outcomes.items()}
    )
    return JSONResponse(both.model_dump())
