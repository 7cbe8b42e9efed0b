"""Request and response bodies, and what the OpenAPI document says of them. Types are strict (a number is
not a text); the limits that come from settings (text length, batch size) are checked in `api.deps` so
errors can name the item, and stated in the document by `api.openapi`. The limits stated here are for the
document only (`json_schema_extra`), so that validation keeps the service's own error messages.

The patterns are written for both regular-expression dialects that read them: ECMA 262 (JSON Schema's) and
Python's `re` (what Hypothesis-based tools such as schemathesis generate from); so they spell out character
classes instead of `\\s`, whose members the two dialects disagree on, and use no flags.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from spamfilter.config import Channel
from spamfilter.labels import Label

# An operation's extension in the OpenAPI document: the channels it serves. It answers 404 while one is off.
CHANNELS_EXTENSION = "x-channels"

# The characters `str.isspace` (and so `str.strip`, which `api.deps.check_text` uses) counts as whitespace;
# tests/api/test_openapi.py checks this against every code point.
WHITESPACE_CLASS = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A text holding at least one character that is not whitespace: what `check_text` does not refuse as empty.
# Anchored and spelt out to the end (`[\s\S]`: any character, in either dialect) because generators find
# strings for it far faster than for the bare `[^...]`.
NON_BLANK_PATTERN = rf"^[{WHITESPACE_CLASS}]*[^{WHITESPACE_CLASS}][\s\S]*$"
TEXT_SCHEMA: dict[str, Any] = {"minLength": 1, "pattern": NON_BLANK_PATTERN}

# The header fields that make a header block an e-mail's (`spamfilter.mail.looks_like_email`; the tests
# check the two agree).
EMAIL_HEADER_FIELDS = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Received",
    "Return-Path",
    "Delivered-To",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
)


def _any_case(name: str) -> str:
    # JSON Schema patterns have no flags: each letter matches either case (the parser lower-cases ASCII).
    return "".join(f"[{char.upper()}{char.lower()}]" if char.isalpha() else char for char in name)


def email_pattern(fields: Collection[str] = EMAIL_HEADER_FIELDS) -> str:
    """A raw message that `spamfilter.mail.looks_like_email` accepts (as far as its first 64 KiB go): an
    optional byte-order mark, blank lines and mbox "From " line, then a header block (up to the first empty
    line) without NUL characters, whose first line is a header field and one of whose lines starts with one
    of `fields`, in any case."""
    known = "(?:" + "|".join(_any_case(name) for name in fields) + "):"
    line_rest = r"[^\x00\n]*"  # the rest of a header line: no NUL, up to its newline
    next_line = r"\n(?!\r?\n)"  # a newline that does not end the header block (an empty line does)
    return (
        r"^\uFEFF?[\r\n]*(?:From [^\n]*\n)?"
        # The first field is a known one, or a later line starts with one. The lines before that one do
        # not, so there is one way to match and the expression runs in linear time.
        rf"(?:{known}{line_rest}|[!-9;-~]+:{line_rest}(?:{next_line}(?!{known}){line_rest})*\n{known}{line_rest})"
        rf"(?:{next_line}{line_rest})*"
        r"(?:\n\r?\n[\s\S]*)?$"
    )


def error_responses(
    descriptions: Mapping[int, str], headers: Mapping[int, Mapping[str, str]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: each status answers the one error body (`ErrorResponse`, below) with the
    headers it always carries (name → description)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status, description in descriptions.items():
        response: dict[str, Any] = {"model": ErrorResponse, "description": description}
        if headers and status in headers:
            response["headers"] = {
                name: {"description": text, "required": True, "schema": {"type": "string"}}
                for name, text in headers[status].items()
            }
        responses[status] = response
    return responses


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_Body):
    text: StrictStr = Field(
        description="The message to classify: 1 to MAX_TEXT_LENGTH characters, not all whitespace.",
        json_schema_extra=TEXT_SCHEMA,
    )

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "WINNER!! Claim your £1000 prize now"}]}
    )


class BatchPredictRequest(_Body):
    texts: list[StrictStr] = Field(
        description="1 to MAX_BATCH_SIZE messages, each 1 to MAX_TEXT_LENGTH characters, not all whitespace.",
        json_schema_extra={"minItems": 1, "items": {"type": "string", **TEXT_SCHEMA}},
    )


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


class ChannelReadiness(BaseModel):
    """One channel's readiness (`api.routes.ops.readiness`)."""

    ready: bool = Field(description="A model serves the channel.")
    status: Literal["ready", "degraded", "loading", "failed"] = Field(
        description="ready; degraded: serving, the last reload failed; loading: no model yet; failed: no model, "
        "loading it failed."
    )
    model_version: str | None
    model_source: str
    loaded_at: str | None
    last_reload_error: str | None
    last_reload_error_at: str | None
    reloads: int
    failed_reloads: int


class PredictionLogState(BaseModel):
    connected: bool = Field(description="False from a failed write until the next one succeeds.")
    pending: int = Field(description="Records waiting for the database.")
    dropped: int = Field(description="Records dropped because too many were waiting.")
    last_error: str | None


class ReadyResponse(ChannelReadiness):
    """The top-level fields describe one channel (SMS when it serves), as before there were channels; on a
    server of several channels, `ready` and `status` are the server's (ready while one channel serves;
    degraded when another does not), `channel` names the channel the other fields describe and `channels` has
    each one's."""

    channel: Channel | None = Field(None, description="Only on a server of several channels.")
    channels: dict[Channel, ChannelReadiness] | None = Field(None, description="Only on a server of several channels.")
    prediction_log: PredictionLogState | None = Field(description="null when the log is off.")
