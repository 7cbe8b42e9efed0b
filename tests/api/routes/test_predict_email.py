"""The e-mail channel in-process: POST /predict/email (answers, summary, the prediction log, bad input: not an
e-mail, too large, wrong content type, over a parse limit), and both channels side by side in /ready, /model,
/metrics and /admin/reload, including one channel failing while the other serves."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.email_channel import message_sha256
from api.schemas import ChannelModel, EmailPrediction, ModelResponse
from spamfilter.mail import parse_message
from spamfilter.modeling.pipeline import spam_probability
from spamfilter.registry.bundle import MODEL_DIR
from tests.api.email_support import EMAIL_MODEL_NAME, make_emails, train_email_model, write_email_bundle
from tests.api.routes.conftest import (
    FIRST_LOAD_TIMEOUT,
    Service,
    SharedService,
    StartService,
    error_body,
    metric_samples,
    query_log,
    wait_for_first_load,
)
from tests.generated_mail import make_email

RFC822 = {"Content-Type": "message/rfc822"}
ADMIN_KEY = "email-admin-key"
# Written like the generated mail the session's e-mail model learnt from (tests/generated_mail.py), so its
# verdicts are the ones the tests need: spam (HTML, two links, an attachment) and ham (plain text).
SPAM = make_email(
    sender="Prize Desk <desk@promo.example.biz>",
    subject="WIN a FREE laptop now",
    body="Congratulations Alice! You have been selected to receive a free laptop.\n"
    "Click below to claim your laptop before midnight, no purchase required.",
    html=True,
    links=("buy.example.biz", "claim.example.info"),
    attachment=b"\x00\x01binary",
    charset="utf-8",
)
HAM = make_email(
    sender="Ann <ann@work.example.com>",
    subject="Lunch on Friday?",
    body="Are you around on Friday to go through the release plan?\nThanks for the notes on backup.",
)
# 8-bit Latin-1 body bytes, declared as such: not UTF-8, still an e-mail as received.
LATIN1 = (
    b"From: Bob <bob@family.example>\nSubject: Caf\xe9\nContent-Type: text/plain; charset=latin-1\n\nCaf\xe9 at 5?\n"
)
NOT_AN_EMAIL = b"just some words, no header block at all\n\nand a second paragraph\n"


def wait_for_channels(client: TestClient, timeout: float = FIRST_LOAD_TIMEOUT) -> None:
    """Until every channel's first load has ended: /ready is 200 as soon as one channel serves, SMS usually
    before e-mail."""
    deadline = time.monotonic() + timeout
    while any(detail["status"] == "loading" for detail in client.get("/ready").json().get("channels", {}).values()):
        assert time.monotonic() < deadline, client.get("/ready").text
        time.sleep(0.01)


def shared(shared_service: SharedService, **env: str) -> Service:
    service = shared_service(**env)
    wait_for_channels(service.client)
    return service


@contextlib.contextmanager
def started(start_service: StartService, **env: str) -> Iterator[Service]:
    """`start_service(**env)`, every channel's first load ended."""
    with start_service(**env) as service:
        wait_for_channels(service.client)
        yield service


@pytest.fixture
def both(shared_service: SharedService, email_bundle_dir: Path) -> Service:
    """The shared app serving both channels (SMS: the session bundle; e-mail: the session e-mail bundle)."""
    return shared(shared_service, EMAIL_MODEL_URI=str(email_bundle_dir))


def post_email(client: TestClient, raw: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post("/predict/email", content=raw, headers=RFC822 if headers is None else headers)


# --- answers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [SPAM, HAM, LATIN1], ids=["spam-html-attachment", "ham-plain", "latin1-8bit"])
def test_an_email_gets_the_models_verdict_and_a_summary(both: Service, email_model: Any, raw: bytes) -> None:
    response = post_email(both.client, raw)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == set(EmailPrediction.model_fields)
    EmailPrediction.model_validate(body)
    assert body["spam_probability"] == spam_probability(email_model, [raw])[0]
    assert body["label"] == ("spam" if body["spam_probability"] >= 0.5 else "ham")
    assert body["channel"] == "email" and body["model_version"] == "1"
    assert len(body["prediction_id"]) == 36
    parsed = parse_message(raw)
    assert body["summary"] == {
        "subject": parsed.subject,
        "sender_domain": parsed.sender_domain,
        "url_count": len(parsed.urls),
        "attachment_count": len(parsed.attachments),
    }


def test_the_summary_reads_the_message(both: Service) -> None:
    summary = post_email(both.client, SPAM).json()["summary"]
    assert summary == {
        "subject": "WIN a FREE laptop now",
        "sender_domain": "promo.example.biz",
        "url_count": 2,
        "attachment_count": 1,
    }
    assert post_email(both.client, LATIN1).json()["summary"]["subject"] == "Café"


def test_spam_and_ham_are_told_apart(both: Service) -> None:
    rows = make_emails(n_ham=6, n_spam=6, seed=123)  # messages the model has not seen
    answers = [post_email(both.client, raw).json()["label"] for _, raw in rows]
    assert answers == [label for label, _ in rows]


@pytest.mark.parametrize(
    "content_type", ["message/rfc822; charset=us-ascii", "Message/RFC822", "application/octet-stream"]
)
def test_the_message_may_be_declared_as_rfc822_or_plain_bytes(both: Service, content_type: str) -> None:
    assert post_email(both.client, HAM, {"Content-Type": content_type}).status_code == 200


def test_sms_scoring_is_unchanged_beside_it(both: Service, default_model: Any) -> None:
    text = "WINNER!! You have won a £1000 prize. Call 09061234567 now to claim"
    body = both.client.post("/predict", json={"text": text}).json()
    assert body["spam_probability"] == spam_probability(default_model, [text])[0]
    assert "channel" not in body  # /predict's answer keeps its shape


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        pytest.param(NOT_AN_EMAIL, "no header block", id="prose"),
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b'{"text": "hello"}', "no e-mail header field", id="json"),
        pytest.param(b"X-Custom: 1\nX-Other: 2\n\nbody\n", "no e-mail header field", id="no-mail-fields"),
        pytest.param(b"From: a@b.example\n\x00\x01\x02\n\nbody", "binary", id="binary-header"),
    ],
)
def test_not_an_email_is_422_naming_why_and_the_service_keeps_serving(both: Service, raw: bytes, why: str) -> None:
    body = error_body(post_email(both.client, raw), 422, "invalid_request")
    assert why in body["message"] and "not an e-mail" in body["message"]
    assert body["details"] == [{"field": "body", "problem": body["details"][0]["problem"]}]
    assert why in body["details"][0]["problem"]
    assert post_email(both.client, HAM).status_code == 200


def test_a_message_over_a_parse_limit_is_422_naming_the_limit(both: Service) -> None:
    parts = "".join(f"--b\nContent-Type: text/plain\n\npart {i}\n" for i in range(150))
    raw = f"From: a@b.example\nSubject: many\nContent-Type: multipart/mixed; boundary=b\n\n{parts}--b--\n".encode()
    body = error_body(post_email(both.client, raw), 422, "invalid_request")
    assert "max_parts" in body["message"]
    assert post_email(both.client, HAM).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "application/json"}, {"Content-Type": "text/plain"}, {}],
    ids=["json", "text", "none"],
)
def test_a_body_not_declared_as_a_message_is_415(both: Service, headers: dict[str, str]) -> None:
    response = post_email(both.client, HAM, headers)
    if not headers:
        assert "content-type" not in response.request.headers
    body = error_body(response, 415, "unsupported_media_type")
    assert "message/rfc822" in body["message"] and body["details"] == []


def chunked(content: bytes) -> Iterator[bytes]:
    yield content[: len(content) // 2]
    yield content[len(content) // 2 :]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_a_message_over_email_max_bytes_is_413_and_one_at_the_limit_is_read(
    shared_service: SharedService, email_bundle_dir: Path, streamed: bool
) -> None:
    limit = 600
    service = shared(shared_service, EMAIL_MODEL_URI=str(email_bundle_dir), EMAIL_MAX_BYTES=str(limit))
    at_limit = HAM + b"x" * (limit - len(HAM))
    over = at_limit + b"x"
    response = post_email(service.client, chunked(over) if streamed else over)  # type: ignore[arg-type]
    assert ("content-length" in response.request.headers) is not streamed
    body = error_body(response, 413, "too_large")
    assert body["message"] == f"request body is larger than {limit} bytes (EMAIL_MAX_BYTES)"
    answer = post_email(service.client, chunked(at_limit) if streamed else at_limit)  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    # The JSON endpoints keep their own limit: an e-mail-sized limit does not cap /predict/batch.
    texts = ["see you at the station"] * 40
    assert service.client.post("/predict/batch", json={"texts": texts}).status_code == 200


def test_the_api_key_guards_the_email_endpoint(shared_service: SharedService, email_bundle_dir: Path) -> None:
    client = shared(shared_service, EMAIL_MODEL_URI=str(email_bundle_dir), API_KEY="k").client
    error_body(post_email(client, HAM), 401, "unauthorized")
    assert post_email(client, HAM, {**RFC822, "X-API-Key": "k"}).status_code == 200


def test_with_the_email_channel_off_the_endpoint_is_404_and_sms_serves(start_service: StartService) -> None:
    with started(start_service, EMAIL_MODEL_URI="") as service:
        body = error_body(post_email(service.client, HAM), 404, "channel_off")
        assert "EMAIL_MODEL_URI" in body["message"]
        assert service.client.post("/predict", json={"text": "hi there"}).status_code == 200


def test_the_default_email_bundle_is_served_when_it_is_there(
    start_service: StartService, tmp_path: Path, email_bundle_dir: Path
) -> None:
    # EMAIL_MODEL_URI unset: bundle/email in the working directory, when present at start-up.
    shutil.copytree(email_bundle_dir, tmp_path / "bundle" / "email")
    with started(start_service) as service:
        assert post_email(service.client, HAM).status_code == 200
        assert service.client.get("/model").json()["channels"]["email"]["source"] == str(
            (tmp_path / "bundle" / "email").resolve()
        )


# --- the prediction log and feedback --------------------------------------------------------------------------


@pytest.mark.parametrize("log_text", [False, True])
def test_email_predictions_land_in_the_log_with_their_fields(
    start_service: StartService, email_bundle_dir: Path, log_text: bool
) -> None:
    with started(start_service, EMAIL_MODEL_URI=str(email_bundle_dir), LOG_TEXT=str(log_text).lower()) as service:
        answer = post_email(service.client, SPAM).json()
        sms = service.client.post("/predict", json={"text": "see you at 6"}).json()
    (row,) = query_log(service.prediction_log, "SELECT * FROM predictions WHERE id = ?", answer["prediction_id"])
    assert row["channel"] == "email" and row["model_version"] == "1" and row["label"] == answer["label"]
    assert row["spam_probability"] == answer["spam_probability"]
    assert row["size_bytes"] == len(SPAM) and row["sender_domain"] == "promo.example.biz"
    assert row["url_domains"] == "buy.example.biz claim.example.info"
    assert row["text_sha256"] == message_sha256(SPAM)
    assert row["text"] == (SPAM.decode("utf-8") if log_text else None)
    (sms_row,) = query_log(service.prediction_log, "SELECT * FROM predictions WHERE id = ?", sms["prediction_id"])
    assert sms_row["channel"] == "sms" and sms_row["size_bytes"] is None and sms_row["url_domains"] is None


def test_feedback_on_an_email_prediction_carries_its_channel(
    start_service: StartService, email_bundle_dir: Path
) -> None:
    with started(start_service, EMAIL_MODEL_URI=str(email_bundle_dir)) as service:
        email_id = post_email(service.client, HAM).json()["prediction_id"]
        sms_id = service.client.post("/predict", json={"text": "see you at 6"}).json()["prediction_id"]
        for prediction_id in (email_id, sms_id):
            response = service.client.post("/feedback", json={"prediction_id": prediction_id, "label": "spam"})
            assert response.status_code == 201, response.text
    rows = query_log(service.prediction_log, "SELECT prediction_id, channel, true_label FROM feedback ORDER BY id")
    assert [tuple(row) for row in rows] == [(email_id, "email", "spam"), (sms_id, "sms", "spam")]


def test_a_refused_email_is_not_logged(start_service: StartService, email_bundle_dir: Path) -> None:
    with started(start_service, EMAIL_MODEL_URI=str(email_bundle_dir)) as service:
        assert post_email(service.client, NOT_AN_EMAIL).status_code == 422
        assert post_email(service.client, HAM, {"Content-Type": "text/plain"}).status_code == 415
    assert query_log(service.prediction_log, "SELECT * FROM predictions") == []


# --- both channels in /ready, /model, /metrics ----------------------------------------------------------------


def test_ready_and_model_describe_both_channels(both: Service, bundle_dir: Path, email_bundle_dir: Path) -> None:
    ready = both.client.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["status"] == "ready" and body["channel"] == "sms"
    assert body["model_source"] == str(bundle_dir)  # the top level describes SMS, as before channels
    assert set(body["channels"]) == {"sms", "email"}
    assert body["channels"]["email"]["status"] == "ready" and body["channels"]["email"]["model_version"] == "1"
    assert body["channels"]["email"]["model_source"] == str(email_bundle_dir)

    model = both.client.get("/model").json()
    ModelResponse.model_validate(model)
    assert model["channel"] == "sms" and model["name"] == "spam-classifier"
    email = model["channels"]["email"]
    assert set(email) == set(ChannelModel.model_fields)
    assert email["channel"] == "email" and email["name"] == EMAIL_MODEL_NAME and email["version"] == "1"
    assert email["source"] == str(email_bundle_dir.resolve()) and email["scorer"] == "lean"
    assert model["channels"]["sms"]["name"] == "spam-classifier"


def test_metrics_count_each_channel(start_service: StartService, email_bundle_dir: Path) -> None:
    with started(start_service, EMAIL_MODEL_URI=str(email_bundle_dir)) as service:
        labels = [post_email(service.client, raw).json()["label"] for raw in (SPAM, HAM, HAM)]
        service.client.post("/predict", json={"text": "see you at 6"})
        samples = metric_samples(service.client.get("/metrics").text)

    def value(name: str, /, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    assert labels == ["spam", "ham", "ham"]
    assert value("spam_api_channel_predictions_total", channel="email", label="spam") == 1
    assert value("spam_api_channel_predictions_total", channel="email", label="ham") == 2
    assert value("spam_api_channel_predictions_total", channel="sms", label="ham") == 1
    assert value("spam_api_predictions_total", label="ham") == 3  # every channel together
    assert (
        value("spam_api_channel_serving", channel="email") == 1
        and value("spam_api_channel_serving", channel="sms") == 1
    )
    assert value("spam_api_channel_model_info", channel="email", name=EMAIL_MODEL_NAME, version="1") == 1
    assert value("spam_api_channel_model_reloads_total", channel="email", outcome="ok") == 1
    assert value("spam_api_requests_total", endpoint="/predict/email", method="POST", status="200") == 3


# --- one channel failing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("broken", ["sms", "email"])
def test_one_channel_failing_to_load_leaves_the_other_serving_and_ready_says_degraded(
    start_service: StartService, tmp_path: Path, email_bundle_dir: Path, bundle_dir: Path, broken: str
) -> None:
    sources = {"sms": tmp_path / "sms", "email": tmp_path / "email"}
    shutil.copytree(bundle_dir, sources["sms"])
    shutil.copytree(email_bundle_dir, sources["email"])
    (sources[broken] / MODEL_DIR / "model.pkl").write_bytes(b"not a pickle")
    with started(start_service, MODEL_URI=str(sources["sms"]), EMAIL_MODEL_URI=str(sources["email"])) as service:
        client = service.client
        ready = client.get("/ready")
        sms = client.post("/predict", json={"text": "see you at 6"})
        email = post_email(client, HAM)
        model = client.get("/model")
        samples = metric_samples(client.get("/metrics").text)
    assert ready.status_code == 200
    body = ready.json()
    working = "email" if broken == "sms" else "sms"
    assert body["ready"] is True and body["status"] == "degraded"
    assert body["channel"] == working  # the top level describes a channel that serves
    assert body["channels"][broken]["status"] == "failed" and body["channels"][broken]["ready"] is False
    assert "cannot be loaded" in body["channels"][broken]["last_reload_error"]
    assert body["channels"][working]["status"] == "ready"
    answers = {"sms": sms, "email": email}
    assert answers[working].status_code == 200
    error = error_body(answers[broken], 503, "not_ready")
    assert str(sources[broken]) in error["message"]
    assert model.status_code == 200
    assert model.json()["channel"] == working and model.json()["channels"][broken] is None
    assert samples[("spam_api_channel_serving", frozenset({("channel", broken)}))] == 0
    assert samples[("spam_api_channel_serving", frozenset({("channel", working)}))] == 1


def test_with_no_channel_serving_ready_is_503(start_service: StartService, tmp_path: Path) -> None:
    with start_service(
        wait=False, MODEL_URI=str(tmp_path / "no-sms"), EMAIL_MODEL_URI=str(tmp_path / "no-email")
    ) as service:
        response = wait_for_first_load(service.client)
        while response.json()["status"] == "loading":  # until both first loads have ended
            response = service.client.get("/ready")
        model = service.client.get("/model")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and body["status"] == "failed"
    assert {detail["status"] for detail in body["channels"].values()} == {"failed"}
    error_body(model, 503, "not_ready")


# --- reloads --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def challenger_email_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    model = train_email_model(seed=5, model="naive_bayes")
    return write_email_bundle(tmp_path_factory.mktemp("email-challenger") / "bundle", model, version="2"), model


@pytest.fixture
def two_channel_admin(start_service: StartService, tmp_path: Path, email_bundle_dir: Path) -> Iterator[Service]:
    """Both channels, the e-mail bundle a copy this test may rewrite (tmp_path/email), an admin key."""
    email = Path(shutil.copytree(email_bundle_dir, tmp_path / "email"))
    with started(start_service, EMAIL_MODEL_URI=str(email), ADMIN_API_KEY=ADMIN_KEY) as service:
        yield service


def test_reloading_the_email_channel_swaps_its_model_only(
    two_channel_admin: Service, tmp_path: Path, challenger_email_bundle: tuple[Path, Any]
) -> None:
    client = two_channel_admin.client
    challenger, challenger_model = challenger_email_bundle
    shutil.rmtree(tmp_path / "email")
    shutil.copytree(challenger, tmp_path / "email")

    response = client.post("/admin/reload", params={"channel": "email"}, headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == "2" and body["previous_version"] == "1" and body["swapped"] is True
    assert body["channels"] == {
        "email": {"ok": True, "swapped": True, "version": "2", "previous_version": "1", "error": None}
    }
    answer = post_email(client, SPAM).json()
    assert answer["model_version"] == "2"
    assert answer["spam_probability"] == spam_probability(challenger_model, [SPAM])[0]
    ready = client.get("/ready").json()
    assert ready["channels"]["email"]["reloads"] == 2 and ready["channels"]["sms"]["reloads"] == 1


def test_polling_picks_up_a_new_email_export(
    start_service: StartService, tmp_path: Path, email_bundle_dir: Path, challenger_email_bundle: tuple[Path, Any]
) -> None:
    email = Path(shutil.copytree(email_bundle_dir, tmp_path / "email"))
    with started(start_service, EMAIL_MODEL_URI=str(email), MODEL_POLL_INTERVAL="0.2") as service:
        # As an export replaces a bundle: the new one complete beside it, then renamed into place.
        staged = Path(shutil.copytree(challenger_email_bundle[0], tmp_path / "email.new"))
        email.rename(tmp_path / "email.old")
        staged.rename(email)
        deadline = time.monotonic() + FIRST_LOAD_TIMEOUT
        while service.client.get("/model").json()["channels"]["email"]["version"] != "2":
            assert time.monotonic() < deadline, service.client.get("/ready").text
            time.sleep(0.05)
        assert post_email(service.client, HAM).json()["model_version"] == "2"
        ready = service.client.get("/ready").json()
    assert ready["status"] == "ready" and ready["channels"]["sms"]["reloads"] == 1  # SMS's source did not change


def test_a_reload_of_every_channel_reports_each(two_channel_admin: Service) -> None:
    response = two_channel_admin.client.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["channels"]) == {"sms", "email"}
    assert all(outcome["ok"] and outcome["swapped"] for outcome in body["channels"].values())


def test_a_failed_email_reload_is_502_naming_the_channel_and_both_serve_on(
    two_channel_admin: Service, tmp_path: Path
) -> None:
    client = two_channel_admin.client
    (tmp_path / "email" / MODEL_DIR / "model.pkl").write_bytes(b"not a pickle")
    body = error_body(client.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY}), 502, "reload_failed")
    assert body["message"].startswith("e-mail: ") and body["message"].endswith("still serving version 1")
    assert body["details"] == [{"channel": "email", "serving_version": "1"}]
    ready = client.get("/ready").json()
    assert ready["status"] == "degraded" and ready["channels"]["email"]["status"] == "degraded"
    assert ready["channels"]["sms"]["status"] == "ready"
    assert post_email(client, HAM).json()["model_version"] == "1"


def test_reloading_a_channel_the_server_does_not_serve_is_404(shared_service: SharedService) -> None:
    client = shared(shared_service, ADMIN_API_KEY=ADMIN_KEY, EMAIL_MODEL_URI="").client
    response = client.post("/admin/reload", params={"channel": "email"}, headers={"X-API-Key": ADMIN_KEY})
    error_body(response, 404, "channel_off")
    response = client.post("/admin/reload", params={"channel": "fax"}, headers={"X-API-Key": ADMIN_KEY})
    assert error_body(response, 422, "invalid_request")["details"][0]["field"] == "query.channel"
