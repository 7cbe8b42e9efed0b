"""api/email_channel.py's message key: the sha256 of a message as this service scanned it, so a message that
comes back to TELL from a mailbox (our X-Spam-* headers added by PROCESS, delivery headers above them) finds
its logged prediction; and the settings that choose the channels and the spamd listener."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.email_channel import message_sha256, monitored_length, scanned_message
from api.main import create_app
from api.settings import ApiSettings
from api.spamd_protocol import EmailVerdict, add_headers, score_message, spam_headers
from spamfilter.errors import ConfigError
from spamfilter.mail import parse_message
from spamfilter.modeling import channels
from tests.api.email_support import make_emails
from tests.conftest import REPO_ROOT

CRLF = b"From: Ann <ann@work.example>\r\nTo: bob@example.org\r\nSubject: Lunch\r\n\r\nLunch at noon?\r\n"
LF = CRLF.replace(b"\r\n", b"\n")
DELIVERY = b"Return-Path: <ann@work.example>\nDelivered-To: bob@example.org\n"


def processed(message: bytes, p_spam: float) -> bytes:
    """The message as the spamd listener's PROCESS hands it back (headers on top, every other byte kept)."""
    return add_headers(message, spam_headers(score_message(EmailVerdict(p_spam, 0.5, "7"), 5.0)))


@pytest.mark.parametrize("message", [CRLF, LF], ids=["crlf", "lf"])
@pytest.mark.parametrize("p_spam", [0.02, 0.99], ids=["ham", "spam-with-flag"])
def test_a_processed_message_keys_as_the_one_scanned(message: bytes, p_spam: float) -> None:
    after = processed(message, p_spam)
    assert after != message and b"X-Spam-Status: " in after
    assert scanned_message(after) == message
    assert message_sha256(after) == message_sha256(message) == hashlib.sha256(message).hexdigest()
    # Delivery adds its headers above ours: still the message scanned.
    eol = b"\r\n" if message == CRLF else b"\n"
    delivered = DELIVERY.replace(b"\n", eol) + after
    assert scanned_message(delivered) == message


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(LF, id="plain"),
        pytest.param(
            b"X-Spam-Status: No, score=-1.9 required=5.0 tests=BAYES_00 autolearn=ham version=3.4.6\n" + LF,
            id="spamassassins-own-status",
        ),
        pytest.param(
            LF + processed(b"From: x@y.example\n\nquoted\n", 0.9)[: -len(b"From: x@y.example\n\nquoted\n")],
            id="our-headers-in-the-body",
        ),
        pytest.param(b"not an e-mail at all", id="no-headers"),
    ],
)
def test_other_messages_key_as_they_are(message: bytes) -> None:
    assert scanned_message(message) == message
    assert message_sha256(message) == hashlib.sha256(message).hexdigest()


@pytest.mark.parametrize("raw", [CRLF, LF, *(raw for _, raw in make_emails(n_ham=4, n_spam=4, seed=3))])
def test_the_logged_length_is_the_monitored_texts(raw: bytes) -> None:
    # The monitor compares each logged e-mail's text_length with its reference profile's lengths.
    assert monitored_length(parse_message(raw)) == len(channels.monitored_texts("email", [raw])[0])


# --- settings -------------------------------------------------------------------------------------------------


def settings(**env: str) -> ApiSettings:
    """The settings from `env` as the environment gives them (strings, by variable name), no .env file."""
    return ApiSettings(_env_file=None, **env)  # type: ignore[arg-type]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in [field.alias for field in ApiSettings.model_fields.values() if field.alias]:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_by_default_sms_serves_bundle_sms_and_email_serves_bundle_email_when_it_is_there(workdir: Path) -> None:
    assert settings().model_sources() == {"sms": "bundle/sms"}
    (workdir / "bundle" / "email").mkdir(parents=True)
    assert settings().model_sources() == {"sms": "bundle/sms", "email": str(workdir / "bundle" / "email")}


def test_an_empty_uri_turns_its_channel_off_and_a_set_one_is_used_as_given(workdir: Path) -> None:
    (workdir / "bundle" / "email").mkdir(parents=True)
    assert settings(EMAIL_MODEL_URI="").model_sources() == {"sms": "bundle/sms"}
    assert settings(MODEL_URI="").model_sources() == {"email": str(workdir / "bundle" / "email")}
    sources = settings(MODEL_URI="models:/spam-classifier@champion", EMAIL_MODEL_URI="elsewhere").model_sources()
    assert sources == {"sms": "models:/spam-classifier@champion", "email": "elsewhere"}  # missing: fails visibly


def test_a_server_with_no_channel_is_refused(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="no channel to serve"):
        create_app(settings(MODEL_URI="", EMAIL_MODEL_URI=""))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "MODEL_URI": "", "EMAIL_MODEL_URI": ""}
    result = subprocess.run(
        [sys.executable, "-m", "api"], cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1 and result.stderr.startswith("error: no channel to serve"), result.stderr


def test_spamd_settings_come_from_spamd_variables(workdir: Path) -> None:
    assert settings().spamd_port is None and settings(SPAMD_PORT="").spamd_port is None
    configured = settings(
        SPAMD_PORT="7830",
        SPAMD_REQUIRED_SCORE="6.5",
        SPAMD_MAX_CHILDREN="3",
        SPAMD_MAX_CONNECTIONS="9",
        SPAMD_READ_TIMEOUT="2.5",
        EMAIL_MAX_BYTES="4096",
    )
    assert configured.spamd_port == 7830 and configured.spamd_host is None and not configured.spamd_allow_tell
    spamd = configured.spamd_settings()
    assert (spamd.required_score, spamd.max_children, spamd.max_connections, spamd.read_timeout) == (6.5, 3, 9, 2.5)
    assert spamd.max_message_bytes == 4096  # EMAIL_MAX_BYTES unless SPAMD_MAX_MESSAGE_BYTES says otherwise
    assert settings(SPAMD_MAX_MESSAGE_BYTES="100").spamd_settings().max_message_bytes == 100


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SPAMD_REQUIRED_SCORE": "5.25"}, "SPAMD_REQUIRED_SCORE"),
        ({"SPAMD_REQUIRED_SCORE": "nan"}, "SPAMD_REQUIRED_SCORE"),
        ({"SPAMD_READ_TIMEOUT": "0"}, "SPAMD_READ_TIMEOUT"),
        ({"SPAMD_REQUEST_TIMEOUT": "inf"}, "SPAMD_REQUEST_TIMEOUT"),
        ({"SPAMD_MAX_CHILDREN": "0"}, "SPAMD_MAX_CHILDREN"),
        ({"SPAMD_MAX_CHILDREN": "8", "SPAMD_MAX_CONNECTIONS": "4"}, "SPAMD_MAX_CONNECTIONS"),
        ({"SPAMD_PORT": "70000"}, "SPAMD_PORT"),
        ({"EMAIL_MAX_BYTES": "0"}, "EMAIL_MAX_BYTES"),
    ],
)
def test_nonsense_spamd_settings_are_refused_naming_the_variable(
    workdir: Path, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        settings(**env)
