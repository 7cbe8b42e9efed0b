"""Scoring: one text, a batch of texts, and feedback on a past prediction."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from api.deps import State, check_text, current_model, require_api_key
from api.errors import ApiError, invalid_field
from api.schemas import (
    BatchPrediction,
    BatchPredictRequest,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    Prediction,
    PredictRequest,
)
from spamfilter.monitoring import predlog

ERRORS = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Body is not valid JSON or not UTF-8",
        401: "Missing or wrong API key",
        413: "Body too large",
        422: "Invalid field: wrong type, empty, too long, too many texts",
        503: "No model loaded yet",
    }.items()
}

router = APIRouter(tags=["predict"], dependencies=[Depends(require_api_key)], responses=ERRORS)  # type: ignore[arg-type]


@router.post("/predict", summary="Classify one message")
async def predict(body: PredictRequest, state: State) -> Prediction:
    text = body.text
    check_text(text, state.settings.max_text_length, "text")
    loaded = current_model(state)  # taken once: a swap during this request does not change it
    probability = await state.batcher.score(loaded, text)
    (label,) = loaded.labels_of([probability])
    state.metrics.predictions.labels(label).inc()
    writer = state.writer
    prediction_id = writer.record(loaded.info.version, text, probability, label) if writer else None
    return Prediction(
        label=label, spam_probability=probability, model_version=loaded.info.version, prediction_id=prediction_id
    )


@router.post("/predict/batch", summary="Classify up to MAX_BATCH_SIZE messages; results in input order")
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
    loaded = current_model(state)
    # Off the event loop: a large batch must not stall the single requests behind it.
    probabilities = (await run_in_threadpool(loaded.score, texts)).tolist()
    labels = loaded.labels_of(probabilities)
    spam = labels.count("spam")
    state.metrics.predictions.labels("spam").inc(spam)
    state.metrics.predictions.labels("ham").inc(len(labels) - spam)
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


@router.post("/feedback", status_code=201, summary="Record the true label of a logged prediction")
def feedback(body: FeedbackRequest, state: State) -> FeedbackResponse:
    writer = state.writer
    if writer is None:
        raise ApiError(503, "unavailable", "the prediction log is off (PREDICTION_LOG_URL is empty)")
    prediction_id = body.prediction_id
    if prediction_id in writer.pending_ids():
        writer.flush()
    if not writer.prediction_exists(prediction_id):
        # Another worker may still hold it in its queue: wait one flush interval.
        time.sleep(writer.flush_interval + 0.25)
        if not writer.prediction_exists(prediction_id):
            raise ApiError(
                404,
                "not_found",
                f"no logged prediction has id {prediction_id!r}",
                [{"field": "prediction_id", "problem": "unknown"}],
            )
    predlog.insert_feedback(writer.engine, prediction_id, body.label)
    return FeedbackResponse(prediction_id=prediction_id)
