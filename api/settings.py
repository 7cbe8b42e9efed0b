"""The service's settings: read from the environment by pydantic-settings, never at import time."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Where the model comes from, who may call, what gets logged and how the server runs."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # A bundle directory written by `spamfilter export`, or a registry URI such as
    # `models:/spam-classifier@champion` (resolved through MLFLOW_TRACKING_URI).
    model_uri: str = Field("bundle", alias="MODEL_URI")
    # Seconds between checks of the model source for a new version (the alias's version, or the
    # bundle's metadata); 0 turns polling off. POST /admin/reload works either way.
    model_poll_interval: float = Field(0.0, ge=0.0, alias="MODEL_POLL_INTERVAL")

    # Optional: when set, /predict, /predict/batch and /feedback need `X-API-Key: <key>`.
    api_key: SecretStr | None = Field(None, alias="API_KEY")
    # The key for /admin/*; when unset, API_KEY serves for admin too; with neither, admin is off.
    admin_api_key: SecretStr | None = Field(None, alias="ADMIN_API_KEY")

    # Prediction log for the monitor: a SQLAlchemy URL; empty turns the log off.
    prediction_log_url: str = Field("sqlite:///predictions.db", alias="PREDICTION_LOG_URL")
    log_text: bool = Field(False, alias="LOG_TEXT")
    prediction_log_flush_interval: float = Field(0.5, gt=0.0, alias="PREDICTION_LOG_FLUSH_INTERVAL")
    # Rows per insert: small batches hold the GIL briefly, so requests are not stalled behind a write.
    prediction_log_max_batch: int = Field(250, ge=1, alias="PREDICTION_LOG_MAX_BATCH")
    # Records waiting for the database beyond this are dropped (and counted), so a dead
    # database never exhausts memory.
    prediction_log_max_pending: int = Field(100_000, ge=1, alias="PREDICTION_LOG_MAX_PENDING")

    max_text_length: int = Field(5000, ge=1, alias="MAX_TEXT_LENGTH")
    max_batch_size: int = Field(1000, ge=1, alias="MAX_BATCH_SIZE")
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

    def admin_key(self) -> SecretStr | None:
        return self.admin_api_key or self.api_key

    @property
    def max_body_bytes(self) -> int:
        # Worst case of a full batch of maximal texts, 12 bytes per character (an escaped surrogate pair), plus slack.
        return self.max_batch_size * (self.max_text_length * 12 + 16) + 4096
