"""deploy/deploy.sh, require-env.sh and remote-deploy.sh, driven with stand-in `docker`, `ssh` and `scp`
commands on PATH that record their calls. The API is a real HTTP server whose answers depend on the
image the stand-in `docker compose up` last started (the model version of each channel it serves), so
deploy.sh's real curl and JSON checks run against it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
IMAGE = "someone/spamfilter-api"

FAKE_DOCKER = r"""#!/usr/bin/env bash
# Records each call (with the image compose would run) and plays a Docker engine.
printf '%s|%s\n' "${SPAMFILTER_IMAGE:-}" "$*" >>"$FAKE_DOCKER_DIR/calls.log"
case "$1" in
  pull)
    if grep -qxF "$2" "$FAKE_DOCKER_DIR/missing" 2>/dev/null; then echo "manifest for $2 not found" >&2; exit 1; fi ;;
  compose)
    for arg in "$@"; do
      case "$arg" in
        up) printf '%s\n' "$SPAMFILTER_IMAGE" >"$FAKE_DOCKER_DIR/running" ;;
        down) rm -f "$FAKE_DOCKER_DIR/running" ;;
      esac
    done ;;
esac
"""


@dataclass
class Host:
    """A deploy target: the stand-in docker's state, the API's behaviour per tag, deploy.sh's env."""

    dir: Path
    env: dict[str, str]
    # tag → what its /model answers: a version per channel (None: the channel has no model), or one version
    # (an image from before the channels); None: never ready.
    versions: dict[str, dict[str, str | None] | str | None]

    def deploy(self, tag: str, versions: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "DEPLOY_TAG": tag, "EXPECTED_VERSIONS": versions, **extra}
        return subprocess.run(
            [str(DEPLOY / "deploy.sh")], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    def calls(self) -> list[str]:
        path = self.dir / "docker" / "calls.log"
        return path.read_text().splitlines() if path.exists() else []

    def running(self) -> str | None:
        path = self.dir / "docker" / "running"
        return path.read_text().strip() if path.exists() else None

    def recorded(self, name: str) -> str | None:
        path = self.dir / "host" / name
        return path.read_text().strip() if path.exists() else None

    def clear_calls(self) -> None:
        (self.dir / "docker" / "calls.log").unlink(missing_ok=True)


def write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_executable(bin_dir / "docker", FAKE_DOCKER)
    (tmp_path / "docker").mkdir()
    (tmp_path / "host").mkdir()
    versions: dict[str, dict[str, str | None] | str | None] = {}
    running = tmp_path / "docker" / "running"

    class Api(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            image = running.read_text().strip() if running.exists() else ""
            version = versions.get(image.rpartition(":")[2]) if image else None
            if version is None:
                self.send_response(503 if image else 502)
                self.end_headers()
                return
            body: dict[str, object] = {"status": "ready"}
            if self.path == "/model" and isinstance(version, dict):
                # As the API answers: the first serving channel's fields at the top, then every channel's.
                channels = {name: {"channel": name, "version": v} if v else None for name, v in version.items()}
                body = {**next(c for c in channels.values() if c), "channels": channels}
            elif self.path == "/model":
                body = {"name": "spam-classifier", "version": version}
            data = json.dumps(body, separators=(",", ":")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FAKE_DOCKER_DIR": str(tmp_path / "docker"),
        "DEPLOY_IMAGE": IMAGE,
        "DEPLOY_DIR": str(tmp_path / "host"),
        "API_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "READY_TIMEOUT": "2",
        "POLL_INTERVAL": "0.1",
    }
    yield Host(tmp_path, env, versions)
    server.shutdown()
    server.server_close()


def compose_ups(calls: list[str]) -> list[str]:
    return [call.split("|", 1)[0] for call in calls if " up " in f" {call.split('|', 1)[1]} "]


def test_deploy_pulls_brings_up_checks_every_channels_version_and_records_the_tag(host: Host) -> None:
    host.versions["aaa"] = {"sms": "3", "email": "1"}
    result = host.deploy("aaa", "sms=3 email=1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is ready and serves sms=3, email=1" in result.stdout
    calls = host.calls()
    assert calls[0] == f"|pull {IMAGE}:aaa"
    assert compose_ups(calls) == [f"{IMAGE}:aaa"]
    assert f"--file {host.dir / 'host' / 'docker-compose.yml'}" in calls[1]
    assert host.recorded(".deployed-tag") == "aaa"
    assert host.running() == f"{IMAGE}:aaa"


def test_a_successful_deploy_is_idempotent(host: Host) -> None:
    host.versions.update({"aaa": {"sms": "1", "email": "1"}, "bbb": {"sms": "2", "email": "1"}})
    assert host.deploy("aaa", "sms=1 email=1").returncode == 0
    assert host.deploy("bbb", "sms=2 email=1").returncode == 0
    host.clear_calls()
    again = host.deploy("bbb", "sms=2 email=1")
    assert again.returncode == 0, again.stderr
    # The same commands as any deploy (compose keeps a container whose image did not change) …
    assert host.calls()[0] == f"|pull {IMAGE}:bbb" and compose_ups(host.calls()) == [f"{IMAGE}:bbb"]
    # … and the same end state: the rollback target is still the tag before, not bbb itself.
    assert (host.recorded(".deployed-tag"), host.recorded(".previous-tag")) == ("bbb", "aaa")
    assert host.running() == f"{IMAGE}:bbb"


def test_failed_health_check_rolls_back_to_the_previous_tag_and_exits_non_zero(host: Host) -> None:
    host.versions.update({"good": {"sms": "1", "email": "1"}, "bad": None})
    assert host.deploy("good", "sms=1 email=1").returncode == 0
    host.clear_calls()
    result = host.deploy("bad", "sms=2 email=1")
    assert result.returncode == 1
    assert "/ready not answering 200" in result.stderr
    assert f"rolled back to {IMAGE}:good" in result.stderr
    calls = host.calls()
    assert compose_ups(calls) == [f"{IMAGE}:bad", f"{IMAGE}:good"]
    assert any("logs --tail 50 api" in call for call in calls), "the failed container's logs are shown"
    assert host.running() == f"{IMAGE}:good"
    assert host.recorded(".deployed-tag") == "good"


@pytest.mark.parametrize(
    ("served", "shown"),
    [
        ({"sms": "2", "email": "1"}, "sms=2 email=1"),  # the e-mail channel serves its old model
        ({"sms": "2", "email": None}, "sms=2"),  # the e-mail channel has no model
        ({"sms": "2"}, "sms=2"),  # the e-mail channel is not configured
    ],
    ids=["stale-channel", "channel-without-model", "channel-not-configured"],
)
def test_one_channel_not_serving_its_expected_version_is_a_failed_deploy(
    host: Host, served: dict[str, str | None], shown: str
) -> None:
    host.versions.update({"good": {"sms": "1", "email": "1"}, "new": served})
    assert host.deploy("good", "sms=1 email=1").returncode == 0
    result = host.deploy("new", "sms=2 email=2")
    assert result.returncode == 1
    assert f"/model reports '{shown}'" in result.stderr and "(expected sms=2 email=2)" in result.stderr
    assert host.running() == f"{IMAGE}:good" and host.recorded(".deployed-tag") == "good"


def test_an_image_with_one_model_answers_for_the_sms_channel(host: Host) -> None:
    # /model of an image from before the channels: {"name": …, "version": "4"}. It serves SMS only, so a
    # deploy expecting an e-mail model too fails, and rolling back to it is checked as any rollback.
    host.versions.update({"old": "4", "new": None})
    assert host.deploy("old", "sms=4").returncode == 0
    failed = host.deploy("old", "sms=4 email=1")
    assert failed.returncode == 1 and "/model reports 'sms=4'" in failed.stderr
    host.versions["old"] = "4"
    result = host.deploy("new", "sms=5 email=1")
    assert result.returncode == 1 and f"rolled back to {IMAGE}:old" in result.stderr
    assert "serves sms=4" in result.stdout


def test_rerunning_a_deployed_tag_that_now_fails_rolls_back_to_the_one_before(host: Host) -> None:
    host.versions.update({"aaa": {"sms": "1"}, "bbb": {"sms": "2"}})
    assert host.deploy("aaa", "sms=1").returncode == 0
    assert host.deploy("bbb", "sms=2").returncode == 0
    host.versions["bbb"] = None
    result = host.deploy("bbb", "sms=2")
    assert result.returncode == 1
    assert host.running() == f"{IMAGE}:aaa" and host.recorded(".deployed-tag") == "aaa"


def test_a_tag_that_cannot_be_pulled_changes_nothing(host: Host) -> None:
    host.versions["good"] = {"sms": "1", "email": "1"}
    assert host.deploy("good", "sms=1 email=1").returncode == 0
    (host.dir / "docker" / "missing").write_text(f"{IMAGE}:ghost\n")
    host.clear_calls()
    result = host.deploy("ghost", "sms=2 email=1")
    assert result.returncode == 1 and f"cannot pull {IMAGE}:ghost; nothing changed" in result.stderr
    assert compose_ups(host.calls()) == []
    assert host.running() == f"{IMAGE}:good" and host.recorded(".deployed-tag") == "good"


def test_a_failed_first_deploy_stops_the_container_and_exits_non_zero(host: Host) -> None:
    host.versions["bad"] = None
    result = host.deploy("bad", "sms=1 email=1")
    assert result.returncode == 1 and "no previous tag to roll back to" in result.stderr
    assert any(call.endswith(" down") for call in host.calls())
    assert host.running() is None and host.recorded(".deployed-tag") is None


@pytest.mark.parametrize("versions", ["3", "sms=3 email", "sms=v3", "sms=3,email=2"])
def test_expected_versions_that_are_not_channel_equals_version_are_refused(host: Host, versions: str) -> None:
    result = host.deploy("aaa", versions)
    assert result.returncode == 2 and "is not channel=version" in result.stderr
    assert host.calls() == [], "nothing ran"


def test_missing_variables_fail_fast_by_name(host: Host) -> None:
    env = {k: v for k, v in host.env.items() if k != "DEPLOY_IMAGE"}
    result = subprocess.run(
        [str(DEPLOY / "deploy.sh")], env={**env, "EXPECTED_VERSIONS": ""}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "missing required secret(s) or variable(s): DEPLOY_IMAGE DEPLOY_TAG EXPECTED_VERSIONS" in result.stderr
    assert host.calls() == [], "nothing ran"


def test_require_env_names_each_missing_secret_and_annotates_in_actions() -> None:
    env = {"PATH": "/usr/bin:/bin", "DOCKERHUB_USERNAME": "someone", "DOCKERHUB_TOKEN": "", "GITHUB_ACTIONS": "true"}
    result = subprocess.run(
        [str(DEPLOY / "require-env.sh"), "DOCKERHUB_USERNAME", "DOCKERHUB_TOKEN", "EC2_SSH_KEY"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "missing required secret(s) or variable(s): DOCKERHUB_TOKEN EC2_SSH_KEY" in result.stderr
    assert "::error::missing required secret or variable: DOCKERHUB_TOKEN" in result.stdout
    assert "DOCKERHUB_USERNAME" not in result.stderr
    ok = subprocess.run(
        [str(DEPLOY / "require-env.sh"), "DOCKERHUB_USERNAME"], env=env, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0


FAKE_SSH = r"""#!/usr/bin/env bash
# Records the call, the key file's mode, and exits as told for the deploy command.
key=""; prev=""
for arg in "$@"; do [ "$prev" = "-i" ] && key="$arg"; prev="$arg"; done
printf '%s|%s|%s\n' "$(basename "$0")" "$(stat -c %a "$key")" "$*" >>"$FAKE_SSH_LOG"
case "$*" in *./deploy.sh*) exit "${FAKE_DEPLOY_EXIT:-0}" ;; esac
"""


@pytest.mark.parametrize("deploy_exit", [0, 1])
def test_remote_deploy_copies_the_files_and_runs_deploy_sh_with_its_settings(tmp_path: Path, deploy_exit: int) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ssh", "scp"):
        write_executable(bin_dir / name, FAKE_SSH)
    log = tmp_path / "ssh.log"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_SSH_LOG": str(log),
        "FAKE_DEPLOY_EXIT": str(deploy_exit),
        "EC2_HOST": "ec2.example.com",
        "EC2_USER": "ubuntu",
        "EC2_SSH_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key\n-----END OPENSSH PRIVATE KEY-----",
        "DEPLOY_IMAGE": IMAGE,
        "DEPLOY_TAG": "0123abc",
        "EXPECTED_VERSIONS": "sms=7 email=2",
    }
    result = subprocess.run(
        [str(DEPLOY / "remote-deploy.sh")], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == deploy_exit, result.stderr
    calls = [line.split("|", 2) for line in log.read_text().splitlines()]
    assert [call[0] for call in calls] == ["ssh", "scp", "ssh"]
    assert all(mode == "600" for _, mode, _ in calls), "the SSH key is written readable by its owner only"
    assert (
        "deploy.sh" in calls[1][2] and "docker-compose.yml" in calls[1][2] and "ubuntu@ec2.example.com:" in calls[1][2]
    )
    command = calls[2][2]
    assert "ubuntu@ec2.example.com" in command
    assert f"DEPLOY_IMAGE={IMAGE} DEPLOY_TAG=0123abc EXPECTED_VERSIONS=sms=7\\ email=2" in command
    assert "./deploy.sh" in command
    assert "PRIVATE KEY" not in log.read_text()
    leftover = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("tmp*") if (p / "key").exists()]
    assert not leftover, "the key is removed afterwards"


def test_remote_deploy_without_the_ssh_key_fails_naming_it(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "EC2_HOST": "h", "EC2_USER": "u", "DEPLOY_IMAGE": IMAGE, "DEPLOY_TAG": "t"}
    result = subprocess.run(
        [str(DEPLOY / "remote-deploy.sh")],
        env={**env, "EXPECTED_VERSIONS": "sms=1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "EC2_SSH_KEY" in result.stderr
