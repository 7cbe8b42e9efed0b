"""End to end against `python -m api` (the image's command, two uvicorn workers) serving both channels from the
image's default bundles (bundle/sms, bundle/email), with the spamd listener on: HTTP answers of both channels,
Debian's spamc in check, report and filter mode and learning (TELL → a label for the monitor), a hot swap of the
e-mail model reaching every worker and the listener, and a broken e-mail bundle leaving SMS serving while
/ready says degraded and spamc passes mail through unfiltered."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from api.email_channel import message_sha256
from api.spamd_protocol import EmailVerdict, score_message
from spamfilter.modeling.pipeline import model_threshold, spam_probability
from spamfilter.monitoring import predlog
from spamfilter.registry.bundle import MODEL_DIR
from tests.api.conftest import Server, free_port, start_server
from tests.api.email_support import train_email_model, write_email_bundle
from tests.api.routes.test_predict_email import HAM, SPAM
from tests.api.test_spamd_clients import ensure_spamc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ADMIN = {"X-API-Key": "channels-admin"}
SMS_TEXT = "WINNER!! You have won a £1000 prize. Call 09061234567 now to claim"
SPAMC_TIMEOUT = 30


@pytest.fixture(scope="module")
def spamc() -> str:
    return ensure_spamc()


def serve_both(workdir: Path, sms: Path, email: Path, **overrides: str) -> tuple[Server, int]:
    """`python -m api` in `workdir` with the bundles where the image has them and spamd on a free port."""
    shutil.copytree(sms, workdir / "bundle" / "sms")
    shutil.copytree(email, workdir / "bundle" / "email")
    spamd_port = free_port()
    server = start_server(
        workdir,
        {
            "WORKERS": "2",
            "SPAMD_PORT": str(spamd_port),
            "SPAMD_ALLOW_TELL": "true",
            "ADMIN_API_KEY": ADMIN["X-API-Key"],
            "LOG_TEXT": "true",
            "PREDICTION_LOG_FLUSH_INTERVAL": "0.2",
            **overrides,
        },
        wait=False,
    )
    return server, spamd_port


@pytest.fixture(scope="module")
def channels_server(
    tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path, email_bundle_dir: Path
) -> Iterator[tuple[Server, int]]:
    server, port = serve_both(tmp_path_factory.mktemp("channels-server"), bundle_dir, email_bundle_dir)
    try:
        server.wait_ready()
        wait_for_every_worker(server, lambda r: r.json()["status"] == "ready")
        yield server, port
    finally:
        server.stop()


def wait_for_every_worker(
    server: Server, check: Callable[[httpx.Response], bool], path: str = "/ready", timeout: float = 60
) -> httpx.Response:
    """Poll on fresh connections (which reach either worker) until `check` holds 12 times running."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 12:
        assert time.monotonic() < deadline, f"not every worker satisfied the check in {timeout} s:\n{server.log_text()}"
        response = httpx.get(f"{server.url}{path}", timeout=10)
        streak = streak + 1 if check(response) else 0
        time.sleep(0.05)
    return response


def run_spamc(spamc: str, port: int, *args: str, message: bytes) -> subprocess.CompletedProcess[bytes]:
    command = [spamc, "-d", "127.0.0.1", "-p", str(port), "-t", str(SPAMC_TIMEOUT), *args]
    return subprocess.run(command, input=message, capture_output=True, timeout=2 * SPAMC_TIMEOUT, check=False)


def expected_score(model: Any, raw: bytes, version: str = "1") -> float:
    p_spam = float(spam_probability(model, [raw])[0])
    return score_message(EmailVerdict(p_spam, model_threshold(model), version), 5.0).score


def log_engine_of(server: Server) -> Any:
    return create_engine(f"sqlite:///{server.cwd / 'predictions.db'}")


def test_both_channels_answer_over_http(
    channels_server: tuple[Server, int], default_model: Any, email_model: Any
) -> None:
    server, _ = channels_server
    with server.client() as client:
        sms = client.post("/predict", json={"text": SMS_TEXT}).json()
        email = client.post("/predict/email", content=SPAM, headers={"Content-Type": "message/rfc822"}).json()
        ready = client.get("/ready").json()
        model = client.get("/model").json()
    assert sms["spam_probability"] == spam_probability(default_model, [SMS_TEXT])[0]
    assert email["spam_probability"] == spam_probability(email_model, [SPAM])[0]
    assert email["channel"] == "email" and email["summary"]["sender_domain"] == "promo.example.biz"
    assert ready["status"] == "ready" and set(ready["channels"]) == {"sms", "email"}
    assert model["channels"]["email"]["name"] == "spam-classifier-email"
    assert model["channels"]["email"]["source"] == str((server.cwd / "bundle" / "email").resolve())


def test_spamc_check_report_and_filter(channels_server: tuple[Server, int], spamc: str, email_model: Any) -> None:
    server, port = channels_server
    spam_score, ham_score = expected_score(email_model, SPAM), expected_score(email_model, HAM)
    assert spam_score >= 5.0 > ham_score  # else this test would not tell the verdicts apart

    checked = run_spamc(spamc, port, "-c", message=SPAM)
    assert (checked.returncode, checked.stdout) == (1, f"{spam_score:.1f}/5.0\n".encode())
    checked_ham = run_spamc(spamc, port, "-c", message=HAM)
    assert (checked_ham.returncode, checked_ham.stdout) == (0, f"{ham_score:.1f}/5.0\n".encode())

    report = run_spamc(spamc, port, "-R", message=SPAM)
    assert report.returncode == 0
    assert report.stdout.startswith(f"{spam_score:.1f}/5.0\n".encode())
    assert b"this message is spam" in report.stdout
    assert b"sender domain promo.example.biz" in report.stdout and b"SPAMFILTER_EMAIL" in report.stdout

    filtered = run_spamc(spamc, port, message=SPAM)
    assert filtered.returncode == 0
    head, _, rest = filtered.stdout.partition(b"X-Spam-Score: ")
    assert head.startswith(b"X-Spam-Flag: YES\nX-Spam-Status: Yes, score=")  # in the message's own line ending
    assert rest.split(b"\n", 1)[1] == SPAM  # every byte of the message after the three headers
    assert b"model=1" in head

    # Each scan is a logged e-mail prediction (four here, with the HTTP test's one).
    deadline = time.monotonic() + 30
    engine = log_engine_of(server)
    try:
        while len(predlog.read_predictions(engine, channel="email").records) < 4:
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.2)
        records = predlog.read_predictions(engine, channel="email").records
        assert {record.text_sha256 for record in records} == {message_sha256(SPAM), message_sha256(HAM)}
        assert all(record.size_bytes in (len(SPAM), len(HAM)) for record in records)
    finally:
        engine.dispose()


def test_spamc_learn_becomes_a_label_for_the_monitor(channels_server: tuple[Server, int], spamc: str) -> None:
    server, port = channels_server
    message = HAM.replace(b"Subject: Lunch on Friday?", b"Subject: Lunch on Friday, then?")
    filtered = run_spamc(spamc, port, message=message).stdout  # scanned as the MTA would, then delivered
    delivered = b"Delivered-To: you@example.org\n" + filtered
    learned = run_spamc(spamc, port, "-L", "spam", message=delivered)
    assert (learned.returncode, learned.stdout) == (0, b"Message successfully un/learned\n")
    again = run_spamc(spamc, port, "-L", "spam", message=delivered)
    assert again.stdout == b"Message was already un/learned\n"

    engine = log_engine_of(server)
    try:
        deadline = time.monotonic() + 30
        while True:
            logged = [
                record
                for record in predlog.read_predictions(engine, channel="email").records
                if record.text_sha256 == message_sha256(message)
            ]
            if logged or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        (prediction,) = logged
        assert prediction.label == "ham"
        assert predlog.read_feedback(engine, [prediction.id]) == {prediction.id: "spam"}  # the user says: missed
    finally:
        engine.dispose()


def test_a_hot_swap_of_the_email_model_under_load_reaches_every_worker_and_the_listener(
    channels_server: tuple[Server, int], spamc: str, tmp_path: Path, email_model: Any
) -> None:
    server, port = channels_server
    challenger = train_email_model(seed=5, model="naive_bayes")
    email_bundle = server.cwd / "bundle" / "email"
    staged = write_email_bundle(tmp_path / "v2", challenger, version="2")
    shutil.rmtree(email_bundle)
    shutil.copytree(staged, email_bundle)

    # E-mails keep arriving during the swap: none fails, and each answer is its version's model's.
    answers: list[httpx.Response] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                answers.append(client.post("/predict/email", content=SPAM, headers={"Content-Type": "message/rfc822"}))

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        reloaded = httpx.post(f"{server.url}/admin/reload", params={"channel": "email"}, headers=ADMIN, timeout=60)
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["version"] == "2"
        model = wait_for_every_worker(server, lambda r: r.json()["channels"]["email"]["version"] == "2", path="/model")
    finally:
        stop.set()
        sender.join(60)
    assert model.json()["channels"]["sms"]["version"] == "1"  # the other channel is left alone
    assert answers and all(answer.status_code == 200 for answer in answers), {a.status_code for a in answers}
    by_version = {"1": spam_probability(email_model, [SPAM])[0], "2": spam_probability(challenger, [SPAM])[0]}
    assert by_version["1"] != by_version["2"]
    assert all(a.json()["spam_probability"] == by_version[a.json()["model_version"]] for a in answers)

    answer = httpx.post(
        f"{server.url}/predict/email", content=SPAM, headers={"Content-Type": "message/rfc822"}, timeout=30
    ).json()
    assert answer["model_version"] == "2"
    assert answer["spam_probability"] == spam_probability(challenger, [SPAM])[0]
    # Whichever worker's listener takes the connection scores with version 2 now.
    for _ in range(6):
        filtered = run_spamc(spamc, port, message=SPAM).stdout
        assert b" model=2\n" in filtered.split(b"\n\n", 1)[0] + b"\n"
        checked = run_spamc(spamc, port, "-c", message=SPAM)
        assert checked.stdout == f"{expected_score(challenger, SPAM, '2'):.1f}/5.0\n".encode()


def test_a_broken_email_bundle_leaves_sms_serving_and_spamc_passing_mail_through(
    tmp_path: Path, bundle_dir: Path, email_bundle_dir: Path, spamc: str, default_model: Any
) -> None:
    broken = Path(shutil.copytree(email_bundle_dir, tmp_path / "broken-email"))
    (broken / MODEL_DIR / "model.pkl").write_bytes(b"not a pickle")
    server, port = serve_both(tmp_path / "server", bundle_dir, broken)
    try:
        server.wait_ready()  # 200: SMS serves
        ready = wait_for_every_worker(server, lambda r: r.json()["channels"]["email"]["status"] == "failed")
        body = ready.json()
        assert ready.status_code == 200 and body["status"] == "degraded" and body["channel"] == "sms"
        assert "cannot be loaded" in body["channels"]["email"]["last_reload_error"]
        sms = httpx.post(f"{server.url}/predict", json={"text": SMS_TEXT}, timeout=30).json()
        assert sms["spam_probability"] == spam_probability(default_model, [SMS_TEXT])[0]
        email = httpx.post(
            f"{server.url}/predict/email", content=HAM, headers={"Content-Type": "message/rfc822"}, timeout=30
        )
        assert email.status_code == 503 and email.headers["retry-after"] == "1"
        passed = run_spamc(spamc, port, message=SPAM)
        assert (passed.returncode, passed.stdout) == (0, SPAM)  # EX_TEMPFAIL: spamc delivers it unfiltered
        strict = run_spamc(spamc, port, "-x", "-c", message=SPAM)
        assert strict.returncode != 0
        assert "no e-mail model loaded yet" in server.log_text()
    finally:
        server.stop()
