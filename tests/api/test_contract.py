"""The service's contract, checked as the issue states it: `schemathesis run <base>/openapi.json --checks all`
against real servers (`python -m api` as the image runs it, both channels, on 127.0.0.1), once without API_KEY
and once with it (every request carrying the key, and schemathesis' auth checks sending some without it):
0 failures, every operation tested, every phase run.

The runs are bounded and seeded (MAX_EXAMPLES per operation and phase, SEED), so a failure replays; the two
run at once, each against its own server. Their HAR logs show what was sent and answered, which the tests
read to check the runs reached what matters: each operation's success, both media types of a posted e-mail,
the 401 of a request without the key.

Besides: with API_KEY set, every operation the document secures answers the documented 401 (the error body,
WWW-Authenticate) without the key or with a wrong one, and the others answer without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.conftest import Server, start_server
from tests.conftest import VENV_BIN
from tests.generated_mail import make_email

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SEED = 13
MAX_EXAMPLES = 10
API_KEY = "contract-key"
HOOKS = Path(__file__).with_name("contract_hooks.py")
# The two configurations: the server's environment on top of the image's.
CONFIGS: dict[str, dict[str, str]] = {"open": {}, "keyed": {"API_KEY": API_KEY}}
READY_TIMEOUT = 120.0  # seconds for both channels' first load; generous, the machine may be busy

EMAIL = make_email(sender="Ann <ann@work.example.com>", subject="Lunch on Friday?", body="Are you around on Friday?")
Operation = tuple[str, str]  # (lower-case method, path), as the document keys them


@dataclass(frozen=True)
class Exchange:
    """One request schemathesis sent and the status it got."""

    method: str  # lower-case
    path: str
    media_type: str | None
    key: str | None  # the X-API-Key sent, if any
    status: int


@dataclass(frozen=True)
class ContractRun:
    output: str  # the CLI's, for failure messages
    returncode: int
    report: dict[str, Any]  # `--report json`
    exchanges: list[Exchange]  # from `--report har`
    document: dict[str, Any]  # the server's /openapi.json


def wait_for_every_channel(server: Server, timeout: float = READY_TIMEOUT) -> None:
    """Until /ready says every channel serves (it is 200 as soon as one does)."""
    deadline = time.monotonic() + timeout
    while (ready := httpx.get(f"{server.url}/ready", timeout=5).json())["status"] != "ready":
        if time.monotonic() > deadline:
            raise AssertionError(f"not every channel serves after {timeout} s: {ready}\n{server.log_text()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def contract_servers(
    tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path, email_bundle_dir: Path
) -> Iterator[dict[str, Server]]:
    """One server per configuration, both channels served from the bundles where the image has them; started
    together, so their start-ups overlap."""
    servers: dict[str, Server] = {}
    try:
        for name, overrides in CONFIGS.items():
            workdir = tmp_path_factory.mktemp(f"contract-{name}")
            shutil.copytree(bundle_dir, workdir / "bundle" / "sms")
            shutil.copytree(email_bundle_dir, workdir / "bundle" / "email")
            # One worker is enough for a contract; a short flush interval keeps the lookup of an unknown
            # prediction id (POST /feedback waits one interval before its 404) quick.
            env = {"WORKERS": "1", "PREDICTION_LOG_FLUSH_INTERVAL": "0.05", **overrides}
            servers[name] = start_server(workdir, env, wait=False)
        for server in servers.values():
            server.wait_ready(timeout=READY_TIMEOUT)
            wait_for_every_channel(server)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def schemathesis_command(server: Server, reports: Path, key: str | None) -> list[str]:
    return [
        str(VENV_BIN / "schemathesis"),
        "run",
        f"{server.url}/openapi.json",
        "--checks=all",
        f"--seed={SEED}",
        f"--max-examples={MAX_EXAMPLES}",
        "--workers=1",
        "--generation-database=none",
        # Hypothesis' too_slow health check measures this machine's load, not the service.
        "--suppress-health-check=too_slow",
        "--no-color",
        # The HAR log keeps the keys sent (schemathesis would mask them), so the tests can tell them apart.
        "--output-sanitize=false",
        "--report=json,har",
        f"--report-json-path={reports / 'report.json'}",
        f"--report-har-path={reports / 'exchanges.har'}",
        *(["--header", f"X-API-Key: {key}"] if key else []),
    ]


def read_exchanges(har: Path) -> list[Exchange]:
    exchanges = []
    for entry in json.loads(har.read_text(encoding="utf-8"))["log"]["entries"]:
        request = entry["request"]
        headers = {header["name"].lower(): header["value"] for header in request["headers"]}
        content_type = headers.get("content-type")
        exchanges.append(
            Exchange(
                method=request["method"].lower(),
                path=urlsplit(request["url"]).path,
                media_type=content_type.split(";", 1)[0].strip() if content_type else None,
                key=headers.get("x-api-key"),
                status=entry["response"]["status"],
            )
        )
    return exchanges


@pytest.fixture(scope="module")
def contract_runs(
    contract_servers: dict[str, Server], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ContractRun]:
    """Both schemathesis runs, side by side, each against its configuration's server."""
    started: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    for name, server in contract_servers.items():
        reports = tmp_path_factory.mktemp(f"schemathesis-{name}")
        command = schemathesis_command(server, reports, CONFIGS[name].get("API_KEY"))
        process = subprocess.Popen(
            command, cwd=reports, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started[name] = (process, reports)
    runs = {}
    for name, (process, reports) in started.items():
        output, _ = process.communicate(timeout=540)
        runs[name] = ContractRun(
            output=output,
            returncode=process.returncode,
            report=json.loads((reports / "report.json").read_text(encoding="utf-8")),
            exchanges=read_exchanges(reports / "exchanges.har"),
            document=httpx.get(f"{contract_servers[name].url}/openapi.json", timeout=30).json(),
        )
    return runs


def documented_operations(document: dict[str, Any]) -> dict[Operation, dict[str, Any]]:
    return {(method, path): operation for path, item in document["paths"].items() for method, operation in item.items()}


def seen(run: ContractRun, operation: Operation) -> list[Exchange]:
    return [exchange for exchange in run.exchanges if (exchange.method, exchange.path) == operation]


@pytest.mark.parametrize("config", CONFIGS)
def test_schemathesis_finds_no_failure(contract_runs: dict[str, ContractRun], config: str) -> None:
    run = contract_runs[config]
    report = run.report
    assert run.returncode == 0, run.output[-8000:]
    assert report["exit_code"] == 0 and report["complete"], run.output[-8000:]
    assert report["failures"] == [], run.output[-8000:]
    assert report["errors"] == [], run.output[-8000:]
    operations = report["operations"]
    assert operations["tested"] == operations["total"] == len(documented_operations(run.document)), operations
    assert operations["skipped"] == operations["errored"] == 0, operations
    assert {phase: outcome["status"] for phase, outcome in report["phases"].items()} == dict.fromkeys(
        ("examples", "coverage", "fuzzing", "stateful"), "success"
    ), report["phases"]
    # No pattern schemathesis could not read, no response it could not check, no operation whose inputs it
    # could rarely make valid. Without keys, admin is off: its 403 to every request is the one warning.
    warnings = {kind: names for kind, names in report["warnings"].items() if names}
    assert warnings == ({"missing_auth": ["POST /admin/reload"]} if config == "open" else {}), warnings


@pytest.mark.parametrize("config", CONFIGS)
def test_every_operation_answered_its_success(contract_runs: dict[str, ContractRun], config: str) -> None:
    """The runs were not stopped at the door: every operation's documented success came back, but admin's
    while admin is off, whose every answer is its 403."""
    run = contract_runs[config]
    for operation, spec in documented_operations(run.document).items():
        statuses = {exchange.status for exchange in seen(run, operation)}
        successes = {int(status) for status in spec["responses"] if status.startswith("2")}
        if config == "open" and operation == ("post", "/admin/reload"):
            assert successes == set() and statuses == {403}, (spec["responses"], statuses)
        else:
            assert successes and successes <= statuses, (operation, statuses)


@pytest.mark.parametrize("config", CONFIGS)
def test_both_media_types_of_an_email_were_accepted_and_non_emails_refused(
    contract_runs: dict[str, ContractRun], config: str
) -> None:
    exchanges = seen(contract_runs[config], ("post", "/predict/email"))
    for media_type in ("message/rfc822", "application/octet-stream"):
        statuses = {exchange.status for exchange in exchanges if exchange.media_type == media_type}
        assert {200, 422} <= statuses, (media_type, statuses)
    assert 415 in {exchange.status for exchange in exchanges if exchange.media_type not in (None, "message/rfc822")}


def test_the_keyed_run_got_401_exactly_for_requests_without_the_key(contract_runs: dict[str, ContractRun]) -> None:
    """schemathesis' auth checks sent the secured operations requests without the key and with a wrong one."""
    run = contract_runs["keyed"]
    secured = {operation for operation, spec in documented_operations(run.document).items() if spec.get("security")}
    assert secured == {
        ("post", "/predict"),
        ("post", "/predict/batch"),
        ("post", "/predict/email"),
        ("post", "/feedback"),
        ("post", "/admin/reload"),
    }
    for operation in secured:
        exchanges = seen(run, operation)
        assert {exchange.status for exchange in exchanges if exchange.key != API_KEY} == {401}, operation
        assert 401 not in {exchange.status for exchange in exchanges if exchange.key == API_KEY}, operation


# --- the key, request by request --------------------------------------------------------------------------------


def sample_requests(prediction_id: str) -> dict[Operation, dict[str, Any]]:
    """A valid request to every operation (httpx keyword arguments)."""
    return {
        ("post", "/predict"): {"json": {"text": "Are we still meeting for lunch at 1?"}},
        ("post", "/predict/batch"): {"json": {"texts": ["See you at the gym around 6", "WINNER!! Call now"]}},
        ("post", "/predict/email"): {"content": EMAIL, "headers": {"Content-Type": "message/rfc822"}},
        ("post", "/feedback"): {"json": {"prediction_id": prediction_id, "label": "ham"}},
        ("post", "/admin/reload"): {},
        ("get", "/health"): {},
        ("get", "/ready"): {},
        ("get", "/model"): {},
        ("get", "/metrics"): {},
    }


def logged_prediction_id(server: Server, headers: dict[str, str]) -> str:
    response = httpx.post(f"{server.url}/predict", json={"text": "Ok lor, going to work now"}, headers=headers)
    assert response.status_code == 200, response.text
    prediction_id = response.json()["prediction_id"]
    assert isinstance(prediction_id, str)
    return prediction_id


def test_with_api_key_secured_operations_answer_the_documented_401_without_it(
    contract_servers: dict[str, Server],
) -> None:
    server = contract_servers["keyed"]
    document = httpx.get(f"{server.url}/openapi.json").json()
    requests = sample_requests(logged_prediction_id(server, {"X-API-Key": API_KEY}))
    operations = documented_operations(document)
    assert set(requests) == set(operations)
    for (method, path), spec in operations.items():
        secured = bool(spec.get("security"))
        for headers in ({}, {"X-API-Key": "not-the-key"}):
            kwargs = requests[(method, path)]
            response = httpx.request(
                method, f"{server.url}{path}", **{**kwargs, "headers": {**kwargs.get("headers", {}), **headers}}
            )
            if not secured:
                assert response.status_code == 200, (path, response.text)
                continue
            assert response.status_code == 401, (path, headers, response.text)
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert set(body) == {"error", "message", "details"} and body["error"] == "unauthorized", body
            assert response.headers["www-authenticate"] == "ApiKey"
            documented = spec["responses"]["401"]
            assert documented["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
            assert documented["headers"]["WWW-Authenticate"]["required"] is True


def test_without_api_key_no_scoring_operation_is_secured_and_each_answers(contract_servers: dict[str, Server]) -> None:
    server = contract_servers["open"]
    document = httpx.get(f"{server.url}/openapi.json").json()
    requests = sample_requests(logged_prediction_id(server, {}))
    for (method, path), spec in documented_operations(document).items():
        response = httpx.request(method, f"{server.url}{path}", timeout=30, **requests[(method, path)])
        if path.startswith("/admin/"):  # admin is off: secured by the admin key nobody has
            assert spec["security"] == [{"AdminApiKey": []}] and set(spec["responses"]) == {"403", "413"}
            assert response.status_code == 403, response.text
        else:
            assert "security" not in spec and "401" not in spec["responses"], (path, spec)
            assert str(response.status_code) in spec["responses"] and response.is_success, (path, response.text)
