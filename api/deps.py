"""What the routes share: the application state (one model holder and batcher per channel), API-key
checks and input limits."""

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
from api.spamd import SpamdServer
from spamfilter.config import Channel

CHANNEL_NAMES: dict[Channel, str] = {"sms": "SMS", "email": "e-mail"}
CHANNEL_SETTINGS: dict[Channel, str] = {"sms": "MODEL_URI", "email": "EMAIL_MODEL_URI"}


@dataclass
class ChannelService:
    """One channel's model holder and, for SMS, the micro-batcher of its single predictions. (Concurrent SMS
    texts are scored together on the event loop, microseconds each; an e-mail may take milliseconds to parse,
    so each is scored in a worker thread instead, where it holds up no other request.)"""

    channel: Channel
    holder: ModelHolder
    batcher: MicroBatcher | None


@dataclass
class AppState:
    settings: ApiSettings
    channels: dict[Channel, ChannelService]  # the configured ones only, SMS first
    metrics: ApiMetrics
    writer: PredictionLogWriter | None = None
    signal: ReloadSignal | None = None
    background: list[object] = field(default_factory=list)
    spamd: SpamdServer | None = None

    @property
    def sms_only(self) -> bool:
        """The service as it was before channels: its answers keep their old shape (no per-channel part)."""
        return list(self.channels) == ["sms"]

    def primary(self) -> ChannelService | None:
        """The channel the top-level fields of /ready and /model describe: the first configured one that
        serves (SMS before e-mail), else the first configured; None when no channel is configured."""
        services = list(self.channels.values())
        serving = [service for service in services if service.holder.current is not None]
        chosen = serving or services
        return chosen[0] if chosen else None


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.api
    return state


State = Annotated[AppState, Depends(get_state)]

# One header, two security schemes in the OpenAPI document, since the two keys may differ (api.openapi says
# which operations need which, as configured).
API_KEY_SCHEME = "ApiKey"
ADMIN_KEY_SCHEME = "AdminApiKey"
_api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name=API_KEY_SCHEME, auto_error=False, description="The key set as API_KEY."
)
_admin_key_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name=ADMIN_KEY_SCHEME,
    auto_error=False,
    description="The key set as ADMIN_API_KEY, else as API_KEY.",
)


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


async def require_admin_key(state: State, key: Annotated[str | None, Depends(_admin_key_header)]) -> None:
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


def channel_service(state: AppState, channel: Channel) -> ChannelService:
    """The channel's service; 404 when this server does not serve the channel."""
    service = state.channels.get(channel)
    if service is None:
        raise ApiError(
            404,
            "channel_off",
            f"this server does not serve the {CHANNEL_NAMES[channel]} channel: its {CHANNEL_SETTINGS[channel]} is "
            f"empty{' (or unset and there is no bundle/email)' if channel == 'email' else ''}",
        )
    return service


def current_model(state: AppState, channel: Channel = "sms") -> LoadedModel:
    """The channel's model now (taken once per request); 503 while it has none, 404 when the channel is off."""
    holder = channel_service(state, channel).holder
    loaded = holder.current
    if loaded is None:
        reason = holder.last_error or "the model is still loading"
        what = "model" if channel == "sms" else f"{CHANNEL_NAMES[channel]} model"
        raise ApiError(503, "not_ready", f"no {what} loaded yet: {reason}", headers={"Retry-After": "1"})
    return loaded


def check_text(text: str, limit: int, field_name: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, sent as a JSON escape: valid JSON, not text
        raise invalid_field(
            field_name,
            "is not valid Unicode text",
            f"{field_name} holds a lone surrogate (U+{ord(text[exc.start]):04X}) at character {exc.start}",
        ) from None
    if not text.strip():
        raise invalid_field(field_name, "is empty", f"{field_name} is empty: send the message to classify")
    if len(text) > limit:
        raise invalid_field(
            field_name,
            f"longer than {limit} characters",
            f"{field_name} has {len(text)} characters; the maximum is {limit} (MAX_TEXT_LENGTH)",
        )
