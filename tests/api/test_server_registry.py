"""End to end with the model from the registry (`models:/spam-classifier@champion`): metadata from
the registry, a hot swap under load with no failed request, alias polling, a broken version."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from spamfilter.modeling.pipeline import spam_probability
from spamfilter.monitoring import predlog
from spamfilter.registry import tracking
from tests.api.conftest import INPUT_EXAMPLE, RegistryStore, Server, start_server

pytestmark = pytest.mark.slow

ADMIN = {"X-API-Key": "admin-key"}
TEXT = "Congratulations! You have won a free holiday. Reply YES to 80233 to claim"
CHAMPION = "models:/spam-classifier@champion"


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory, registry_store: RegistryStore) -> Iterator[Server]:
    """The image's command and defaults (two workers), the model from the registry, no polling."""
    tracking.set_alias(registry_store.settings, "champion", "1")
    server = start_server(
        tmp_path_factory.mktemp("registry-server"),
        {"MODEL_URI": CHAMPION, "ADMIN_API_KEY": "admin-key", **registry_store.env},
    )
    yield server
    server.stop()


def expected(store: RegistryStore, version: str) -> float:
    return float(spam_probability(store.models[version], [TEXT])[0])


def test_model_metadata_comes_from_the_registry(registry_server: Server) -> None:
    model = httpx.get(f"{registry_server.url}/model").json()
    assert (model["name"], model["version"], model["alias"]) == ("spam-classifier", "1", "champion")
    assert model["source"] == "models:/spam-classifier/1"
    assert 0 <= model["metrics"]["f1"] <= 1 and "blocked_ham_rate" in model["metrics"]
    assert model["data_fingerprint"]["raw_md5"] == "a" * 32 and model["data_fingerprint"]["rows"] == 200
    assert model["trained_at"] and model["run_id"]


def test_texts_are_not_logged_unless_asked(registry_server: Server) -> None:
    prediction = httpx.post(f"{registry_server.url}/predict", json={"text": TEXT}).json()
    engine = create_engine(registry_server.env["PREDICTION_LOG_URL"])
    deadline = time.monotonic() + 10
    while not (rows := [r for r in predlog.read_predictions(engine).records if r.id == prediction["prediction_id"]]):
        assert time.monotonic() < deadline, "prediction never reached the log"
        time.sleep(0.2)
    assert rows[0].text is None and rows[0].text_sha256 == predlog.text_sha256(TEXT)


def test_hot_swap_under_load_fails_no_request(registry_server: Server, registry_store: RegistryStore) -> None:
    """Every request carries a text of its own, so an answer meant for another request, or scored by
    another model than the version it names, shows as a wrong probability."""
    answers: list[tuple[int, str, float, str]] = []
    numbers = itertools.count()
    stop = threading.Event()

    def load() -> None:
        # No keep-alive: every request is a new connection, so the load reaches both workers.
        with httpx.Client(
            base_url=registry_server.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
        ) as client:
            while not stop.is_set():
                text = distinct_text(next(numbers))
                try:
                    response = client.post("/predict", json={"text": text})
                    body = response.json()
                    answers.append(
                        (response.status_code, body.get("model_version", ""), body.get("spam_probability", -1), text)
                    )
                except httpx.HTTPError as exc:
                    answers.append((0, repr(exc), -1.0, text))

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        tracking.set_alias(registry_store.settings, "champion", "2")
        reload = httpx.post(f"{registry_server.url}/admin/reload", headers=ADMIN, timeout=60)
        assert reload.status_code == 200, reload.text
        assert reload.json()["version"] == "2" and reload.json()["swapped"] is True
        swapped_at = len(answers)
        deadline = time.monotonic() + 30
        while not answers[-30:] or {answer[1] for answer in answers[-30:]} != {"2"}:
            assert time.monotonic() < deadline, "not every worker moved to version 2"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    failures = [answer for answer in answers if answer[0] != 200]
    assert not failures, failures[:5]
    assert {answer[1] for answer in answers} == {"1", "2"}
    assert len(answers) > swapped_at > 0
    assert len({text for *_, text in answers}) == len(answers), "every request had a text of its own"
    # Each answer is its own text's probability under the version it names.
    for version in ("1", "2"):
        mine = [(probability, text) for _, named, probability, text in answers if named == version]
        expected = spam_probability(registry_store.models[version], [text for _, text in mine])
        assert [probability for probability, _ in mine] == pytest.approx(expected.tolist(), abs=1e-12)
        # Measured: about half the texts have a score no other text has, under either model.
        assert len(set(expected.tolist())) > len(mine) // 3, "the texts' scores tell many answers apart"


BASES = (
    TEXT,
    "See you at the station later, can you pick up the prize",
    "I'll be home late tonight",
    "Call me about the free ringtone when you are at the gym",
)
WORDS = ("prize", "lunch", "claim", "station", "free", "mum", "urgent", "gym", "reply", "tonight", "cash", "bring")


def distinct_text(number: int) -> str:
    """A text of its own for request `number`: one of a few base messages plus words spelling the rest
    of the number in base 12 (words, not digits: the model reads every number as one placeholder)."""
    number, base = divmod(number, len(BASES))
    words = []
    while True:
        number, digit = divmod(number, len(WORDS))
        words.append(WORDS[digit])
        if not number:
            break
    return f"{BASES[base]} {' '.join(words)}"


@pytest.fixture(scope="module")
def polling_server(tmp_path_factory: pytest.TempPathFactory, registry_store: RegistryStore) -> Iterator[Server]:
    tracking.set_alias(registry_store.settings, "champion", "1")
    server = start_server(
        tmp_path_factory.mktemp("polling-server"),
        {"MODEL_URI": CHAMPION, "WORKERS": "1", "MODEL_POLL_INTERVAL": "0.5", **registry_store.env},
    )
    yield server
    server.stop()


def wait_for(server: Server, path: str, check: object, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{server.url}{path}", timeout=10).json()
        if callable(check) and check(body):
            return body
        assert time.monotonic() < deadline, f"{path} never satisfied the check; last: {body}"
        time.sleep(0.2)


def break_latest_version(store: RegistryStore) -> str:
    """Register a version whose pickled model is corrupt."""
    run = tracking.log_training_run(
        store.settings, store.models["1"], params={}, tags={}, input_example=INPUT_EXAMPLE, run_name="broken"
    )
    artifacts = Path(store.env["SPAM_MLFLOW_ARTIFACT_ROOT"])
    newest = max(artifacts.rglob("model.pkl"), key=lambda path: path.stat().st_mtime)
    newest.write_bytes(b"corrupt")
    return run.version


def test_alias_polling_swaps_and_a_broken_version_keeps_the_old_model(
    polling_server: Server, registry_store: RegistryStore
) -> None:
    settings = registry_store.settings
    assert httpx.get(f"{polling_server.url}/model").json()["version"] == "1"
    tracking.set_alias(settings, "champion", "2")
    wait_for(polling_server, "/model", lambda body: body["version"] == "2")

    broken = break_latest_version(registry_store)
    tracking.set_alias(settings, "champion", broken)
    ready = wait_for(polling_server, "/ready", lambda body: body["status"] == "degraded")
    assert ready["ready"] is True and ready["model_version"] == "2"
    assert "models:/spam-classifier@champion" in str(ready["last_reload_error"])
    answer = httpx.post(f"{polling_server.url}/predict", json={"text": TEXT}).json()
    assert answer["model_version"] == "2" and answer["spam_probability"] == expected(registry_store, "2")
    assert "model reload failed, still serving version 2" in polling_server.log_text()

    tracking.set_alias(settings, "champion", "1")  # a rollback: polling recovers
    wait_for(polling_server, "/ready", lambda body: body["status"] == "ready" and body["model_version"] == "1")
