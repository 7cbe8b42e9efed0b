"""Fixtures for the API: a serving bundle and a registry built in-process from the fixture corpus,
and real API servers started with the Docker image's exact command and environment."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from spamfilter.config import Params, Settings, TrainParams, flatten
from spamfilter.modeling.metrics import OBVIOUS_HAM, OBVIOUS_SPAM, classification_metrics
from spamfilter.modeling.pipeline import assemble, build_classifier, build_featurizer, model_threshold, spam_probability
from spamfilter.registry.bundle import METADATA_FILE, BundleMetadata
from tests.conftest import REPO_ROOT, make_messages

DOCKERFILE = REPO_ROOT / "Dockerfile"
INPUT_EXAMPLE = [OBVIOUS_SPAM[0], OBVIOUS_HAM[0]]


def train_model(train: TrainParams | None = None, seed: int = 7) -> Any:
    """A pipeline trained in-process on the generated corpus (default params unless given)."""
    params = Params() if train is None else Params(train=train)
    rows = make_messages(seed=seed)
    texts = [text for _, text in rows]
    labels = [label for label, _ in rows]
    featurizer = build_featurizer(params.featurize)
    features = featurizer.fit_transform(texts)
    classifier = build_classifier(params.train).fit(features, labels)
    return assemble(featurizer, classifier)


def held_out_metrics(model: Any) -> dict[str, float]:
    rows = make_messages(n_ham=60, n_spam=20, seed=99)
    texts = [text for _, text in rows]
    probabilities = spam_probability(model, texts)
    labels = ["spam" if p >= model_threshold(model) else "ham" for p in probabilities]
    return classification_metrics([label for label, _ in rows], labels, probabilities)


def write_bundle(destination: Path, model: Any, version: str = "1") -> Path:
    """A bundle as `spamfilter export` writes it: `model/` (MLflow model dir) and `metadata.json`."""
    from spamfilter.registry import tracking

    destination.mkdir(parents=True, exist_ok=True)
    tracking.save_model(model, destination / "model", INPUT_EXAMPLE)
    now = datetime.now(UTC).isoformat()
    meta = BundleMetadata(
        name="spam-classifier",
        version=version,
        alias="champion",
        run_id=f"run-{version}",
        model_uri=f"models:/spam-classifier/{version}",
        metrics=held_out_metrics(model),
        threshold=model_threshold(model),
        trained_at=now,
        exported_at=now,
        data_fingerprint={
            "raw_md5": "0" * 32,
            "dataset_sha256": "1" * 64,
            "rows": 200,
            "train_rows": 160,
            "test_rows": 40,
        },
        params=flatten(Params().model_dump(mode="json", exclude={"gate", "monitor"})),
    )
    (destination / METADATA_FILE).write_text(meta.model_dump_json(indent=2), encoding="utf-8")
    return destination


@pytest.fixture(scope="session")
def default_model() -> Any:
    return train_model()


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, default_model: Any) -> Path:
    return write_bundle(tmp_path_factory.mktemp("bundle") / "bundle", default_model)


@dataclass
class RegistryStore:
    settings: Settings
    env: dict[str, str]
    models: dict[str, Any]  # version → the pipeline registered as it


@pytest.fixture(scope="session")
def registry_store(tmp_path_factory: pytest.TempPathFactory, default_model: Any) -> RegistryStore:
    """A tmp MLflow SQLite store with two versions of spam-classifier (1: the default model,
    2: naive Bayes) and @champion on version 1."""
    from spamfilter.registry import tracking

    root = tmp_path_factory.mktemp("mlflow")
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "SPAM_MLFLOW_ARTIFACT_ROOT": str(root / "mlartifacts"),
    }
    settings = Settings(**env)  # type: ignore[arg-type]
    models = {}
    for model in (default_model, train_model(TrainParams(model="mnb"))):
        run = tracking.log_training_run(
            settings,
            model,
            params={"train.model": "x"},
            tags={"data_raw_md5": "a" * 32, "data_rows": "200"},
            input_example=INPUT_EXAMPLE,
        )
        tracking.log_evaluation(settings, run.run_id, held_out_metrics(model), artifacts=[])
        models[run.version] = model
    tracking.set_alias(settings, "champion", "1")
    return RegistryStore(settings, env, models)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def image_command_and_env() -> tuple[list[str], dict[str, str]]:
    """The final stage's CMD (exec form) and ENV, as the container would run them."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    env: dict[str, str] = {}
    command: list[str] = []
    for name, args in instructions[last_from:]:
        if name == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
        elif name == "CMD":
            command = json.loads(args)
    return command, env


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    cwd: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        """Until /ready says 200 twelve times running on fresh connections (so every worker is)."""
        deadline = time.monotonic() + timeout
        streak = 0
        while streak < 12:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready after {timeout} s:\n{self.log_text()}")
            try:
                streak = streak + 1 if httpx.get(f"{self.url}/ready", timeout=5).status_code == 200 else 0
            except httpx.TransportError:
                streak = 0
            time.sleep(0.05 if streak else 0.3)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(workdir: Path, overrides: dict[str, str], wait: bool = True) -> Server:
    """Run the image's CMD with the image's ENV (plus `overrides`) in `workdir`, on a free port.

    Outside a container: `python` is this venv's, the repo is on PYTHONPATH, and HOST, PORT and
    file locations are overridden to stay on 127.0.0.1 and in tmp."""
    command, image_env = image_command_and_env()
    assert command[0] == "python", command
    command = [sys.executable, *command[1:]]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "SPAM_", "API_"))}
    env.update({key: value for key, value in image_env.items() if key not in ("PATH", "PYTHONPATH")})
    port = free_port()
    env.update(
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PYTHONPATH": str(REPO_ROOT),
            "PREDICTION_LOG_URL": f"sqlite:///{workdir / 'predictions.db'}",
        }
    )
    env.update(overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, env, workdir)
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
    return server


@pytest.fixture(scope="session")
def bundle_server(tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path) -> Iterator[Server]:
    """Two workers serving a copy of the bundle (as bundle/sms, the image's default MODEL_URI), with an API key,
    texts logged, and small limits."""
    workdir = tmp_path_factory.mktemp("bundle-server")
    shutil.copytree(bundle_dir, workdir / "bundle" / "sms")
    server = start_server(
        workdir,
        {"API_KEY": "test-key", "LOG_TEXT": "true", "MAX_TEXT_LENGTH": "500", "MAX_BATCH_SIZE": "50"},
    )
    yield server
    server.stop()


# --- the e-mail channel -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def email_model() -> Any:
    """An e-mail pipeline trained in-process on generated messages (`tests/api/email_support.py`)."""
    from tests.api.email_support import train_email_model

    return train_email_model()


@pytest.fixture(scope="session")
def email_bundle_dir(tmp_path_factory: pytest.TempPathFactory, email_model: Any) -> Path:
    from tests.api.email_support import write_email_bundle

    return write_email_bundle(tmp_path_factory.mktemp("email-bundle") / "bundle", email_model)
