"""The e-mail channel served from the MLflow registry (`EMAIL_MODEL_URI=models:/spam-classifier-email@champion`),
and a model of the other channel refused, from the registry and from a bundle: an SMS model would score the raw
bytes of an e-mail."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spamfilter.config import Channel, Settings
from spamfilter.modeling import channels
from spamfilter.modeling.pipeline import spam_probability
from tests.api.routes.conftest import StartService, wait_for_first_load
from tests.api.routes.test_predict_email import HAM, SPAM, post_email, started


@dataclass
class Store:
    env: dict[str, str]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, default_model: Any, email_model: Any) -> Store:
    """A tmp MLflow store: spam-classifier version 1 (SMS, as runs logged before channels: no channel tag) and
    spam-classifier-email version 1 (tagged email), each @champion."""
    from spamfilter.registry import tracking

    root = tmp_path_factory.mktemp("email-mlflow")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "SPAM_MLFLOW_ARTIFACT_ROOT": str(root / "art")}
    settings = Settings(**env)  # type: ignore[arg-type]
    registered: tuple[tuple[Channel, Any, dict[str, str]], ...] = (
        ("sms", default_model, {"data_rows": "200"}),
        ("email", email_model, {"data_rows": "160", "channel": "email"}),
    )
    for channel, model, tags in registered:
        channel_settings = settings.for_channel(channel)
        run = tracking.log_training_run(
            channel_settings,
            model,
            params={"train.model": "x"},
            tags=tags,
            input_example=channels.input_example(channel),
            input_column=channels.input_column(channel),
        )
        tracking.set_alias(channel_settings, "champion", run.version)
    return Store(env)


@pytest.fixture
def registry_env(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    # The app resolves models:/ URIs through the process environment when it loads, after it was built.
    for name, value in store.env.items():
        monkeypatch.setenv(name, value)
    yield store.env


def test_the_email_channel_serves_the_registrys_champion(
    start_service: StartService, registry_env: dict[str, str], email_model: Any
) -> None:
    uri = "models:/spam-classifier-email@champion"
    with started(start_service, EMAIL_MODEL_URI=uri, **registry_env) as service:
        answer = post_email(service.client, SPAM).json()
        model = service.client.get("/model").json()["channels"]["email"]
    assert answer["model_version"] == "1" and answer["spam_probability"] == spam_probability(email_model, [SPAM])[0]
    assert (model["name"], model["version"], model["alias"], model["channel"]) == (
        "spam-classifier-email",
        "1",
        "champion",
        "email",
    )
    assert model["source"] == "models:/spam-classifier-email/1"


@pytest.mark.parametrize("source", ["registry", "bundle"])
def test_a_model_of_the_sms_channel_is_refused_as_the_email_model(
    start_service: StartService, registry_env: dict[str, str], bundle_dir: Path, source: str
) -> None:
    uri = "models:/spam-classifier@champion" if source == "registry" else str(bundle_dir)
    with start_service(wait=False, EMAIL_MODEL_URI=uri, **registry_env) as service:
        wait_for_first_load(service.client)
        ready = service.client.get("/ready").json()
        while ready["channels"]["email"]["status"] == "loading":
            ready = service.client.get("/ready").json()
        email = post_email(service.client, HAM)
        sms = service.client.post("/predict", json={"text": "see you at 6"})
    assert ready["status"] == "degraded" and ready["channels"]["email"]["status"] == "failed"
    assert "a model of the sms channel, not of email" in ready["channels"]["email"]["last_reload_error"]
    assert email.status_code == 503 and sms.status_code == 200
