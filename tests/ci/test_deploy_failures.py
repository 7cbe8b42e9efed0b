"""deploy.sh's failure branches and remote-deploy.sh's pinned host key, with the stand-ins of
tests/ci/test_deploy.py: a `docker compose up` that fails, a rollback that fails too, and EC2_KNOWN_HOSTS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.ci.test_deploy import DEPLOY, IMAGE, Host, compose_ups, host, write_executable

__all__ = ["host"]  # the fixture, used by the tests below

# In front of the stand-in docker: `compose up` of an image listed in $FAKE_DOCKER_DIR/broken fails (as when
# the container cannot be created or exits at once), recorded like any call; everything else goes through.
FAILING_UP = r"""#!/usr/bin/env bash
if [ "$1" = compose ] && [[ " $* " == *" up "* ]] && grep -qxF "${SPAMFILTER_IMAGE:-}" "$FAKE_DOCKER_DIR/broken" 2>/dev/null; then
  printf '%s|%s\n' "$SPAMFILTER_IMAGE" "$*" >>"$FAKE_DOCKER_DIR/calls.log"
  rm -f "$FAKE_DOCKER_DIR/running"
  echo "Error response from daemon: container for $SPAMFILTER_IMAGE failed to start" >&2
  exit 1
fi
exec "$REAL_FAKE_DOCKER" "$@"
"""

BOTH = "sms=1 email=1"
SERVING = {"sms": "1", "email": "1"}


@pytest.fixture
def failing_host(host: Host, tmp_path: Path) -> Host:
    bin_dir = tmp_path / "failing-bin"
    bin_dir.mkdir()
    write_executable(bin_dir / "docker", FAILING_UP)
    host.env["REAL_FAKE_DOCKER"] = str(tmp_path / "bin" / "docker")
    host.env["PATH"] = f"{bin_dir}:{host.env['PATH']}"
    return host


def break_image(host: Host, *tags: str) -> None:
    with (host.dir / "docker" / "broken").open("a") as broken:
        broken.writelines(f"{IMAGE}:{tag}\n" for tag in tags)


def test_a_failed_compose_up_rolls_back_to_the_previous_tag(failing_host: Host) -> None:
    failing_host.versions.update({"good": SERVING, "new": SERVING})
    assert failing_host.deploy("good", BOTH).returncode == 0
    break_image(failing_host, "new")
    failing_host.clear_calls()
    result = failing_host.deploy("new", BOTH)
    assert result.returncode == 1
    assert "failed to start" in result.stderr and f"rolled back to {IMAGE}:good" in result.stderr
    assert compose_ups(failing_host.calls()) == [f"{IMAGE}:new", f"{IMAGE}:good"]
    assert failing_host.running() == f"{IMAGE}:good"
    assert failing_host.recorded(".deployed-tag") == "good"


def test_a_rollback_whose_compose_up_fails_too_says_the_api_is_down(failing_host: Host) -> None:
    failing_host.versions.update({"good": SERVING, "new": SERVING})
    assert failing_host.deploy("good", BOTH).returncode == 0
    break_image(failing_host, "new", "good")
    result = failing_host.deploy("new", BOTH)
    assert result.returncode == 1
    assert f"rollback to {IMAGE}:good failed too; the API is down" in result.stderr
    assert "rolled back to" not in result.stderr
    assert failing_host.running() is None
    assert failing_host.recorded(".deployed-tag") != "new"


def test_a_rollback_target_that_never_gets_ready_says_the_api_is_down(failing_host: Host) -> None:
    failing_host.versions.update({"good": SERVING, "bad": None})
    assert failing_host.deploy("good", BOTH).returncode == 0
    failing_host.versions["good"] = None  # what ran before no longer starts either (its model store is gone)
    result = failing_host.deploy("bad", BOTH)
    assert result.returncode == 1
    assert f"rollback to {IMAGE}:good failed too; the API is down" in result.stderr
    assert compose_ups(failing_host.calls())[-2:] == [f"{IMAGE}:bad", f"{IMAGE}:good"]
    assert failing_host.recorded(".deployed-tag") != "bad"


# A stand-in `ssh`/`scp` that records, for each call, the host-key options and the known_hosts file's
# content at the time of the call (remote-deploy.sh deletes it afterwards).
RECORDING_SSH = r"""#!/usr/bin/env bash
strict=""; known=""; prev=""
for arg in "$@"; do
  if [ "$prev" = "-o" ]; then
    case "$arg" in
      StrictHostKeyChecking=*) strict="${arg#*=}" ;;
      UserKnownHostsFile=*) known="${arg#*=}" ;;
    esac
  fi
  prev="$arg"
done
content="$(cat "$known" 2>/dev/null || echo '<no file>')"
printf '%s|%s|%s|%s\n' "$(basename "$0")" "$strict" "$known" "$content" >>"$FAKE_SSH_LOG"
"""


@pytest.mark.parametrize("pinned", [True, False], ids=["EC2_KNOWN_HOSTS", "first-key-trusted"])
def test_remote_deploy_pins_the_host_key_when_given(tmp_path: Path, pinned: bool) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ssh", "scp"):
        write_executable(bin_dir / name, RECORDING_SSH)
    log = tmp_path / "ssh.log"
    key_line = "ec2.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBase64KeyMaterialForTheTestOnly"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "TMPDIR": str(tmp_path),
        "FAKE_SSH_LOG": str(log),
        "EC2_HOST": "ec2.example.com",
        "EC2_USER": "ubuntu",
        "EC2_SSH_KEY": "not-a-key",
        "DEPLOY_IMAGE": IMAGE,
        "DEPLOY_TAG": "0123abc",
        "EXPECTED_VERSIONS": BOTH,
        "EXPECTED_VERSION": "1",
        **({"EC2_KNOWN_HOSTS": key_line} if pinned else {}),
    }
    result = subprocess.run(
        [str(DEPLOY / "remote-deploy.sh")], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    calls = [line.split("|", 3) for line in log.read_text().splitlines()]
    assert [call[0] for call in calls] == ["ssh", "scp", "ssh"]
    for _, strict, known_hosts, content in calls:
        if pinned:
            # Only the given key is trusted: a host presenting another one is refused, not learnt.
            assert (strict, content) == ("yes", key_line)
        else:
            assert (strict, content) == ("accept-new", "<no file>")
        assert known_hosts.startswith(str(tmp_path)), "a known_hosts of its own, not the user's"
    assert not [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("tmp")], "the key dir is removed"
