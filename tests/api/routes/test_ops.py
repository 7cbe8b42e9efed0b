"""api/routes/ops.py in-process: /health, /ready (before, after and without a model), /model and /metrics;
and the JSON errors of paths and methods no route serves."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST

from api.schemas import ModelResponse
from spamfilter.registry.bundle import METADATA_FILE
from tests.api.routes.conftest import (
    Service,
    SharedService,
    StartService,
    build_app,
    error_body,
    metric_families,
    metric_samples,
    query_log,
    wait_for_first_load,
)

READY_FIELDS = {
    "ready",
    "status",
    "model_version",
    "model_source",
    "loaded_at",
    "last_reload_error",
    "last_reload_error_at",
    "reloads",
    "failed_reloads",
    "prediction_log",
}
# The metrics api/metrics.py documents (name → type): what dashboards and alerts are built on.
DOCUMENTED_METRICS = {
    "spam_api_requests": "counter",
    "spam_api_request_duration_seconds": "histogram",
    "spam_api_predictions": "counter",
    "spam_api_model_info": "gauge",
    "spam_api_model_reloads": "counter",
    "spam_api_prediction_log_written": "counter",
    "spam_api_prediction_log_dropped": "counter",
    "spam_api_micro_batch_size": "histogram",
}
SPAM_TEXT = "URGENT! Your mobile has been awarded a £2000 bonus. Call 09050000301 from a landline"
HAM_TEXT = "Sorry I missed your call, I was at the gym. Talk later?"


def is_timestamp(value: object) -> bool:
    return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None


# --- /health --------------------------------------------------------------------------------------------------


def test_health_answers_before_any_model_and_without_a_key(tmp_path: Path) -> None:
    # No lifespan: nothing has loaded, nothing is logged; liveness does not depend on either.
    app = build_app(tmp_path, {"MODEL_URI": str(tmp_path / "absent"), "API_KEY": "k", "PREDICTION_LOG_URL": ""})
    response = TestClient(app).get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- /ready ---------------------------------------------------------------------------------------------------


def test_ready_is_503_loading_before_the_first_load_has_run(tmp_path: Path, bundle_dir: Path) -> None:
    # A TestClient outside `with` does not run the lifespan: the state of an app whose first load is pending.
    app = build_app(tmp_path, {"MODEL_URI": str(bundle_dir), "PREDICTION_LOG_URL": ""})
    response = TestClient(app).get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert set(body) == READY_FIELDS
    assert body["ready"] is False and body["status"] == "loading"
    assert body["model_version"] is None and body["loaded_at"] is None
    assert body["last_reload_error"] is None and body["reloads"] == 0 and body["failed_reloads"] == 0
    assert body["model_source"] == str(bundle_dir)


def test_ready_is_200_once_the_model_serves(start_service: StartService, bundle_dir: Path) -> None:
    with start_service() as service:
        response = service.client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == READY_FIELDS
    assert body["ready"] is True and body["status"] == "ready"
    assert body["model_version"] == "1" and body["model_source"] == str(bundle_dir)
    assert is_timestamp(body["loaded_at"])
    assert body["last_reload_error"] is None and body["last_reload_error_at"] is None
    assert body["reloads"] == 1 and body["failed_reloads"] == 0


def test_ready_says_when_there_is_no_prediction_log(start_service: StartService) -> None:
    with start_service(PREDICTION_LOG_URL="") as service:
        assert service.client.get("/ready").json()["prediction_log"] is None


def test_ready_is_503_failed_when_the_first_load_fails(start_service: StartService, tmp_path: Path) -> None:
    missing = tmp_path / "no-bundle-here"
    with start_service(wait=False, MODEL_URI=str(missing)) as service:
        response = wait_for_first_load(service.client)
        model = service.client.get("/model")
        health = service.client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and body["status"] == "failed" and body["model_version"] is None
    assert str(missing) in body["last_reload_error"]
    assert is_timestamp(body["last_reload_error_at"])
    assert body["reloads"] == 0 and body["failed_reloads"] == 1
    error = error_body(model, 503, "not_ready")
    assert str(missing) in error["message"]
    assert model.headers["retry-after"] == "1"
    assert health.status_code == 200  # alive, just not ready


def writer_threads() -> int:
    return sum(thread.name == "prediction-log-writer" for thread in threading.enumerate())


def test_shutdown_flushes_the_prediction_log_and_stops_its_writer(start_service: StartService) -> None:
    before = writer_threads()
    # A flush interval longer than the test: only the shutdown can write the row.
    with start_service(PREDICTION_LOG_FLUSH_INTERVAL="3600") as service:
        assert writer_threads() == before + 1
        prediction_id = service.client.post("/predict", json={"text": SPAM_TEXT}).json()["prediction_id"]
        assert query_log(service.prediction_log, "SELECT id FROM predictions") == []
        # /ready shows the row waiting, with nothing dropped (the log never decides readiness).
        log_state = service.client.get("/ready").json()["prediction_log"]
        assert log_state["pending"] == 1 and log_state["dropped"] == 0 and log_state["last_error"] is None
    assert writer_threads() == before
    assert [row["id"] for row in query_log(service.prediction_log, "SELECT id FROM predictions")] == [prediction_id]


# --- /model ---------------------------------------------------------------------------------------------------


def test_model_describes_the_served_bundle(client: TestClient, bundle_dir: Path) -> None:
    response = client.get("/model")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == set(ModelResponse.model_fields)
    ModelResponse.model_validate(body)
    metadata = json.loads((bundle_dir / METADATA_FILE).read_text(encoding="utf-8"))
    for field in ("name", "version", "alias", "run_id", "metrics", "threshold", "trained_at", "data_fingerprint"):
        assert body[field] == metadata[field], field
    assert body["source"] == str(bundle_dir.resolve())
    assert body["scorer"] == "lean"  # the default model's pipeline compiles to the fast scorer
    assert is_timestamp(body["loaded_at"])
    assert body["loaded_at"] == client.get("/ready").json()["loaded_at"]


def test_ops_endpoints_need_no_api_key(shared_service: SharedService) -> None:
    client = shared_service(API_KEY="ops-key").client
    for path in ("/health", "/ready", "/model", "/metrics"):
        assert client.get(path).status_code == 200, path
    assert client.post("/predict", json={"text": "hi"}).status_code == 401  # while the predictions are keyed


# --- /metrics -------------------------------------------------------------------------------------------------


def test_metrics_exposition_has_every_documented_metric(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    families = metric_families(response.text)
    assert {name: families.get(name) for name in DOCUMENTED_METRICS} == DOCUMENTED_METRICS


def test_metrics_count_requests_predictions_batches_reloads_and_log_rows(service: Service) -> None:
    client = service.client
    spam = client.post("/predict", json={"text": SPAM_TEXT}).json()
    client.post("/predict", json={"text": HAM_TEXT})
    client.post("/predict", json={"text": ""})  # 422
    batch = client.post("/predict/batch", json={"texts": [SPAM_TEXT, HAM_TEXT, HAM_TEXT]}).json()
    client.get("/no-such-path")
    assert client.post("/feedback", json={"prediction_id": spam["prediction_id"], "label": "spam"}).status_code == 201
    logged = 5
    # The writer thread writes the log in the background: wait until it has caught up.
    deadline = time.monotonic() + 30
    while True:
        samples = metric_samples(client.get("/metrics").text)
        written = samples.get(("spam_api_prediction_log_written_total", frozenset()), 0.0)
        if written >= logged or time.monotonic() > deadline:
            break
        time.sleep(0.02)

    def value(sample: str, /, **labels: str) -> float:
        return samples.get((sample, frozenset(labels.items())), 0.0)

    labels = [spam["label"], "ham", *(item["label"] for item in batch["predictions"])]
    assert labels.count("spam") >= 2  # else this test would not tell the labels apart
    assert value("spam_api_predictions_total", label="spam") == labels.count("spam")
    assert value("spam_api_predictions_total", label="ham") == labels.count("ham")
    assert value("spam_api_requests_total", endpoint="/predict", method="POST", status="200") == 2
    assert value("spam_api_requests_total", endpoint="/predict", method="POST", status="422") == 1
    assert value("spam_api_requests_total", endpoint="/predict/batch", method="POST", status="200") == 1
    assert value("spam_api_requests_total", endpoint="/feedback", method="POST", status="201") == 1
    assert value("spam_api_requests_total", endpoint="other", method="GET", status="404") == 1
    assert value("spam_api_request_duration_seconds_count", endpoint="/predict") == 3
    assert value("spam_api_request_duration_seconds_count", endpoint="/predict/batch") == 1
    # Two single predictions one after the other: two model calls of one text each.
    assert value("spam_api_micro_batch_size_count") == 2 and value("spam_api_micro_batch_size_sum") == 2
    assert value("spam_api_model_info", name="spam-classifier", version="1") == 1
    assert value("spam_api_model_reloads_total", outcome="ok") == 1
    assert value("spam_api_model_reloads_total", outcome="failed") == 0
    assert value("spam_api_prediction_log_written_total") == logged
    assert value("spam_api_prediction_log_dropped_total") == 0


# --- errors of no route ---------------------------------------------------------------------------------------


def test_an_unknown_path_is_a_json_404(client: TestClient) -> None:
    body = error_body(client.get("/no-such-path"), 404, "not_found")
    assert body["details"] == []


@pytest.mark.parametrize(("method", "path", "allowed"), [("GET", "/predict", "POST"), ("POST", "/ready", "GET")])
def test_a_wrong_method_is_a_json_405_naming_the_allowed_one(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    body = error_body(response, 405, "method_not_allowed")
    assert body["details"] == []
    assert response.headers["allow"] == allowed
