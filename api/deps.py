"""What the routes share: the application state, API-key checks and input limits."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from api.batcher import MicroBatcher
from api.errors import ApiError, invalid_field
from api.metrics import ApiMetrics
from api.model_holder import LoadedModel, ModelHolder
from api.prediction_log import PredictionLogWriter
from api.reload_signal import ReloadSignal
from api.settings import ApiSettings


@dataclass
class AppState:
    settings: ApiSettings
    holder: ModelHolder
    batcher: MicroBatcher
    metrics: ApiMetrics
    writer: PredictionLogWriter | None = None
    signal: ReloadSignal | None = None
    background: list[object] = field(default_factory=list)


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.api
    return state


State = Annotated[AppState, Depends(get_state)]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Needed when API_KEY is set.")


def _matches(given: str | None, expected: SecretStr) -> bool:
    # Constant-time comparison of the bytes, so timing does not reveal how much of a guess was right.
    return given is not None and hmac.compare_digest(given.encode("utf-8"), expected.get_secret_value().encode("utf-8"))


async def require_api_key(state: State, key: Annotated[str | None, Depends(_api_key_header)]) -> None:
    expected = state.settings.api_key
    if expected is not None and not _matches(key, expected):
        raise ApiError(
            401,
            "unauthorized",
            "missing or wrong API key (send it as the X-API-Key header)",
            headers={"WWW-Authenticate": "ApiKey"},
        )


async def require_admin_key(state: State, key: Annotated[str | None, Depends(_api_key_header)]) -> None:
    expected = state.settings.admin_key()
    if expected is None:
        raise ApiError(403, "forbidden", "admin endpoints are off: set ADMIN_API_KEY (or API_KEY) to use them")
    if not _matches(key, expected):
        raise ApiError(
            401,
            "unauthorized",
            "missing or wrong admin API key (send it as the X-API-Key header)",
            headers={"WWW-Authenticate": "ApiKey"},
        )


def current_model(state: AppState) -> LoadedModel:
    loaded = state.holder.current
    if loaded is None:
        reason = state.holder.last_error or "the model is still loading"
        raise ApiError(503, "not_ready", f"no model loaded yet: {reason}", headers={"Retry-After": "1"})
    return loaded


def check_text(text: str, limit: int, field_name: str) -> None:
    if not text.strip():
        raise invalid_field(field_name, "is empty", f"{field_name} is empty: send the message to classify")
    if len(text) > limit:
        raise invalid_field(
            field_name,
            f"longer than {limit} characters",
            f"{field_name} has {len(text)} characters; the maximum is {limit} (MAX_TEXT_LENGTH)",
        )
