"""Scoring: one SMS text, a batch of texts, one raw e-mail, and feedback on a past prediction."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import State, channel_service, check_text, current_model, require_api_key
from api.email_channel import SUMMARY_SUBJECT_CHARS, score_email
from api.errors import ApiError, invalid_field
from api.schemas import (
    CHANNELS_EXTENSION,
    BatchPrediction,
    BatchPredictRequest,
    EmailPrediction,
    EmailSummary,
    FeedbackRequest,
    FeedbackResponse,
    Prediction,
    PredictRequest,
    email_pattern,
    error_responses,
)
from spamfilter.mail import MailError
from spamfilter.monitoring import predlog

EMAIL_PATH = "/predict/email"
# The media types a posted e-mail may be declared as: the message's own (RFC 2046), or plain bytes for
# clients that send a file as such.
EMAIL_MEDIA_TYPES = ("message/rfc822", "application/octet-stream")
# The body's schema: a string (the raw bytes) the parser takes for an e-mail. Its size limit is a setting,
# which api.openapi adds (`maxLength`, in bytes).
EMAIL_BODY_SCHEMA = {
    "type": "string",
    "pattern": email_pattern(),
    "description": "The raw message, 8-bit bytes as they are (`maxLength` counts bytes): a header block holding "
    "an e-mail header field (From, To, Subject, Date, Message-ID, Received, ...; the parser looks in the first "
    "64 KiB), then the body.",
}

FEEDBACK_PATH = "/feedback"
_WWW_AUTHENTICATE = {"WWW-Authenticate": "ApiKey"}
_RETRY_AFTER = {"Retry-After": "Seconds to wait before trying again"}
# Every status code each route can answer in some configuration; api.openapi drops the ones this server's
# settings rule out (401 without a key, 404 while the channel serves, ...). 413 comes from api.limits
# (a body over the limit), 400 from api.errors (a JSON body that is not JSON, or not UTF-8).
SMS_ERRORS = error_responses(
    {
        400: "Body is not valid JSON or not UTF-8",
        401: "Missing or wrong API key",
        404: "This server does not serve the SMS channel (MODEL_URI is empty)",
        413: "Body too large",
        422: "Invalid field: wrong type, empty, too long, too many texts",
        503: "No SMS model loaded yet",
    },
    {401: _WWW_AUTHENTICATE, 503: _RETRY_AFTER},
)
EMAIL_ERRORS = error_responses(
    {
        401: "Missing or wrong API key",
        404: "This server does not serve the e-mail channel",
        413: "Message larger than EMAIL_MAX_BYTES",
        415: "Body not declared as message/rfc822 (or application/octet-stream)",
        422: "Not an e-mail, or over a parse limit (MIME parts, nesting, decoded size)",
        503: "No e-mail model loaded yet",
    },
    {401: _WWW_AUTHENTICATE, 503: _RETRY_AFTER},
)
FEEDBACK_ERRORS = error_responses(
    {
        400: "Body is not valid JSON or not UTF-8",
        401: "Missing or wrong API key",
        404: "No logged prediction has this id",
        413: "Body too large",
        422: "Invalid field: wrong type, unknown label",
        503: "The prediction log is off (PREDICTION_LOG_URL is empty)",
    },
    {401: _WWW_AUTHENTICATE},
)

router = APIRouter(tags=["predict"], dependencies=[Depends(require_api_key)])


@router.post(
    "/predict",
    summary="Classify one message",
    responses=SMS_ERRORS,
    openapi_extra={CHANNELS_EXTENSION: ["sms"]},
)
async def predict(body: PredictRequest, state: State) -> Prediction:
    text = body.text
    check_text(text, state.settings.max_text_length, "text")
    loaded = current_model(state, "sms")  # taken once: a swap during this request does not change it
    batcher = channel_service(state, "sms").batcher
    assert batcher is not None  # the SMS channel always has one
    probability = await batcher.score(loaded, text)
    (label,) = loaded.labels_of([probability])
    state.metrics.predicted("sms", label)
    writer = state.writer
    prediction_id = writer.record(loaded.info.version, text, probability, label) if writer else None
    return Prediction(
        label=label, spam_probability=probability, model_version=loaded.info.version, prediction_id=prediction_id
    )


@router.post(
    "/predict/batch",
    summary="Classify up to MAX_BATCH_SIZE messages; results in input order",
    responses=SMS_ERRORS,
    openapi_extra={CHANNELS_EXTENSION: ["sms"]},
)
async def predict_batch(body: BatchPredictRequest, state: State) -> BatchPrediction:
    texts = body.texts
    settings = state.settings
    if not texts:
        raise invalid_field("texts", "is empty", "texts is empty: send 1 or more messages")
    if len(texts) > settings.max_batch_size:
        raise invalid_field(
            "texts",
            f"more than {settings.max_batch_size} items",
            f"texts has {len(texts)} items; the maximum is {settings.max_batch_size} (MAX_BATCH_SIZE)",
        )
    for i, text in enumerate(texts):
        check_text(text, settings.max_text_length, f"texts[{i}]")
    loaded = current_model(state, "sms")
    # Off the event loop: a large batch must not stall the single requests behind it.
    probabilities = (await run_in_threadpool(loaded.score, texts)).tolist()
    labels = loaded.labels_of(probabilities)
    spam = labels.count("spam")
    state.metrics.predicted("sms", "spam", spam)
    state.metrics.predicted("sms", "ham", len(labels) - spam)
    version = loaded.info.version
    writer = state.writer
    ids = [
        writer.record(version, text, probability, label) if writer else None
        for text, probability, label in zip(texts, probabilities, labels, strict=True)
    ]
    return BatchPrediction(
        predictions=[
            Prediction(label=label, spam_probability=probability, model_version=version, prediction_id=prediction_id)
            for probability, label, prediction_id in zip(probabilities, labels, ids, strict=True)
        ],
        model_version=version,
    )


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@router.post(
    EMAIL_PATH,
    summary="Classify one raw e-mail (RFC 822 bytes as received)",
    responses=EMAIL_ERRORS,
    openapi_extra={
        CHANNELS_EXTENSION: ["email"],
        "requestBody": {
            "required": True,
            "description": "The message as received: headers, blank line, body; at most EMAIL_MAX_BYTES bytes.",
            "content": {media: {"schema": EMAIL_BODY_SCHEMA} for media in EMAIL_MEDIA_TYPES},
        },
    },
)
async def predict_email(request: Request, state: State) -> EmailPrediction:
    service = channel_service(state, "email")
    media_type = _media_type(request)
    if media_type not in EMAIL_MEDIA_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the raw message as the body with Content-Type: message/rfc822 (got {media_type or 'none'})",
        )
    loaded = current_model(state, "email")  # taken once: a swap during this request does not change it
    raw = await request.body()  # capped at EMAIL_MAX_BYTES while it streams in (api/limits.py)
    try:
        # Off the event loop: parsing a large MIME message takes milliseconds.
        scored = await run_in_threadpool(score_email, state, service, loaded, raw)
    except MailError as exc:
        raise invalid_field("body", str(exc), f"the body is not an e-mail this service accepts: {exc}") from None
    parsed = scored.parsed
    subject = parsed.subject
    return EmailPrediction(
        label=scored.label,
        spam_probability=scored.spam_probability,
        model_version=loaded.info.version,
        prediction_id=scored.prediction_id,
        summary=EmailSummary(
            subject=subject if len(subject) <= SUMMARY_SUBJECT_CHARS else subject[: SUMMARY_SUBJECT_CHARS - 1] + "…",
            sender_domain=parsed.sender_domain,
            url_count=len(parsed.urls),
            attachment_count=len(parsed.attachments),
        ),
    )


@router.post(
    FEEDBACK_PATH,
    status_code=201,
    summary="Record the true label of a logged prediction",
    responses=FEEDBACK_ERRORS,
)
def feedback(body: FeedbackRequest, state: State) -> FeedbackResponse:
    writer = state.writer
    if writer is None:
        raise ApiError(503, "unavailable", "the prediction log is off (PREDICTION_LOG_URL is empty)")
    prediction_id = body.prediction_id
    if prediction_id in writer.pending_ids():
        writer.flush()
    channel = writer.prediction_channel(prediction_id)
    if channel is None:
        # Another worker may still hold it in its queue: wait one flush interval.
        time.sleep(writer.flush_interval + 0.25)
        channel = writer.prediction_channel(prediction_id)
        if channel is None:
            raise ApiError(
                404,
                "not_found",
                f"no logged prediction has id {prediction_id!r}",
                [{"field": "prediction_id", "problem": "unknown"}],
            )
    predlog.insert_feedback(writer.engine, prediction_id, body.label, channel=channel)
    return FeedbackResponse(prediction_id=prediction_id)
