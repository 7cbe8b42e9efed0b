"""The spamd listener as the app runs it (SPAMD_PORT set, started and stopped by the lifespan) over the e-mail
channel, in-process with raw sockets: verdicts from the e-mail model, each one logged; TELL as labels for the
monitor (only with SPAMD_ALLOW_TELL), found again after PROCESS and delivery changed the message; and the
listener's answers when the message is not an e-mail, too large, or no e-mail model serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from api.email_channel import message_sha256
from api.spamd_protocol import spam_score
from spamfilter.modeling.pipeline import model_threshold, spam_probability
from spamfilter.monitoring import predlog
from tests.api.conftest import free_port
from tests.api.routes.conftest import Service, StartService, metric_samples, query_log, wait_for_first_load
from tests.api.routes.test_predict_email import HAM, NOT_AN_EMAIL, SPAM, started
from tests.api.spamd_support import exchange, parse_response, request

DELIVERY = b"Return-Path: <desk@promo.example.biz>\nDelivered-To: you@example.org\n"


@pytest.fixture
def spamd_service(start_service: StartService, email_bundle_dir: Path) -> Iterator[tuple[Service, int]]:
    """Both channels, the spamd listener on a free port, TELL allowed."""
    port = free_port()
    with started(
        start_service, EMAIL_MODEL_URI=str(email_bundle_dir), SPAMD_PORT=str(port), SPAMD_ALLOW_TELL="true"
    ) as service:
        yield service, port


def flush(service: Service) -> None:
    writer = service.app.state.api.writer
    assert writer is not None
    writer.flush()


def test_check_and_report_give_the_email_models_verdict_and_log_it(
    spamd_service: tuple[Service, int], email_model: Any
) -> None:
    service, port = spamd_service
    check = parse_response(exchange(port, request("CHECK", SPAM)))
    report = parse_response(exchange(port, request("REPORT", HAM)))
    p_spam = spam_probability(email_model, [SPAM])[0]
    score = spam_score(p_spam, model_threshold(email_model), 5.0)
    assert check.code == 0 and check.headers["Spam"] == f"True ; {score:.1f} / 5.0"
    assert report.code == 0 and report.headers["Spam"].startswith("False ; ")
    assert b"sender domain work.example.com" in report.body and b"subject 'Lunch on Friday?'" in report.body
    flush(service)
    rows = query_log(service.prediction_log, "SELECT * FROM predictions ORDER BY created_at")
    assert [(row["channel"], row["label"], row["text_sha256"]) for row in rows] == [
        ("email", "spam", message_sha256(SPAM)),
        ("email", "ham", message_sha256(HAM)),
    ]
    assert rows[0]["spam_probability"] == p_spam and rows[0]["sender_domain"] == "promo.example.biz"
    samples = metric_samples(service.client.get("/metrics").text)
    assert samples[("spam_api_channel_predictions_total", frozenset({("channel", "email"), ("label", "spam")}))] == 1


def test_tell_labels_the_logged_prediction_of_the_message_even_after_process_and_delivery(
    spamd_service: tuple[Service, int],
) -> None:
    service, port = spamd_service
    processed = parse_response(exchange(port, request("PROCESS", SPAM))).body
    assert processed.startswith(b"X-Spam-Flag: YES\n") and processed.endswith(SPAM)
    from_mailbox = DELIVERY + processed  # what the user's mail client hands to `spamc -L`

    told = parse_response(exchange(port, tell(from_mailbox, "ham")))
    again = parse_response(exchange(port, tell(from_mailbox, "ham")))
    assert told.code == 0 and told.headers.get("DidSet") == "local"
    assert again.code == 0 and "DidSet" not in again.headers  # already learned: spamc says so

    flush(service)
    engine = create_engine(f"sqlite:///{service.prediction_log}")
    try:
        (prediction,) = predlog.read_predictions(engine, channel="email").records
        assert predlog.read_feedback(engine, [prediction.id]) == {prediction.id: "ham"}
        forget = parse_response(exchange(port, tell(from_mailbox, None)))
        assert forget.headers.get("DidRemove") == "local"
        assert predlog.read_feedback(engine, [prediction.id]) == {}
    finally:
        engine.dispose()


def tell(message: bytes, label: str | None) -> bytes:
    """A TELL as `spamc -L <label>` sends it (`spamc -L forget` with None)."""
    asked = {"Message-class": label, "Set": "local"} if label is not None else {"Remove": "local"}
    return request("TELL", message, headers={"Content-length": str(len(message)), **asked})


def test_not_an_email_gets_ex_dataerr_and_the_listener_serves_on(spamd_service: tuple[Service, int]) -> None:
    _, port = spamd_service
    answer = exchange(port, request("CHECK", NOT_AN_EMAIL))
    assert answer.startswith(b"SPAMD/1.1 65 EX_DATAERR not an e-mail: ")
    assert parse_response(exchange(port, request("CHECK", HAM))).code == 0


def test_tell_is_refused_unless_allowed(start_service: StartService, email_bundle_dir: Path) -> None:
    port = free_port()
    with started(start_service, EMAIL_MODEL_URI=str(email_bundle_dir), SPAMD_PORT=str(port)) as service:
        answer = exchange(port, tell(HAM, "spam"))
        assert answer.startswith(b"SPAMD/1.1 69 EX_UNAVAILABLE TELL commands have not been enabled")
        assert parse_response(exchange(port, request("CHECK", HAM))).code == 0
    assert query_log(service.prediction_log, "SELECT * FROM message_feedback") == []


def test_a_message_over_email_max_bytes_is_refused_by_the_listener(
    start_service: StartService, email_bundle_dir: Path
) -> None:
    port = free_port()
    with started(start_service, EMAIL_MODEL_URI=str(email_bundle_dir), SPAMD_PORT=str(port), EMAIL_MAX_BYTES="400"):
        big = HAM + b"x" * 400
        assert exchange(port, request("CHECK", big)).startswith(b"SPAMD/1.1 69 EX_UNAVAILABLE Content-length exceeds")
        assert parse_response(exchange(port, request("CHECK", HAM))).code == 0


@pytest.mark.parametrize(
    ("email_uri", "words"), [("missing", b"no e-mail model loaded yet"), ("", b"the e-mail channel is off")]
)
def test_without_an_email_model_scans_get_ex_tempfail(
    start_service: StartService, tmp_path: Path, email_uri: str, words: bytes
) -> None:
    port = free_port()
    uri = str(tmp_path / email_uri) if email_uri else ""
    with start_service(wait=False, EMAIL_MODEL_URI=uri, SPAMD_PORT=str(port)) as service:
        wait_for_first_load(service.client)
        answer = exchange(port, request("CHECK", HAM))
        assert answer.startswith(b"SPAMD/1.1 75 EX_TEMPFAIL " + words), answer
        assert service.client.post("/predict", json={"text": "see you at 6"}).status_code == 200  # SMS serves on


def test_the_listener_stops_with_the_app(start_service: StartService, email_bundle_dir: Path) -> None:
    port = free_port()
    with started(start_service, EMAIL_MODEL_URI=str(email_bundle_dir), SPAMD_PORT=str(port)):
        assert exchange(port, b"PING SPAMC/1.5\r\n\r\n").startswith(b"SPAMD/1.5 0 PONG")
    with pytest.raises(ConnectionRefusedError):
        exchange(port, b"PING SPAMC/1.5\r\n\r\n")
