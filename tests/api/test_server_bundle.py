"""End to end against a real server (the image's command, two uvicorn workers) serving a bundle."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine

from spamfilter.modeling.pipeline import spam_probability
from spamfilter.monitoring import predlog
from tests.api.conftest import Server

pytestmark = pytest.mark.slow

KEY = {"X-API-Key": "test-key"}
SPAM_TEXT = "WINNER!! You have won a £1000 prize. Call 09061234567 now to claim"
HAM_TEXT = "Are we still meeting for lunch at 1? I'll be at the station"


def post(server: Server, path: str, body: Any = None, content: bytes | None = None, **headers: str) -> httpx.Response:
    all_headers = {**KEY, "Content-Type": "application/json", **headers}
    if content is None:
        content = json.dumps(body).encode("utf-8")
    return httpx.post(f"{server.url}{path}", content=content, headers=all_headers, timeout=30)


def wait_for_every_worker(
    server: Server, check: Callable[[httpx.Response], bool], path: str = "/ready", timeout: float = 20
) -> httpx.Response:
    """Poll on fresh connections (which reach either worker) until `check` holds 12 times running."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 12:
        assert time.monotonic() < deadline, f"not every worker satisfied the check in {timeout} s"
        response = httpx.get(f"{server.url}{path}", timeout=10)
        streak = streak + 1 if check(response) else 0
        time.sleep(0.05)
    return response


def test_predict_answers_with_the_models_probability_and_version(bundle_server: Server, default_model: Any) -> None:
    response = post(bundle_server, "/predict", {"text": SPAM_TEXT})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == "spam"
    assert body["spam_probability"] == spam_probability(default_model, [SPAM_TEXT])[0]
    assert body["model_version"] == "1"
    assert len(body["prediction_id"]) == 36
    ham = post(bundle_server, "/predict", {"text": HAM_TEXT}).json()
    assert ham["label"] == "ham" and ham["spam_probability"] < 0.5


def test_batch_keeps_input_order(bundle_server: Server, default_model: Any) -> None:
    texts = [SPAM_TEXT, HAM_TEXT, "Free ringtone! Text WIN to 80086 now", "see you at the gym at 6"]
    response = post(bundle_server, "/predict/batch", {"texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1"
    got = [item["spam_probability"] for item in body["predictions"]]
    np.testing.assert_array_equal(got, spam_probability(default_model, texts))
    assert [item["label"] for item in body["predictions"]][:2] == ["spam", "ham"]
    assert len({item["prediction_id"] for item in body["predictions"]}) == len(texts)


def test_health_ready_model_docs_and_page(bundle_server: Server) -> None:
    with bundle_server.client() as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        model = client.get("/model").json()
        assert model["name"] == "spam-classifier" and model["version"] == "1" and model["alias"] == "champion"
        assert set(model["metrics"]) >= {"f1", "mcc", "blocked_ham_rate"}
        assert model["data_fingerprint"]["rows"] == 200 and model["trained_at"]
        assert model["scorer"] == "lean"
        assert "swagger" in client.get("/docs").text.lower()
        assert "/predict/batch" in client.get("/openapi.json").json()["paths"]
        page = client.get("/")
        assert page.status_code == 200 and "<textarea" in page.text


def test_api_key_is_required_on_predict_endpoints(bundle_server: Server) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}):
        response = httpx.post(f"{bundle_server.url}/predict", json={"text": "hi"}, headers=headers, timeout=30)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert httpx.get(f"{bundle_server.url}/health").status_code == 200  # operations stay open


LONG = "a" * 501
BAD_INPUTS = [
    ("/predict", {"text": ""}, 422, "text is empty"),
    ("/predict", {"text": "  \n "}, 422, "text is empty"),
    ("/predict", {"text": LONG}, 422, "maximum is 500"),
    ("/predict", {"text": 123}, 422, "must be a string"),
    ("/predict", {"text": None}, 422, "must be a string"),
    ("/predict", {"text": ["a"]}, 422, "must be a string"),
    ("/predict", {}, 422, "text is required"),
    ("/predict", {"text": "hi", "extra": 1}, 422, "extra is not a known field"),
    ("/predict", ["hi"], 422, "must be a JSON object"),
    ("/predict", "hi", 422, "must be a JSON object"),
    ("/predict/batch", {"texts": []}, 422, "texts is empty"),
    ("/predict/batch", {"texts": "hi"}, 422, "must be a list"),
    ("/predict/batch", {"texts": ["ok", 5]}, 422, "texts[1] must be a string"),
    ("/predict/batch", {"texts": ["ok", ""]}, 422, "texts[1] is empty"),
    ("/predict/batch", {"texts": ["ok", LONG]}, 422, "texts[1] has 501 characters"),
    ("/predict/batch", {"texts": ["hi"] * 51}, 422, "maximum is 50"),
    ("/feedback", {"prediction_id": "x", "label": "maybe"}, 422, "label"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD_INPUTS)
def test_bad_json_inputs_get_a_4xx_saying_what_is_wrong(
    bundle_server: Server, path: str, body: Any, status: int, message: str
) -> None:
    response = post(bundle_server, path, body)
    assert response.status_code == status, response.text
    error = response.json()
    assert message in error["message"], error
    assert error["error"] and isinstance(error["details"], list)


RAW_INPUTS = [
    (b'{"text": "unfinished', {}, 400, "not valid JSON"),
    (b"", {}, 422, "required"),
    (b'{"text": "caf\xe9"}', {}, 400, "not UTF-8"),
    (b"\xff\xfe{\x00}\x00", {}, 400, "not UTF-8"),
    (b'{"text": "hi"}', {"Content-Type": "text/plain"}, 422, "Content-Type: application/json"),
    (b"x" * (50 * (500 * 12 + 16) + 4097), {}, 413, "larger than"),
]


@pytest.mark.parametrize(("content", "headers", "status", "message"), RAW_INPUTS)
def test_malformed_bodies_get_a_4xx_not_a_500(
    bundle_server: Server, content: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    response = post(bundle_server, "/predict", content=content, **headers)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]


def test_wrong_method_and_path_get_json_4xx(bundle_server: Server) -> None:
    wrong_method = httpx.get(f"{bundle_server.url}/predict", headers=KEY)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method_not_allowed"
    missing = httpx.get(f"{bundle_server.url}/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_predictions_and_feedback_land_in_the_log(bundle_server: Server) -> None:
    text = "Prediction-log check: call 0800 123 4567 to claim your FREE prize"
    prediction = post(bundle_server, "/predict", {"text": text}).json()
    feedback = post(bundle_server, "/feedback", {"prediction_id": prediction["prediction_id"], "label": "spam"})
    assert feedback.status_code == 201, feedback.text  # found even though the writer batches
    unknown = post(bundle_server, "/feedback", {"prediction_id": "no-such-id", "label": "ham"})
    assert unknown.status_code == 404 and "no-such-id" in unknown.json()["message"]

    engine = create_engine(bundle_server.env["PREDICTION_LOG_URL"])
    rows = {row.id: row for row in predlog.read_predictions(engine).records}
    row = rows[prediction["prediction_id"]]
    assert row.text == text  # LOG_TEXT=true on this server
    assert row.text_sha256 == predlog.text_sha256(text) and row.text_length == len(text)
    assert row.label == prediction["label"] and row.spam_probability == prediction["spam_probability"]
    assert row.model_version == "1"
    assert predlog.read_feedback(engine, [prediction["prediction_id"]]) == {prediction["prediction_id"]: "spam"}


def test_metrics_count_requests_latency_labels_and_version(bundle_server: Server) -> None:
    post(bundle_server, "/predict", {"text": SPAM_TEXT})
    assert post(bundle_server, "/predict", {"text": ""}).status_code == 422  # this test's own, not an earlier one's
    text = httpx.get(f"{bundle_server.url}/metrics").text
    assert 'spam_api_requests_total{endpoint="/predict",method="POST",status="200"}' in text
    assert 'spam_api_requests_total{endpoint="/predict",method="POST",status="422"}' in text
    assert 'spam_api_request_duration_seconds_bucket{endpoint="/predict",le="0.01"}' in text
    spam_count = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('spam_api_predictions_total{label="spam"}')
    )
    assert spam_count >= 1
    assert 'spam_api_model_info{name="spam-classifier",version="1"} 1.0' in text


def test_admin_reload_needs_the_key_and_a_failed_reload_keeps_the_old_model(bundle_server: Server) -> None:
    assert httpx.post(f"{bundle_server.url}/admin/reload").status_code == 401
    metadata = bundle_server.cwd / "bundle" / "sms" / "metadata.json"
    good = metadata.read_text(encoding="utf-8")
    model_pickle = bundle_server.cwd / "bundle" / "sms" / "model" / "model.pkl"
    backup = model_pickle.with_suffix(".bak")
    shutil.copy2(model_pickle, backup)
    try:
        model_pickle.write_bytes(b"not a pickle")
        failed = post(bundle_server, "/admin/reload")
        assert failed.status_code == 502, failed.text
        assert failed.json()["error"] == "reload_failed" and "still serving version 1" in failed.json()["message"]
        ready = wait_for_every_worker(bundle_server, lambda r: r.json()["status"] == "degraded")
        assert ready.status_code == 200  # still serving
        assert "failed" in ready.json()["last_reload_error"]
        assert post(bundle_server, "/predict", {"text": SPAM_TEXT}).json()["model_version"] == "1"
        assert "model reload failed, still serving version 1" in bundle_server.log_text()
        metadata.write_text("{broken", encoding="utf-8")
        assert post(bundle_server, "/admin/reload").status_code == 502
    finally:
        metadata.write_text(good, encoding="utf-8")
        shutil.move(backup, model_pickle)
    recovered = post(bundle_server, "/admin/reload")
    assert recovered.status_code == 200 and recovered.json()["ok"] is True
    wait_for_every_worker(bundle_server, lambda r: r.json()["status"] == "ready")
