"""The service's settings: read from the environment by pydantic-settings, never at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.spamd import SpamdSettings
from spamfilter.config import Channel

DEFAULT_SMS_MODEL_URI = "bundle/sms"
DEFAULT_EMAIL_MODEL_URI = "bundle/email"


class ApiSettings(BaseSettings):
    """Where each channel's model comes from, who may call, what gets logged and how the server runs."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # The SMS model: a bundle directory written by `spamfilter export` (bundle/sms), or a registry URI such
    # as `models:/spam-classifier@champion` (resolved through MLFLOW_TRACKING_URI); empty turns SMS off.
    model_uri: str = Field(DEFAULT_SMS_MODEL_URI, alias="MODEL_URI")
    # The e-mail model, the same way (`models:/spam-classifier-email@champion`); empty turns e-mail off.
    # Unset, the e-mail channel serves bundle/email when that directory exists at start-up and is off
    # otherwise, so a deployment that exports only the SMS model needs no setting to serve SMS alone.
    email_model_uri: str | None = Field(None, alias="EMAIL_MODEL_URI")
    # Seconds between checks of each model source for a new version (the alias's version, or the
    # bundle's metadata); 0 turns polling off. POST /admin/reload works either way.
    model_poll_interval: float = Field(0.0, ge=0.0, alias="MODEL_POLL_INTERVAL")

    # Optional: when set, the /predict endpoints and /feedback need `X-API-Key: <key>`.
    api_key: SecretStr | None = Field(None, alias="API_KEY")
    # The key for /admin/*; when unset, API_KEY serves for admin too; with neither, admin is off.
    admin_api_key: SecretStr | None = Field(None, alias="ADMIN_API_KEY")

    @field_validator("api_key", "admin_api_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        # `API_KEY=` (as .env.example and the compose files leave it) means no key, not an empty one no
        # client could send.
        return None if isinstance(value, str) and not value.strip() else value

    # Prediction log for the monitor: a SQLAlchemy URL; empty turns the log off.
    prediction_log_url: str = Field("sqlite:///predictions.db", alias="PREDICTION_LOG_URL")
    # Also store the text (SMS) or the raw message (e-mail) itself.
    log_text: bool = Field(False, alias="LOG_TEXT")
    prediction_log_flush_interval: float = Field(0.5, gt=0.0, alias="PREDICTION_LOG_FLUSH_INTERVAL")
    # Rows per insert: small batches hold the GIL briefly, so requests are not stalled behind a write.
    prediction_log_max_batch: int = Field(250, ge=1, alias="PREDICTION_LOG_MAX_BATCH")
    # Records waiting for the database beyond this are dropped (and counted), so a dead
    # database never exhausts memory.
    prediction_log_max_pending: int = Field(100_000, ge=1, alias="PREDICTION_LOG_MAX_PENDING")

    max_text_length: int = Field(5000, ge=1, alias="MAX_TEXT_LENGTH")
    max_batch_size: int = Field(1000, ge=1, alias="MAX_BATCH_SIZE")
    # Bytes of one raw e-mail (POST /predict/email's body; the spamd listener's limit unless
    # SPAMD_MAX_MESSAGE_BYTES says otherwise); the mail parser's default limit.
    email_max_bytes: int = Field(1_048_576, ge=1, alias="EMAIL_MAX_BYTES")
    # Concurrent single predictions are scored together, up to this many per model call.
    micro_batch_max: int = Field(64, ge=1, alias="MICRO_BATCH_MAX")

    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, ge=0, le=65535, alias="PORT")
    workers: int = Field(1, ge=1, alias="WORKERS")
    log_level: str = Field("info", alias="LOG_LEVEL")
    # One log line per request costs throughput; /metrics counts requests either way.
    access_log: bool = Field(False, alias="ACCESS_LOG")
    # Shared by the worker processes of one server (set by `python -m api`): the reload signal
    # and Prometheus' multiprocess files live here.
    run_dir: str | None = Field(None, alias="API_RUN_DIR")

    # The spamd protocol listener (SpamAssassin's spamc and the MTAs that use it) over the e-mail model:
    # off unless SPAMD_PORT is set. Every worker listens on the same port (SO_REUSEPORT).
    spamd_port: int | None = Field(None, ge=0, le=65535, alias="SPAMD_PORT")
    spamd_host: str | None = Field(None, alias="SPAMD_HOST")  # default: HOST
    # TELL (spamc -L spam|ham, learning) records the true label for the monitor; off by default, as
    # spamd's --allow-tell: anyone who can reach the port could otherwise label traffic.
    spamd_allow_tell: bool = Field(False, alias="SPAMD_ALLOW_TELL")
    # The score a message needs to be spam, as spamc sees it (one decimal; see api/spamd_protocol.py).
    spamd_required_score: float = Field(5.0, allow_inf_nan=False, alias="SPAMD_REQUIRED_SCORE")
    spamd_max_message_bytes: int | None = Field(None, ge=1, alias="SPAMD_MAX_MESSAGE_BYTES")  # default: EMAIL_MAX_BYTES
    # spamd's --timeout-tcp (the longest silence while reading) and --timeout-child (reading and scoring).
    spamd_read_timeout: float = Field(30.0, gt=0.0, allow_inf_nan=False, alias="SPAMD_READ_TIMEOUT")
    spamd_request_timeout: float = Field(300.0, gt=0.0, allow_inf_nan=False, alias="SPAMD_REQUEST_TIMEOUT")
    # spamd's --max-children: requests scored at once per worker; more open connections than
    # SPAMD_MAX_CONNECTIONS get EX_TEMPFAIL at once.
    spamd_max_children: int = Field(5, ge=1, alias="SPAMD_MAX_CHILDREN")
    spamd_max_connections: int = Field(64, ge=1, alias="SPAMD_MAX_CONNECTIONS")

    @field_validator("spamd_port", "spamd_max_message_bytes", "spamd_host", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `SPAMD_PORT=` in a compose file or .env means "not set", not "not a number". (An empty
        # EMAIL_MODEL_URI is different: it turns the channel off.)
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("spamd_required_score")
    @classmethod
    def _one_decimal(cls, value: float) -> float:
        if round(value, 1) != value:
            raise ValueError(f"must have one decimal at most (the protocol carries one), got {value!r}")
        return value

    @model_validator(mode="after")
    def _connections_cover_children(self) -> ApiSettings:
        if self.spamd_max_connections < self.spamd_max_children:
            raise ValueError(
                f"SPAMD_MAX_CONNECTIONS ({self.spamd_max_connections}) must be at least "
                f"SPAMD_MAX_CHILDREN ({self.spamd_max_children})"
            )
        return self

    def admin_key(self) -> SecretStr | None:
        return self.admin_api_key or self.api_key

    def model_sources(self) -> dict[Channel, str]:
        """The channels this service serves, each with its model's source, SMS first."""
        sources: dict[Channel, str] = {}
        if self.model_uri:
            sources["sms"] = self.model_uri
        if self.email_model_uri is None:
            found = Path(DEFAULT_EMAIL_MODEL_URI)
            if found.is_dir():
                sources["email"] = str(found.resolve())  # the directory found now, wherever the process goes
        elif self.email_model_uri:
            sources["email"] = self.email_model_uri
        return sources

    def spamd_settings(self) -> SpamdSettings:
        """The spamd listener's knobs (validated above, so this never raises)."""
        return SpamdSettings(
            required_score=self.spamd_required_score,
            max_message_bytes=self.spamd_max_message_bytes or self.email_max_bytes,
            read_timeout=self.spamd_read_timeout,
            request_timeout=self.spamd_request_timeout,
            max_children=self.spamd_max_children,
            max_connections=self.spamd_max_connections,
        )

    @property
    def max_body_bytes(self) -> int:
        # Worst case of a full batch of maximal texts, 12 bytes per character (an escaped surrogate pair), plus slack.
        return self.max_batch_size * (self.max_text_length * 12 + 16) + 4096
