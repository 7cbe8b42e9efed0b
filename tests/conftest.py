"""Shared fixtures: a generated fixture corpus, the real shared corpus, and an isolated copy of
the project in which DVC and MLflow run for real."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "data" / "sms_spam_collection.tsv"
SHARED_MAIL = REPO_ROOT.parent / "shared" / "data" / "datasets-spam-assassin-0.2.3.tgz"
VENV_BIN = Path(sys.executable).parent

_SPAM_TEMPLATES = (
    "WINNER!! You have won a £{n}00 prize. Call 0906{d} now to claim",
    "FREE entry to win {item}! Text WIN to 8{n}121 now. T&Cs apply",
    "URGENT! Your mobile has been awarded a £{n}000 bonus. Call 0905{d} from a landline",
    "Congratulations you won a free {item}. Reply YES to 8{n}233 to claim. Std txt rate",
    "You have been selected for a {item} offer. Visit www.win{n}.com or call 0800{d}",
)
_HAM_TEMPLATES = (
    "Are we still meeting for {meal} at {n}?",
    "I'll be home late tonight, don't wait up for {meal}",
    "Can you pick up some {item} on your way back?",
    "Sorry I missed your call, I was at {place}. Talk later?",
    "See you at {place} around {n}, bring the {item}",
    "Ok lor, going to {place} now. Want {meal}?",
)
_WORDS = {
    "item": ("ipod", "camera", "holiday", "ringtone", "milk", "bread", "charger", "book", "umbrella"),
    "meal": ("lunch", "dinner", "breakfast", "coffee", "tea"),
    "place": ("the gym", "work", "the library", "mum's", "the station", "class"),
}


def make_messages(n_ham: int = 160, n_spam: int = 40, seed: int = 7) -> list[tuple[str, str]]:
    """A deterministic, distinct set of (label, text) pairs that a model can learn."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for label, templates, count in (("ham", _HAM_TEMPLATES, n_ham), ("spam", _SPAM_TEMPLATES, n_spam)):
        seen: set[str] = set()
        while len(seen) < count:
            text = rng.choice(templates).format(
                n=rng.randint(1, 9),
                d=rng.randint(100000, 999999),
                **{key: rng.choice(values) for key, values in _WORDS.items()},
            )
            text = f"{text} {rng.randint(0, 10_000)}" if text in seen else text
            if text not in seen:
                seen.add(text)
                out.append((label, text))
    rng.shuffle(out)
    return out


def write_tsv(path: Path, rows: list[tuple[str, str]], header: bool = True) -> Path:
    lines = (["label\ttext"] if header else []) + [f"{label}\t{text}" for label, text in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def fixture_corpus(tmp_path: Path) -> Path:
    """A small generated corpus in the UCI form, with a header."""
    return write_tsv(tmp_path / "fixture_corpus.tsv", make_messages())


def shared_file(path: Path) -> Path:
    """A real corpus beside the checkout; CI must have it, elsewhere it may be absent (the test skips)."""
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI runs the data and model tests on the real corpora")
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    """The real SMS Spam Collection beside the checkout."""
    return shared_file(SHARED_CORPUS)


@pytest.fixture(scope="session")
def shared_mail() -> Path:
    """The SpamAssassin public corpus (its npm tarball) beside the checkout."""
    return shared_file(SHARED_MAIL)


def tracked_files(root: Path) -> list[str]:
    """Files git would check out, plus new files not yet committed (but not ignored ones)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [name for name in listing.split("\0") if name and (root / name).is_file()]


@dataclass
class Project:
    """An isolated copy of the repository: its own git, DVC cache, DVC remote and MLflow store."""

    root: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args), cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # A full `dvc repro` of both channels on the real corpora takes minutes on a loaded 2-core machine.
        return self.run(str(VENV_BIN / "dvc"), *args, check=check, timeout=1200)

    def python(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, *args, check=check)

    def spamfilter(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.python("-m", "spamfilter.cli", *args, check=check)

    def json(self, path: str) -> Any:
        """A JSON file of the project, parsed."""
        import json

        return json.loads((self.root / path).read_text(encoding="utf-8"))


def keep_channels(root: Path, channels: Sequence[str]) -> None:
    """Make a project copy configure only `channels`: the others leave params.yaml (so dvc.yaml builds
    none of their stages), and their raw data's .dvc file and their dvc.lock entries go with them, as
    they would from a checkout without the channel (else `dvc status` and `dvc checkout` miss their data
    and the lock keeps stages that no longer exist)."""
    import yaml

    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    dropped = [name for name in params["channels"] if name not in channels]
    if not dropped:
        return
    params["channels"] = {name: value for name, value in params["channels"].items() if name in channels}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    for name in dropped:
        (root / "data" / "raw" / f"{name}.dvc").unlink(missing_ok=True)
    lock_file = root / "dvc.lock"
    if lock_file.is_file():
        lock = yaml.safe_load(lock_file.read_text(encoding="utf-8"))
        lock["stages"] = {
            stage: entry for stage, entry in lock["stages"].items() if stage.rpartition("@")[2] not in dropped
        }
        lock_file.write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")


def make_project(
    destination: Path, extra_env: dict[str, str] | None = None, channels: Sequence[str] = ("sms",)
) -> Project:
    """Copy the repo's files (not data, outputs or stores) into `destination` and make it a git repo
    whose params.yaml configures only `channels` (default: the SMS channel, which most tests exercise)."""
    for name in tracked_files(REPO_ROOT):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    keep_channels(destination, channels)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "SPAM_", "DVC_"))}
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1",
            "MLFLOW_TRACKING_URI": f"sqlite:///{destination / 'mlflow.db'}",
            "SPAM_MLFLOW_ARTIFACT_ROOT": str(destination / "mlartifacts"),
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
            "PYTHONPATH": str(destination),
        }
    )
    env.update(extra_env or {})
    project = Project(destination, env)
    project.run("git", "init", "-q")
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "fixture")
    return project


def project_with_pipeline(
    root: Path, messages: list[tuple[str, str]], extra_env: dict[str, str] | None = None
) -> Project:
    """A project copy under `root` whose pipeline has run (`spamfilter data`, `dvc repro`) on `messages`."""
    root.mkdir(parents=True, exist_ok=True)
    corpus = write_tsv(root / "corpus.tsv", messages)
    project = make_project(root / "repo", {"SPAM_DATA": str(corpus), **(extra_env or {})})
    project.spamfilter("data")
    project.dvc("repro")
    return project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    yield make_project(tmp_path / "repo")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # the server answered
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.2)


@dataclass
class S3Server:
    """A real S3-compatible server (moto's server mode) on loopback."""

    endpoint: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }


@contextlib.contextmanager
def running_s3_server(log_path: Path, authenticate: bool) -> Iterator[S3Server]:
    """moto_server as its own process on loopback.

    With `authenticate`, only the access key created here is accepted (to test refused
    credentials). moto cannot then serve presigned URLs, which an MLflow server hands out for
    artifact downloads, so the MLflow tests use a server without authentication.
    """
    import urllib.request

    import boto3

    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        endpoint = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{endpoint}/moto-api/")
            if not authenticate:
                yield S3Server(endpoint)
                return
            iam = boto3.client(
                "iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
            )
            iam.create_user(UserName="pipeline")
            document = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
            policy = iam.create_policy(PolicyName="everything", PolicyDocument=document)["Policy"]["Arn"]
            iam.attach_user_policy(UserName="pipeline", PolicyArn=policy)
            key = iam.create_access_key(UserName="pipeline")["AccessKey"]
            # From now on every request must carry the key created above.
            enable_auth = urllib.request.Request(
                f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
            )
            urllib.request.urlopen(enable_auth).close()
            yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server that checks credentials."""
    with running_s3_server(tmp_path_factory.mktemp("moto") / "moto.log", authenticate=True) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server that accepts any credentials (and so serves presigned URLs)."""
    with running_s3_server(tmp_path_factory.mktemp("moto-open") / "moto.log", authenticate=False) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL 15 (Debian's binaries) on a Unix socket, for the session; CI must have it."""
    from tests import postgres_server as pg

    reason = pg.missing_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI tests the prediction log on a real PostgreSQL")
        pytest.skip(reason)
    server = pg.start_server()
    yield server
    pg.remove_server(server)


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    if not postgres_server.running():  # a test that stopped it failed before starting it again
        postgres_server.start()
    url: str = postgres_server.new_database()
    return url
