"""Fixtures for the in-process route tests: the app `create_app()` builds, driven by FastAPI's TestClient.

The model is the e2e tests' session bundle (`tests/api/conftest.py`: trained once on generated messages,
exported as `spamfilter export` writes it), so starting an app costs one bundle load, not a training.
Settings come from the environment as in production: each app is built in a clean one (none of the
caller's API variables, no `.env` of the checkout) in its own working directory, with the prediction log
on a SQLite file there. `with TestClient(app)` runs the app's lifespan: the prediction-log writer thread
starts, the model loads in the background, and on exit the writer flushes and stops.

Apps whose state no assertion depends on are shared for the session (`shared_service`); a test that
counts something (log rows, metrics, reloads) starts its own (`start_service`).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from api.settings import ApiSettings

SETTINGS_VARIABLES = tuple(field.alias for field in ApiSettings.model_fields.values() if field.alias)
# Read by api.metrics on every /metrics request: when set, it would switch to multiprocess files.
OTHER_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR",)
FIRST_LOAD_TIMEOUT = 60.0  # seconds; generous, the machine may be busy
ERROR_KEYS = {"error", "message", "details"}


@dataclass
class Service:
    """A running app and what a test needs to look behind it."""

    app: FastAPI
    client: TestClient
    workdir: Path

    @property
    def prediction_log(self) -> Path:
        return self.workdir / "predictions.db"

    @property
    def settings(self) -> ApiSettings:
        settings = self.app.state.api.settings
        assert isinstance(settings, ApiSettings)
        return settings


StartService = Callable[..., contextlib.AbstractContextManager[Service]]
SharedService = Callable[..., Service]


def build_app(workdir: Path, env: dict[str, str]) -> FastAPI:
    """`create_app()` as the server builds it, from the environment: a clean one plus `env`, in `workdir`.

    The settings are read here, once; the environment and working directory are restored afterwards, so
    an app may outlive the test that built it without its settings leaking into anything else."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        for name in (*SETTINGS_VARIABLES, *OTHER_VARIABLES):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        return create_app()


def default_env(workdir: Path, bundle: Path) -> dict[str, str]:
    return {
        "MODEL_URI": str(bundle),
        "PREDICTION_LOG_URL": f"sqlite:///{workdir / 'predictions.db'}",
        # Short, so a lookup of an unknown prediction id (which waits one interval) stays quick.
        "PREDICTION_LOG_FLUSH_INTERVAL": "0.05",
    }


def wait_for_first_load(client: TestClient, timeout: float = FIRST_LOAD_TIMEOUT) -> httpx.Response:
    """Poll /ready until the first load has ended, either way: a model serves, or the load failed."""
    deadline = time.monotonic() + timeout
    while True:
        ready: httpx.Response = client.get("/ready")
        if ready.json()["status"] != "loading":
            return ready
        if time.monotonic() > deadline:
            raise AssertionError(f"the first model load did not end within {timeout} s: {ready.text}")
        time.sleep(0.01)


@contextlib.contextmanager
def running(workdir: Path, env: dict[str, str], wait: bool = True) -> Iterator[Service]:
    """The app started (lifespan entered) and, with `wait`, serving a model; shut down on exit."""
    app = build_app(workdir, env)
    # A failure inside the app answers 500 with the JSON error body, as over the wire (the traceback is in the
    # captured log), instead of being raised into the test.
    with TestClient(app, raise_server_exceptions=False) as client:
        if wait:
            ready = wait_for_first_load(client)
            assert ready.status_code == 200, f"no model serves: {ready.text}"
        yield Service(app, client, workdir)


@pytest.fixture
def start_service(tmp_path: Path, bundle_dir: Path) -> StartService:
    """`with start_service(MAX_BATCH_SIZE="3", ...) as service:` an app of this test's own, with the given
    environment on top of the defaults (the session bundle, the log in `tmp_path`); `wait=False` returns
    before the first load has ended, and does not require it to succeed."""

    def start(wait: bool = True, **env: str) -> contextlib.AbstractContextManager[Service]:
        return running(tmp_path, {**default_env(tmp_path, bundle_dir), **env}, wait)

    return start


@pytest.fixture(scope="session")
def shared_service(tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path) -> Iterator[SharedService]:
    """`shared_service(API_KEY="k")`: one running app per environment for the whole session, for tests
    whose assertions no other test's requests can change (validation, keys, schemas)."""
    services: dict[tuple[tuple[str, str], ...], Service] = {}
    with contextlib.ExitStack() as stack:

        def get(**env: str) -> Service:
            key = tuple(sorted(env.items()))
            if key not in services:
                workdir = tmp_path_factory.mktemp("shared-service")
                services[key] = stack.enter_context(running(workdir, {**default_env(workdir, bundle_dir), **env}))
            return services[key]

        yield get


@pytest.fixture
def service(start_service: StartService) -> Iterator[Service]:
    """An app of this test's own with the default settings (no API key, admin off, the log on)."""
    with start_service() as started:
        yield started


@pytest.fixture
def default_service(shared_service: SharedService) -> Service:
    """The shared app with the default settings."""
    return shared_service()


@pytest.fixture
def client(default_service: Service) -> TestClient:
    return default_service.client


@pytest.fixture
def own_bundle(tmp_path: Path, bundle_dir: Path) -> Path:
    """A copy of the session bundle that the test may rewrite (a new export, a broken one)."""
    return Path(shutil.copytree(bundle_dir, tmp_path / "own-bundle"))


def error_body(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error body, after checking the status, the media type and the one shape every error has."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == ERROR_KEYS, body
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    assert isinstance(body["details"], list), body
    return body


def metric_samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, keyed by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def metric_families(exposition: str) -> dict[str, str]:
    """Family name → type (counter, gauge, histogram) of a Prometheus text exposition."""
    return {family.name: family.type for family in text_string_to_metric_families(exposition)}


def query_log(path: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    """Rows of the prediction log, read with plain SQL: the table layout is the monitor's contract."""
    if not path.exists():
        raise AssertionError(f"{path}: no prediction log was written")
    connection = sqlite3.connect(path)
    try:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()
