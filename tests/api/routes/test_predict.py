"""api/routes/predict.py in-process: /predict, /predict/batch and /feedback — answers, the prediction log,
input validation with its error bodies, body limits and the API key."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.schemas import BatchPrediction, FeedbackResponse, Prediction
from spamfilter.modeling.pipeline import spam_probability
from spamfilter.monitoring.predlog import text_sha256
from tests.api.routes.conftest import (
    Service,
    SharedService,
    StartService,
    error_body,
    metric_samples,
    query_log,
    wait_for_first_load,
)

SPAM_TEXT = "WINNER!! You have won a £1000 prize. Call 09061234567 now to claim"
HAM_TEXT = "Are we still meeting for lunch at 1? I'll be at the station"
MORE_SPAM = "FREE entry to win a holiday! Text WIN to 80121 now. T&Cs apply"
MORE_HAM = "Can you pick up some milk on your way back?"
KEY = "route-test-key"
# Small limits keep the over-limit bodies small.
LIMITS = {"MAX_TEXT_LENGTH": "20", "MAX_BATCH_SIZE": "3"}
PREDICTION_FIELDS = set(Prediction.model_fields)


@pytest.fixture
def limited(shared_service: SharedService) -> Service:
    return shared_service(**LIMITS)


def check_prediction(item: dict[str, Any], text: str, model: Any) -> None:
    """One answer: exactly the documented fields, the served model's probability, the label its threshold gives."""
    assert set(item) == PREDICTION_FIELDS, item
    Prediction.model_validate(item)
    assert item["spam_probability"] == spam_probability(model, [text])[0]
    assert item["model_version"] == "1"
    uuid.UUID(item["prediction_id"])  # the log's id, to hand back to /feedback


def test_predict_answers_with_the_served_models_probability_label_and_version(
    client: TestClient, default_model: Any
) -> None:
    answers = {}
    for text in (SPAM_TEXT, HAM_TEXT):
        response = client.post("/predict", json={"text": text})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        check_prediction(response.json(), text, default_model)
        answers[text] = response.json()
    assert answers[SPAM_TEXT]["label"] == "spam"
    assert answers[HAM_TEXT]["label"] == "ham"
    assert answers[SPAM_TEXT]["prediction_id"] != answers[HAM_TEXT]["prediction_id"]


def test_predict_labels_by_the_models_threshold(client: TestClient) -> None:
    threshold = client.get("/model").json()["threshold"]
    for text in (SPAM_TEXT, HAM_TEXT, MORE_SPAM, MORE_HAM):
        answer = client.post("/predict", json={"text": text}).json()
        assert answer["label"] == ("spam" if answer["spam_probability"] >= threshold else "ham"), answer


def test_batch_answers_each_text_in_input_order(client: TestClient, default_model: Any) -> None:
    texts = [SPAM_TEXT, HAM_TEXT, MORE_SPAM, MORE_HAM, SPAM_TEXT]
    response = client.post("/predict/batch", json={"texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == set(BatchPrediction.model_fields)
    BatchPrediction.model_validate(body)
    assert body["model_version"] == "1"
    assert len(body["predictions"]) == len(texts)
    for item, text in zip(body["predictions"], texts, strict=True):
        check_prediction(item, text, default_model)
    assert [item["label"] for item in body["predictions"]][:2] == ["spam", "ham"]
    # The same text twice is two predictions, each with its own log row.
    assert len({item["prediction_id"] for item in body["predictions"]}) == len(texts)


def test_concurrent_predictions_scored_together_each_get_their_own_answer(service: Service, default_model: Any) -> None:
    texts = [SPAM_TEXT, HAM_TEXT, MORE_SPAM, MORE_HAM, "See you at the library around 7, bring the charger"]
    expected = spam_probability(default_model, texts).tolist()
    assert len(set(expected)) == len(texts)  # else a mix-up could not show

    async def predict_together() -> list[Any]:
        # On the app's own event loop, so the requests arrive together at its micro-batcher.
        transport = httpx.ASGITransport(app=service.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
            responses = await asyncio.gather(*(client.post("/predict", json={"text": text}) for text in texts))
        return [response.json() for response in responses]

    portal = service.client.portal
    assert portal is not None  # inside the TestClient's `with`
    answers = portal.call(predict_together)
    assert [answer["spam_probability"] for answer in answers] == expected
    assert len({answer["prediction_id"] for answer in answers}) == len(texts)
    samples = metric_samples(service.client.get("/metrics").text)
    # Fewer model calls than requests: the test did exercise scoring several requests in one call.
    assert samples[("spam_api_micro_batch_size_count", frozenset())] < len(texts)
    assert samples[("spam_api_micro_batch_size_sum", frozenset())] == len(texts)


@pytest.mark.parametrize("log_text", [False, True], ids=["hash-only", "LOG_TEXT"])
def test_predictions_land_in_the_prediction_log(start_service: StartService, log_text: bool) -> None:
    with start_service(LOG_TEXT=str(log_text).lower()) as running:
        single = running.client.post("/predict", json={"text": SPAM_TEXT}).json()
        batch = running.client.post("/predict/batch", json={"texts": [HAM_TEXT, MORE_SPAM]}).json()["predictions"]
    # Leaving the client ran the shutdown, which flushes the writer.
    answers = {single["prediction_id"]: (SPAM_TEXT, single)} | {
        item["prediction_id"]: (text, item) for text, item in zip([HAM_TEXT, MORE_SPAM], batch, strict=True)
    }
    rows = {row["id"]: row for row in query_log(running.prediction_log, "SELECT * FROM predictions")}
    assert set(rows) == set(answers)
    for prediction_id, (text, answer) in answers.items():
        row = rows[prediction_id]
        assert row["model_version"] == "1"
        assert row["label"] == answer["label"]
        assert row["spam_probability"] == answer["spam_probability"]
        assert row["text_length"] == len(text)
        assert row["text_sha256"] == text_sha256(text)
        assert row["text"] == (text if log_text else None)


def test_with_the_log_off_predictions_have_no_id_and_feedback_is_unavailable(start_service: StartService) -> None:
    with start_service(PREDICTION_LOG_URL="") as running:
        answer = running.client.post("/predict", json={"text": SPAM_TEXT})
        assert answer.status_code == 200 and answer.json()["prediction_id"] is None, answer.text
        batch = running.client.post("/predict/batch", json={"texts": [SPAM_TEXT, HAM_TEXT]}).json()
        assert [item["prediction_id"] for item in batch["predictions"]] == [None, None]
        feedback = running.client.post("/feedback", json={"prediction_id": str(uuid.uuid4()), "label": "ham"})
        body = error_body(feedback, 503, "unavailable")
        assert "PREDICTION_LOG_URL" in body["message"] and body["details"] == []
    assert not running.prediction_log.exists()


# --- feedback -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("true_label", ["spam", "ham"])
def test_feedback_on_a_logged_prediction_is_recorded(default_service: Service, true_label: str) -> None:
    prediction_id = default_service.client.post("/predict", json={"text": SPAM_TEXT}).json()["prediction_id"]
    # Straight away: the writer may still hold the prediction in its queue.
    response = default_service.client.post("/feedback", json={"prediction_id": prediction_id, "label": true_label})
    assert response.status_code == 201, response.text
    assert response.json() == {"status": "recorded", "prediction_id": prediction_id}
    FeedbackResponse.model_validate(response.json())
    rows = query_log(
        default_service.prediction_log, "SELECT true_label FROM feedback WHERE prediction_id = ?", prediction_id
    )
    assert [tuple(row) for row in rows] == [(true_label,)]


def test_feedback_on_an_unknown_prediction_is_404_and_records_nothing(default_service: Service) -> None:
    default_service.client.post("/predict", json={"text": HAM_TEXT})  # the log is not empty
    unknown = str(uuid.uuid4())
    response = default_service.client.post("/feedback", json={"prediction_id": unknown, "label": "spam"})
    body = error_body(response, 404, "not_found")
    assert unknown in body["message"]
    assert body["details"] == [{"field": "prediction_id", "problem": "unknown"}]
    assert query_log(default_service.prediction_log, "SELECT * FROM feedback WHERE prediction_id = ?", unknown) == []


# --- validation -----------------------------------------------------------------------------------------------

BAD_BODIES = [
    pytest.param("/predict", {"text": ""}, "text", "is empty", id="empty"),
    pytest.param("/predict", {"text": " \n\t "}, "text", "is empty", id="blank"),
    pytest.param("/predict", {"text": "x" * 21}, "text", "longer than 20 characters", id="too-long"),
    pytest.param("/predict", {"text": 123}, "text", "must be a string, got int", id="number"),
    pytest.param("/predict", {"text": True}, "text", "must be a string, got bool", id="bool"),
    pytest.param("/predict", {"text": None}, "text", "must be a string, got null", id="null"),
    pytest.param("/predict", {"text": ["hi"]}, "text", "must be a string, got list", id="list"),
    pytest.param("/predict", {}, "text", "is required", id="missing"),
    pytest.param("/predict", {"text": "hi", "extra": 1}, "extra", "is not a known field", id="extra-field"),
    pytest.param("/predict", ["hi"], "body", "must be a JSON object, got list", id="array-body"),
    pytest.param("/predict", "hi", "body", "must be a JSON object, got str", id="string-body"),
    pytest.param("/predict/batch", {"texts": []}, "texts", "is empty", id="batch-empty"),
    pytest.param("/predict/batch", {"texts": ["a"] * 4}, "texts", "more than 3 items", id="batch-too-many"),
    pytest.param("/predict/batch", {"texts": "hi"}, "texts", "must be a list of strings, got str", id="batch-str"),
    pytest.param("/predict/batch", {"texts": ["ok", 5]}, "texts[1]", "must be a string, got int", id="batch-item"),
    pytest.param("/predict/batch", {"texts": ["ok", ""]}, "texts[1]", "is empty", id="batch-item-empty"),
    pytest.param(
        "/predict/batch", {"texts": ["ok", "x" * 21]}, "texts[1]", "longer than 20 characters", id="batch-item-long"
    ),
    pytest.param("/feedback", {"prediction_id": 5, "label": "ham"}, "prediction_id", "must be a string, got int"),
    pytest.param("/feedback", {"label": "ham"}, "prediction_id", "is required", id="feedback-no-id"),
]


@pytest.mark.parametrize(("path", "body", "field", "problem"), BAD_BODIES)
def test_invalid_fields_get_422_naming_the_field_and_the_problem(
    limited: Service, path: str, body: Any, field: str, problem: str
) -> None:
    response = limited.client.post(path, json=body)
    error = error_body(response, 422, "invalid_request")
    assert error["details"] == [{"field": field, "problem": problem}]
    assert error["message"].startswith(field), error


def test_limits_come_from_the_settings(limited: Service) -> None:
    longest = "x" * 20
    assert limited.client.post("/predict", json={"text": longest}).status_code == 200
    full = limited.client.post("/predict/batch", json={"texts": [longest] * 3})
    assert full.status_code == 200, full.text
    message = error_body(limited.client.post("/predict", json={"text": longest + "x"}), 422, "invalid_request")
    assert "21 characters; the maximum is 20 (MAX_TEXT_LENGTH)" in message["message"]
    batch = error_body(limited.client.post("/predict/batch", json={"texts": ["a"] * 4}), 422, "invalid_request")
    assert "4 items; the maximum is 3 (MAX_BATCH_SIZE)" in batch["message"]


def test_feedback_label_must_be_spam_or_ham(default_service: Service) -> None:
    prediction_id = default_service.client.post("/predict", json={"text": SPAM_TEXT}).json()["prediction_id"]
    response = default_service.client.post("/feedback", json={"prediction_id": prediction_id, "label": "maybe"})
    (detail,) = error_body(response, 422, "invalid_request")["details"]
    assert detail["field"] == "label"
    assert "'ham'" in detail["problem"] and "'spam'" in detail["problem"]
    assert (
        query_log(default_service.prediction_log, "SELECT * FROM feedback WHERE prediction_id = ?", prediction_id) == []
    )


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("content", "code", "fragment"),
    [
        pytest.param(b'{"text": "unfinished', "invalid_json", "not valid JSON", id="truncated"),
        pytest.param(b'{"text": "hi",}', "invalid_json", "not valid JSON", id="trailing-comma"),
        pytest.param(b'{"text": "caf\xe9"}', "invalid_encoding", "not UTF-8", id="latin-1"),
        pytest.param("{}".encode("utf-16"), "invalid_encoding", "not UTF-8", id="utf-16"),
    ],
)
def test_malformed_bodies_get_400_without_details(client: TestClient, content: bytes, code: str, fragment: str) -> None:
    body = error_body(client.post("/predict", content=content, headers=JSON), 400, code)
    assert fragment in body["message"]
    assert body["details"] == []


def test_a_non_utf8_body_names_the_offending_byte(client: TestClient) -> None:
    content = b'{"text": "caf\xe9"}'
    body = error_body(client.post("/predict", content=content, headers=JSON), 400, "invalid_encoding")
    assert body["message"].endswith(f"at byte {content.index(0xE9)}")


def test_an_invalid_json_body_names_where_it_breaks(client: TestClient) -> None:
    content = '{"text": "été", }'.encode()
    body = error_body(client.post("/predict", content=content, headers=JSON), 400, "invalid_json")
    # Either unit will do, as long as the number is in that unit.
    where = (f"at byte {content.index(b'}')}", f"at character {content.decode().index('}')}")
    assert body["message"].endswith(where), body["message"]


@pytest.mark.parametrize(
    ("path", "content"),
    [
        pytest.param("/predict", rb'{"text": "\ud800 call now"}', id="predict"),
        pytest.param("/predict/batch", rb'{"texts": ["ok", "\udfff"]}', id="batch"),
    ],
)
def test_a_lone_surrogate_escape_is_refused_as_client_error(client: TestClient, path: str, content: bytes) -> None:
    response = client.post(path, content=content, headers=JSON)
    assert 400 <= response.status_code < 500, response.text
    error_body(response, response.status_code, response.json()["error"])


@pytest.mark.parametrize(
    "headers", [pytest.param({"Content-Type": "text/plain"}, id="text/plain"), pytest.param({}, id="no-content-type")]
)
def test_a_body_not_declared_json_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/predict", content=b'{"text": "hi"}', headers=headers)
    error = error_body(response, 422, "invalid_request")
    assert error["details"] == [
        {"field": "body", "problem": "must be a JSON object sent as Content-Type: application/json"}
    ]


def test_an_empty_body_is_refused(client: TestClient) -> None:
    error = error_body(client.post("/predict", content=b"", headers=JSON), 422, "invalid_request")
    assert error["details"] == [{"field": "body", "problem": "is required"}]


# --- body size ------------------------------------------------------------------------------------------------


def chunked(content: bytes) -> Iterator[bytes]:
    """The body as a stream: sent without Content-Length, so the limit is checked as it arrives."""
    yield content[: len(content) // 2]
    yield content[len(content) // 2 :]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_size_limit_gets_413(limited: Service, streamed: bool) -> None:
    limit = limited.settings.max_body_bytes
    over = b"x" * (limit + 1)
    response = limited.client.post("/predict", content=chunked(over) if streamed else over, headers=JSON)
    assert ("content-length" in response.request.headers) is not streamed
    body = error_body(response, 413, "too_large")
    assert body["message"] == f"request body is larger than {limit} bytes" and body["details"] == []
    # One byte less is read (and refused as JSON, not for its size).
    at_limit = b"x" * limit
    response = limited.client.post("/predict", content=chunked(at_limit) if streamed else at_limit, headers=JSON)
    error_body(response, 400, "invalid_json")


def test_a_full_batch_of_the_longest_texts_fits_under_the_size_limit(limited: Service) -> None:
    # The costliest JSON per character: an escaped surrogate pair (12 bytes) for one character.
    longest = "\U0001f600" * limited.settings.max_text_length
    content = json.dumps({"texts": [longest] * limited.settings.max_batch_size}).encode("ascii")
    assert len(content) > 12 * limited.settings.max_text_length * limited.settings.max_batch_size
    response = limited.client.post("/predict/batch", content=content, headers=JSON)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == limited.settings.max_batch_size


# --- API key --------------------------------------------------------------------------------------------------


@pytest.fixture
def keyed(shared_service: SharedService) -> Service:
    return shared_service(API_KEY=KEY)


def call(client: TestClient, path: str, headers: dict[str, str]) -> int:
    """Status of a valid request to one of the keyed endpoints (a fresh prediction for /feedback)."""
    if path == "/feedback":
        prediction_id = client.post("/predict", json={"text": HAM_TEXT}, headers={"X-API-Key": KEY}).json()
        body: dict[str, Any] = {"prediction_id": prediction_id["prediction_id"], "label": "ham"}
    else:
        body = {"text": HAM_TEXT} if path == "/predict" else {"texts": [HAM_TEXT]}
    response: httpx.Response = client.post(path, json=body, headers=headers)
    if response.status_code == 401:
        error = error_body(response, 401, "unauthorized")
        assert "X-API-Key" in error["message"] and error["details"] == []
        assert response.headers["www-authenticate"] == "ApiKey"
    return response.status_code


KEYED_PATHS = ["/predict", "/predict/batch", "/feedback"]


@pytest.mark.parametrize("path", KEYED_PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"X-API-Key": ""}, id="empty"),
        pytest.param({"X-API-Key": "wrong"}, id="wrong"),
        pytest.param({"X-API-Key": KEY[:-1]}, id="prefix"),
        pytest.param({"X-API-Key": KEY + "x"}, id="longer"),
        pytest.param({"X-API-Key": KEY.upper()}, id="other-case"),
        pytest.param({"Authorization": f"Bearer {KEY}"}, id="other-header"),
    ],
)
def test_with_an_api_key_set_a_request_without_it_gets_401(keyed: Service, path: str, headers: dict[str, str]) -> None:
    assert call(keyed.client, path, headers) == 401


@pytest.mark.parametrize("path", KEYED_PATHS)
def test_with_an_api_key_set_the_right_key_is_let_in(keyed: Service, path: str) -> None:
    assert call(keyed.client, path, {"X-API-Key": KEY}) == (201 if path == "/feedback" else 200)


@pytest.mark.parametrize("path", KEYED_PATHS)
def test_without_an_api_key_set_no_key_is_needed(client: TestClient, path: str) -> None:
    assert call(client, path, {}) == (201 if path == "/feedback" else 200)


def test_the_admin_key_does_not_open_the_predict_endpoints(shared_service: SharedService) -> None:
    client = shared_service(API_KEY=KEY, ADMIN_API_KEY="admin-only").client
    assert call(client, "/predict", {"X-API-Key": "admin-only"}) == 401
    assert call(client, "/predict", {"X-API-Key": KEY}) == 200


def test_the_key_is_checked_before_the_body(keyed: Service) -> None:
    # An anonymous caller learns nothing about the input rules.
    response = keyed.client.post("/predict", json={"text": ""})
    error_body(response, 401, "unauthorized")


@pytest.mark.parametrize("source", ["environment", "dotenv"])
def test_an_empty_api_key_setting_means_no_key(start_service: StartService, tmp_path: Path, source: str) -> None:
    if source == "dotenv":
        # As `cp .env.example .env` leaves it; the app reads .env from its working directory.
        (tmp_path / ".env").write_text("API_KEY=\nADMIN_API_KEY=\n", encoding="utf-8")
    with start_service(**({"API_KEY": ""} if source == "environment" else {})) as running:
        assert call(running.client, "/predict", {}) == 200


# --- no model -------------------------------------------------------------------------------------------------


def test_without_a_model_predictions_get_503_with_retry_after(start_service: StartService) -> None:
    with start_service(wait=False, MODEL_URI="no-such-bundle") as running:
        assert wait_for_first_load(running.client).json()["status"] == "failed"
        for path, body in (("/predict", {"text": SPAM_TEXT}), ("/predict/batch", {"texts": [SPAM_TEXT]})):
            response = running.client.post(path, json=body)
            error = error_body(response, 503, "not_ready")
            assert "no-such-bundle" in error["message"] and error["details"] == []
            assert response.headers["retry-after"] == "1"
    assert query_log(running.prediction_log, "SELECT * FROM predictions") == []
