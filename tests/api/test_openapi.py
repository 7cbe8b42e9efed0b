"""The OpenAPI document states the contract, configured as the server is (api/openapi.py): the limits, the
security schemes and every status code each operation can answer, read from /openapi.json of apps built
in-process (no model is loaded: the document needs none). And the patterns in it say what the service
accepts: the text pattern what `check_text` does not refuse as empty, the e-mail pattern what the parser
takes for an e-mail, in Python's dialect and in ECMA 262's (jsonschema-rs), which a JSON Schema validator
uses. tests/api/test_contract.py runs schemathesis against the same documents on real servers."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.deps import check_text
from api.errors import ApiError
from api.schemas import EMAIL_HEADER_FIELDS, NON_BLANK_PATTERN, WHITESPACE_CLASS, email_pattern
from spamfilter.mail import looks_like_email
from tests.api.routes.conftest import build_app

ERROR_BODY = {"$ref": "#/components/schemas/ErrorResponse"}
SCORING = (("post", "/predict"), ("post", "/predict/batch"), ("post", "/predict/email"), ("post", "/feedback"))
ADMIN = ("post", "/admin/reload")
PROPERTIES = settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def served_document(workdir: Path, **env: str) -> dict[str, Any]:
    """/openapi.json of an app serving both channels (from sources never loaded), `env` on top."""
    app = build_app(workdir, {"MODEL_URI": "bundle/sms", "EMAIL_MODEL_URI": "bundle/email", **env})
    response = TestClient(app).get("/openapi.json")  # outside `with`: no lifespan, no model load
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    spec: dict[str, Any] = document["paths"][path][method]
    return spec


def statuses(document: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    return {
        (method, path): set(spec["responses"])
        for path, item in document["paths"].items()
        for method, spec in item.items()
    }


# --- limits -----------------------------------------------------------------------------------------------------


def test_the_limits_of_texts_batches_and_emails_are_the_configured_ones(tmp_path: Path) -> None:
    document = served_document(tmp_path, MAX_TEXT_LENGTH="123", MAX_BATCH_SIZE="7", EMAIL_MAX_BYTES="4096")
    schemas = document["components"]["schemas"]
    text = schemas["PredictRequest"]["properties"]["text"]
    assert (text["type"], text["minLength"], text["maxLength"], text["pattern"]) == (
        "string",
        1,
        123,
        NON_BLANK_PATTERN,
    )
    texts = schemas["BatchPredictRequest"]["properties"]["texts"]
    assert (texts["type"], texts["minItems"], texts["maxItems"]) == ("array", 1, 7)
    assert texts["items"] == {"type": "string", "minLength": 1, "maxLength": 123, "pattern": NON_BLANK_PATTERN}
    prediction_id = schemas["FeedbackRequest"]["properties"]["prediction_id"]
    assert (prediction_id["minLength"], prediction_id["maxLength"]) == (1, 36)

    body = operation(document, "post", "/predict/email")["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"message/rfc822", "application/octet-stream"}
    for media in body["content"].values():
        schema = media["schema"]
        assert (schema["type"], schema["maxLength"], schema["pattern"]) == ("string", 4096, email_pattern())


def test_the_default_limits_are_stated_too(tmp_path: Path) -> None:
    document = served_document(tmp_path)
    texts = document["components"]["schemas"]["BatchPredictRequest"]["properties"]["texts"]
    assert (texts["maxItems"], texts["items"]["maxLength"]) == (1000, 5000)
    (media, *_) = operation(document, "post", "/predict/email")["requestBody"]["content"].values()
    assert media["schema"]["maxLength"] == 1_048_576


# --- security ---------------------------------------------------------------------------------------------------


def test_without_keys_the_scoring_operations_need_none_and_admin_is_off(tmp_path: Path) -> None:
    document = served_document(tmp_path)
    for method, path in SCORING:
        spec = operation(document, method, path)
        assert "security" not in spec and "401" not in spec["responses"], path
    admin = operation(document, *ADMIN)
    assert admin["security"] == [{"AdminApiKey": []}]
    assert set(admin["responses"]) == {"403", "413"}  # the key check refuses everything before anything else


def test_with_api_key_every_scoring_operation_needs_it_and_answers_401_without(tmp_path: Path) -> None:
    document = served_document(tmp_path, API_KEY="k")
    schemes = document["components"]["securitySchemes"]
    for scheme in ("ApiKey", "AdminApiKey"):
        assert {key: schemes[scheme][key] for key in ("type", "in", "name")} == {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
        }
    for method, path in SCORING:
        spec = operation(document, method, path)
        assert spec["security"] == [{"ApiKey": []}], path
        unauthorized = spec["responses"]["401"]
        assert unauthorized["content"]["application/json"]["schema"] == ERROR_BODY
        assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True
    admin = operation(document, *ADMIN)
    assert admin["security"] == [{"AdminApiKey": []}]  # API_KEY serves for admin when ADMIN_API_KEY is unset
    assert "401" in admin["responses"] and "403" not in admin["responses"]
    for method, path in (("get", "/health"), ("get", "/ready"), ("get", "/model"), ("get", "/metrics")):
        assert "security" not in operation(document, method, path), path


def test_an_admin_key_alone_secures_admin_only(tmp_path: Path) -> None:
    document = served_document(tmp_path, ADMIN_API_KEY="a")
    for method, path in SCORING:
        assert "security" not in operation(document, method, path), path
    admin = operation(document, *ADMIN)
    assert admin["security"] == [{"AdminApiKey": []}]
    assert "401" in admin["responses"] and "403" not in admin["responses"]


# --- status codes -----------------------------------------------------------------------------------------------


def test_every_status_code_each_operation_can_answer_is_documented(tmp_path: Path) -> None:
    """Both channels served, the key and the log on: the full list, no more (the channel-off 404 and the
    log-off 503 cannot happen here)."""
    document = served_document(tmp_path, API_KEY="k")
    assert statuses(document) == {
        ("post", "/predict"): {"200", "400", "401", "413", "422", "503"},
        ("post", "/predict/batch"): {"200", "400", "401", "413", "422", "503"},
        ("post", "/predict/email"): {"200", "401", "413", "415", "422", "503"},
        ("post", "/feedback"): {"201", "400", "401", "404", "413", "422"},
        ("get", "/health"): {"200"},
        ("get", "/ready"): {"200", "503"},
        ("get", "/model"): {"200", "503"},
        ("get", "/metrics"): {"200"},
        ("post", "/admin/reload"): {"200", "401", "413", "422", "502"},
    }
    for (method, path), codes in statuses(document).items():
        responses = operation(document, method, path)["responses"]
        for code in codes - {"200", "201"}:
            expected = {"$ref": "#/components/schemas/ReadyResponse"} if path == "/ready" else ERROR_BODY
            assert responses[code]["content"]["application/json"]["schema"] == expected, (path, code)
    # The 503 of a model not loaded yet says when to come back.
    for method, path in (
        ("post", "/predict"),
        ("post", "/predict/batch"),
        ("post", "/predict/email"),
        ("get", "/model"),
    ):
        assert operation(document, method, path)["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    assert set(operation(document, "get", "/metrics")["responses"]["200"]["content"]) == {"text/plain"}


@pytest.mark.parametrize(
    ("env", "with_404"),
    [
        ({"MODEL_URI": ""}, {("post", "/predict"), ("post", "/predict/batch"), ADMIN}),
        ({"EMAIL_MODEL_URI": ""}, {("post", "/predict/email"), ADMIN}),
    ],
)
def test_an_operation_of_a_channel_that_is_off_documents_its_404(
    tmp_path: Path, env: dict[str, str], with_404: set[tuple[str, str]]
) -> None:
    document = served_document(tmp_path, ADMIN_API_KEY="a", **env)
    documented = {key for key, codes in statuses(document).items() if "404" in codes}
    assert documented == with_404 | {("post", "/feedback")}  # /feedback: an unknown prediction id, always


def test_feedback_documents_its_503_while_the_log_is_off(tmp_path: Path) -> None:
    assert "503" in operation(served_document(tmp_path, PREDICTION_LOG_URL=""), "post", "/feedback")["responses"]
    assert "503" not in operation(served_document(tmp_path), "post", "/feedback")["responses"]


# --- the patterns say what the service accepts -------------------------------------------------------------------


@functools.cache
def ecma_validator(pattern: str) -> Any:
    return jsonschema_rs.validator_for({"type": "string", "pattern": pattern})


def ecma_matches(pattern: str, value: str) -> bool:
    """Whether `value` matches `pattern` for a JSON Schema validator (jsonschema-rs: ECMA 262 semantics)."""
    return bool(ecma_validator(pattern).is_valid(value))


def test_the_whitespace_class_is_what_str_isspace_counts() -> None:
    every_character = "".join(map(chr, range(0x110000)))
    assert set(re.findall(f"[{WHITESPACE_CLASS}]", every_character)) == {c for c in every_character if c.isspace()}


def refused_as_empty(text: str) -> bool:
    try:
        check_text(text, limit=10_000, field_name="text")
    except ApiError as error:
        assert error.details == [{"field": "text", "problem": "is empty"}], error.details
        return True
    return False


# Texts made mostly of whitespace, Python's and ECMA 262's (U+FEFF is only the latter's), and a little else.
SPACES = st.sampled_from(
    [*" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u202f\u3000\ufeff", "a", "é"]
)


@PROPERTIES
@given(st.one_of(st.text(SPACES, max_size=8), st.text(max_size=8)))
def test_the_text_pattern_admits_exactly_the_texts_check_text_does_not_refuse_as_empty(text: str) -> None:
    admitted = not refused_as_empty(text)
    assert (re.search(NON_BLANK_PATTERN, text) is not None) == admitted
    assert ecma_matches(NON_BLANK_PATTERN, text) == admitted


def test_the_email_header_fields_are_the_parsers() -> None:
    # The parser's set is private; the pattern must follow it, so this pins the two together.
    from spamfilter.mail.parse import _MESSAGE_FIELDS

    assert {name.lower().encode() for name in EMAIL_HEADER_FIELDS} == set(_MESSAGE_FIELDS)


# Messages put together from the pieces the parser's test turns on: field names (known, unknown, in any
# case, with a space before the colon), line ends and empty lines, NUL, an mbox "From " line, a byte-order mark.
FIELD_NAMES = st.sampled_from([*EMAIL_HEADER_FIELDS, "X-Mailer", "List-Id", "Fro", "Subject ", "x"]).flatmap(
    lambda name: st.sampled_from([name, name.upper(), name.lower()])
)
PIECES = st.one_of(
    FIELD_NAMES.map(lambda name: f"{name}:"),
    st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\n\r\n", "\x00", " ", "From ", "\ufeff", ":", " value", "é"]),
    st.text(max_size=4),
)


@PROPERTIES
@given(st.lists(PIECES, max_size=12).map("".join))
def test_the_email_pattern_matches_exactly_what_the_parser_takes_for_an_email(message: str) -> None:
    is_email = looks_like_email(message.encode("utf-8"))
    assert (re.search(email_pattern(), message) is not None) == is_email
    assert ecma_matches(email_pattern(), message) == is_email


@settings(PROPERTIES, max_examples=100)  # generating from the long pattern is the slow part
@given(st.from_regex(email_pattern()))
def test_every_message_the_email_pattern_generates_is_an_email(message: str) -> None:
    # What schemathesis sends as a valid body: generated from the pattern, as here.
    assert looks_like_email(message.encode("utf-8"))
