"""`spamfilter data`: each way of obtaining the corpus, and each way it can fail without harm."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import Project, make_messages, make_project, write_tsv
from tests.unit.test_acquire import make_zip

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    site = tmp_path / "site"
    site.mkdir()
    archive = make_zip()
    (site / "wrong-checksum.zip").write_bytes(archive)
    (site / "truncated.zip").write_bytes(archive[: len(archive) // 2])
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(site))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def seeded(tmp_path: Path) -> Project:
    """A project whose data/raw/sms already holds a committed corpus."""
    corpus = write_tsv(tmp_path / "seed.tsv", make_messages(n_ham=20, n_spam=5))
    project = make_project(tmp_path / "repo", {"SPAM_DATA": str(corpus)})
    project.spamfilter("data")
    del project.env["SPAM_DATA"]
    return project


def test_spam_data_names_the_source_and_updates_data_dvc(seeded: Project) -> None:
    raw = seeded.root / "data/raw/sms/seed.tsv"
    assert raw.is_file()
    md5 = yaml.safe_load((seeded.root / "data/raw/sms.dvc").read_text())["outs"][0]["md5"]
    assert md5.endswith(".dir")
    assert seeded.dvc("status", "data/raw/sms.dvc").stdout.strip().endswith("up to date.")


def test_already_present_is_kept(seeded: Project) -> None:
    result = seeded.spamfilter("data")
    assert "already present" in result.stdout


def test_missing_spam_data_file_is_a_clear_error(seeded: Project, tmp_path: Path) -> None:
    seeded.env["SPAM_DATA"] = str(tmp_path / "nowhere.tsv")
    result = seeded.spamfilter("data", check=False)
    assert result.returncode == 1
    assert f"error: {tmp_path / 'nowhere.tsv'}: file not found (named by SPAM_DATA)" in result.stderr
    assert (seeded.root / "data/raw/sms/seed.tsv").is_file()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("wrong-checksum.zip", "SMSSpamCollection has sha256"),
        ("truncated.zip", "not a readable zip archive, truncated or corrupt"),
        ("absent.zip", "download failed"),
    ],
)
def test_failed_download_leaves_the_stored_corpus_intact(seeded: Project, served: str, name: str, message: str) -> None:
    before = (seeded.root / "data/raw/sms/seed.tsv").read_bytes()
    dvc_file_before = (seeded.root / "data/raw/sms.dvc").read_text()
    seeded.env["SPAM_DATA_URL"] = f"{served}/{name}"
    result = seeded.spamfilter("data", "--force", check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert name in result.stderr
    assert (seeded.root / "data/raw/sms/seed.tsv").read_bytes() == before
    assert (seeded.root / "data/raw/sms.dvc").read_text() == dvc_file_before


def test_pull_from_the_default_remote_when_data_raw_is_empty(seeded: Project) -> None:
    seeded.dvc("push", "data/raw/sms.dvc")
    content = (seeded.root / "data/raw/sms/seed.tsv").read_bytes()
    shutil.rmtree(seeded.root / "data/raw/sms")
    shutil.rmtree(seeded.root / ".dvc/cache")
    result = seeded.spamfilter("data")
    assert "pulled from the DVC remote" in result.stdout
    assert (seeded.root / "data/raw/sms/seed.tsv").read_bytes() == content
