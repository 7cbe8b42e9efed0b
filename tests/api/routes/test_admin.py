"""api/routes/admin.py in-process: who may reload (admin off, admin key, API key as admin key), a reload that
swaps in a new export, and reloads that fail while the old model serves on."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.schemas import ReloadResponse
from spamfilter.config import TrainParams
from spamfilter.modeling.pipeline import spam_probability
from spamfilter.registry.bundle import METADATA_FILE, MODEL_DIR
from tests.api.conftest import train_model, write_bundle
from tests.api.routes.conftest import Service, SharedService, StartService, error_body, metric_samples

ADMIN_KEY = "admin-route-key"
API_KEY = "api-route-key"
ADMIN = {"X-API-Key": ADMIN_KEY}
TEXT = "Congratulations you won a free camera. Reply YES to 85233 to claim. Std txt rate"


@pytest.fixture(scope="module")
def challenger_model() -> Any:
    """A second, different model (naive Bayes): what a new export would bring."""
    return train_model(TrainParams(model="mnb"))


@pytest.fixture(scope="module")
def challenger_bundle(tmp_path_factory: pytest.TempPathFactory, challenger_model: Any) -> Path:
    return write_bundle(tmp_path_factory.mktemp("challenger") / "bundle", challenger_model, version="2")


@pytest.fixture
def admin_service(start_service: StartService, own_bundle: Path) -> Iterator[Service]:
    """An app of this test's own serving `own_bundle` (which the test may rewrite), with an admin key."""
    with start_service(MODEL_URI=str(own_bundle), ADMIN_API_KEY=ADMIN_KEY) as started:
        yield started


def reload(client: TestClient, headers: dict[str, str] | None = None) -> Any:
    return client.post("/admin/reload", headers=ADMIN if headers is None else headers)


def export_over(bundle: Path, source: Path) -> None:
    """Replace the bundle's files with another export, as a new `spamfilter export --out` would."""
    shutil.rmtree(bundle)
    shutil.copytree(source, bundle)


# --- who may reload -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "anything"}], ids=["no-key", "some-key"])
def test_with_no_key_configured_admin_is_off(client: TestClient, headers: dict[str, str]) -> None:
    body = error_body(reload(client, headers), 403, "forbidden")
    assert "ADMIN_API_KEY" in body["message"] and body["details"] == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"X-API-Key": "wrong"}, id="wrong"),
        pytest.param({"X-API-Key": ADMIN_KEY[:-1]}, id="prefix"),
        pytest.param({"X-API-Key": API_KEY}, id="the-api-key"),
    ],
)
def test_with_an_admin_key_set_any_other_key_gets_401(shared_service: SharedService, headers: dict[str, str]) -> None:
    client = shared_service(API_KEY=API_KEY, ADMIN_API_KEY=ADMIN_KEY).client
    response = reload(client, headers)
    body = error_body(response, 401, "unauthorized")
    assert "admin API key" in body["message"] and body["details"] == []
    assert response.headers["www-authenticate"] == "ApiKey"


def test_the_right_admin_key_reloads(shared_service: SharedService) -> None:
    client = shared_service(API_KEY=API_KEY, ADMIN_API_KEY=ADMIN_KEY).client
    assert reload(client).status_code == 200


def test_without_an_admin_key_the_api_key_serves_for_admin(shared_service: SharedService) -> None:
    client = shared_service(API_KEY=API_KEY).client
    error_body(reload(client, {"X-API-Key": "wrong"}), 401, "unauthorized")
    assert reload(client, {"X-API-Key": API_KEY}).status_code == 200


def test_empty_key_settings_leave_admin_off(start_service: StartService) -> None:
    with start_service(API_KEY="", ADMIN_API_KEY="") as service:
        error_body(reload(service.client, {}), 403, "forbidden")


# --- reloads --------------------------------------------------------------------------------------------------


def test_a_reload_of_an_unchanged_source_loads_it_again(admin_service: Service) -> None:
    loaded_before = admin_service.client.get("/model").json()["loaded_at"]
    response = reload(admin_service.client)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "swapped": True, "version": "1", "previous_version": "1", "error": None}
    assert admin_service.client.get("/model").json()["loaded_at"] != loaded_before
    assert admin_service.client.get("/ready").json()["reloads"] == 2


def test_a_reload_swaps_in_a_new_export(
    admin_service: Service, own_bundle: Path, challenger_bundle: Path, challenger_model: Any, default_model: Any
) -> None:
    client = admin_service.client
    before = client.post("/predict", json={"text": TEXT}).json()
    assert before["spam_probability"] == spam_probability(default_model, [TEXT])[0]
    export_over(own_bundle, challenger_bundle)

    response = reload(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == set(ReloadResponse.model_fields)
    assert body == {"ok": True, "swapped": True, "version": "2", "previous_version": "1", "error": None}

    after = client.post("/predict", json={"text": TEXT}).json()
    assert after["model_version"] == "2"
    assert after["spam_probability"] == spam_probability(challenger_model, [TEXT])[0]
    assert after["spam_probability"] != before["spam_probability"]
    model = client.get("/model").json()
    assert model["version"] == "2" and model["run_id"] == "run-2"
    assert model["threshold"] == json.loads((challenger_bundle / METADATA_FILE).read_text())["threshold"]
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["model_version"] == "2" and ready["reloads"] == 2
    samples = metric_samples(client.get("/metrics").text)
    assert samples[("spam_api_model_info", frozenset({("name", "spam-classifier"), ("version", "2")}))] == 1
    assert samples[("spam_api_model_info", frozenset({("name", "spam-classifier"), ("version", "1")}))] == 0
    assert samples[("spam_api_model_reloads_total", frozenset({("outcome", "ok")}))] == 2


def break_model(bundle: Path) -> None:
    (bundle / MODEL_DIR / "model.pkl").write_bytes(b"not a pickle")


def break_metadata(bundle: Path) -> None:
    (bundle / METADATA_FILE).write_text("{broken", encoding="utf-8")


def mismatch_threshold(bundle: Path) -> None:
    # The metadata must describe the model it ships with; a threshold that differs means it does not.
    path = bundle / METADATA_FILE
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata["threshold"] += 0.1
    path.write_text(json.dumps(metadata), encoding="utf-8")


def remove_bundle(bundle: Path) -> None:
    shutil.rmtree(bundle)


@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        pytest.param(break_model, "cannot be loaded", id="unpicklable-model"),
        pytest.param(break_metadata, METADATA_FILE, id="broken-metadata"),
        pytest.param(mismatch_threshold, "threshold", id="threshold-mismatch"),
        pytest.param(remove_bundle, "not found", id="bundle-gone"),
    ],
)
def test_a_failed_reload_is_502_and_the_old_model_serves_on(
    admin_service: Service,
    own_bundle: Path,
    default_model: Any,
    damage: Callable[[Path], None],
    cause: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = admin_service.client
    damage(own_bundle)

    response = reload(client)
    body = error_body(response, 502, "reload_failed")
    assert body["message"].endswith("still serving version 1"), body
    assert cause in body["message"] and str(own_bundle) in body["message"]
    # Not a bad field of the request: details name the version that serves on.
    assert body["details"] == [{"serving_version": "1"}]

    ready = client.get("/ready")
    assert ready.status_code == 200  # still serving, so still ready
    state = ready.json()
    assert state["ready"] is True and state["status"] == "degraded" and state["model_version"] == "1"
    assert cause in state["last_reload_error"] and str(own_bundle) in state["last_reload_error"]
    assert state["last_reload_error_at"] is not None
    assert state["reloads"] == 1 and state["failed_reloads"] == 1
    assert "model reload failed, still serving version 1" in caplog.text  # what the operator reads

    answer = client.post("/predict", json={"text": TEXT}).json()
    assert answer["model_version"] == "1"
    assert answer["spam_probability"] == spam_probability(default_model, [TEXT])[0]
    assert client.get("/model").json()["version"] == "1"
    samples = metric_samples(client.get("/metrics").text)
    assert samples[("spam_api_model_reloads_total", frozenset({("outcome", "failed")}))] == 1
    assert samples[("spam_api_model_info", frozenset({("name", "spam-classifier"), ("version", "1")}))] == 1


def test_a_good_reload_after_a_failed_one_clears_the_degraded_state(
    admin_service: Service, own_bundle: Path, bundle_dir: Path
) -> None:
    client = admin_service.client
    break_model(own_bundle)
    assert reload(client).status_code == 502
    assert client.get("/ready").json()["status"] == "degraded"
    export_over(own_bundle, bundle_dir)

    assert reload(client).status_code == 200
    state = client.get("/ready").json()
    assert state["status"] == "ready" and state["last_reload_error"] is None and state["last_reload_error_at"] is None
    assert state["reloads"] == 2 and state["failed_reloads"] == 1
