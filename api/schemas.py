"""Request and response bodies. Types are strict (a number is not a text); the limits that come
from settings (text length, batch size) are checked in `api.deps` so errors can name the item."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from spamfilter.config import Channel
from spamfilter.labels import Label


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_Body):
    text: StrictStr = Field(description="The message to classify (1 to MAX_TEXT_LENGTH characters).")

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "WINNER!! Claim your £1000 prize now"}]}
    )


class BatchPredictRequest(_Body):
    texts: list[StrictStr] = Field(description="1 to MAX_BATCH_SIZE messages, each 1 to MAX_TEXT_LENGTH characters.")


class Prediction(BaseModel):
    label: Label
    spam_probability: float
    model_version: str
    prediction_id: str | None = Field(None, description="Give it to POST /feedback; null when the log is off.")


class EmailSummary(BaseModel):
    subject: str = Field(description="The decoded subject (cut to 200 characters).")
    sender_domain: str = Field(description="The domain of the From address; empty when there is none.")
    url_count: int = Field(description="Distinct web links in the text and HTML parts.")
    attachment_count: int = Field(description="Parts that are not body text.")


class EmailPrediction(BaseModel):
    label: Label
    spam_probability: float
    channel: Literal["email"] = "email"
    model_version: str
    prediction_id: str | None = Field(None, description="Give it to POST /feedback; null when the log is off.")
    summary: EmailSummary


class BatchPrediction(BaseModel):
    predictions: list[Prediction]
    model_version: str


class FeedbackRequest(_Body):
    prediction_id: StrictStr = Field(min_length=1, max_length=36)
    label: Label = Field(description="The true label of the predicted message.")


class FeedbackResponse(BaseModel):
    status: Literal["recorded"] = "recorded"
    prediction_id: str


class ErrorResponse(BaseModel):
    error: str = Field(description="A short machine-readable code.")
    message: str = Field(description="What is wrong, for people.")
    details: list[dict[str, Any]] = Field(default_factory=list, description="One entry per bad field.")


class ChannelModel(BaseModel):
    """The model serving one channel."""

    channel: Channel
    name: str
    version: str
    alias: str | None
    run_id: str
    source: str
    metrics: dict[str, float]
    threshold: float
    trained_at: str
    data_fingerprint: dict[str, Any]
    loaded_at: str
    scorer: str


class ModelResponse(ChannelModel):
    """The top-level fields describe one channel's model (`channel`: SMS when it serves), as before there
    were channels; `channels` has every configured channel's, null while it has none."""

    channels: dict[Channel, ChannelModel | None]


class ReloadResponse(BaseModel):
    ok: bool
    swapped: bool
    version: str | None
    previous_version: str | None
    error: str | None = None


class ChannelsReloadResponse(ReloadResponse):
    """A reload on a server of several channels: the top-level fields are the first reloaded channel's (SMS
    unless `?channel=` chose another); `channels` has each reloaded channel's outcome."""

    channels: dict[Channel, ReloadResponse]
