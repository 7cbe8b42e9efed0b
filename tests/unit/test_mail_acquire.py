"""Obtaining the e-mail corpus: integrity pinning, the download over real HTTP on loopback (good, wrong,
truncated), the shared copy, a named path, what the raw directory already holds, and `dvc pull`."""

from __future__ import annotations

import base64
import hashlib
import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spamfilter.data.mail_acquire import (
    CORPUS_INTEGRITY,
    CORPUS_NAME,
    CORPUS_URL,
    SHARED_NAME,
    Integrity,
    download_verified,
    file_integrity,
    obtain_mail_corpus,
)
from spamfilter.data.mail_corpus import DEFAULT_LABEL_FOLDERS, read_mail_corpus
from spamfilter.errors import DataError
from tests.unit.test_mail_corpus import make_email, tar_of_tree, write_npm_package


def sri(content: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(content).digest()).decode("ascii")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small tarball in the npm package's layout (12 generated messages)."""
    tree = tmp_path_factory.mktemp("npm")
    write_npm_package(tree)
    return tar_of_tree(tree, "gz")


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    raw = tmp_path / "data" / "raw" / "email"
    raw.mkdir(parents=True)
    (raw / ".gitignore").write_text("/*\n")
    return raw


@pytest.fixture
def server(tarball: bytes) -> Iterator[str]:
    """An HTTP server on 127.0.0.1: /good.tgz, /wrong.tgz (other bytes), /truncated.tgz (declares the full
    length, sends half), anything else 404."""
    other = bytearray(tarball)
    other[len(other) // 2] ^= 0xFF
    routes = {
        "/good.tgz": (tarball, len(tarball)),
        "/wrong.tgz": (bytes(other), len(other)),
        "/truncated.tgz": (tarball[: len(tarball) // 2], len(tarball)),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in routes:
                self.send_error(404)
                return
            body, declared = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def unreachable() -> str:
    """A loopback URL nothing listens on: fetching it fails at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/corpus.tgz"


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def obtain(
    raw_dir: Path,
    url: str,
    integrity: str,
    *,
    dvc_file: Path | None = None,
    named: Path | None = None,
    shared: Path | None = None,
    force: bool = False,
) -> str:
    return obtain_mail_corpus(raw_dir, dvc_file, named, url, integrity, shared, force=force)


# --- integrity -------------------------------------------------------------------------------------------


def test_integrity_round_trips_and_refuses_malformed_values() -> None:
    pinned = Integrity.parse(CORPUS_INTEGRITY)
    assert (pinned.algorithm, len(pinned.digest)) == ("sha512", 64)
    assert str(pinned) == CORPUS_INTEGRITY
    for malformed in ("md5-abc", "sha512-not base64!", "sha512-" + base64.b64encode(b"short").decode(), "sha512"):
        with pytest.raises(DataError, match=r"expected '<algorithm>-<base64 digest>'"):
            Integrity.parse(malformed)


def test_file_integrity_matches_npm_style_sri(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"corpus bytes")
    assert str(file_integrity(tmp_path / "f")) == sri(b"corpus bytes")
    assert CORPUS_URL.endswith("/" + SHARED_NAME)


# --- the download ----------------------------------------------------------------------------------------


def test_download_stores_the_tarball_as_is(raw_dir: Path, server: str, tarball: bytes) -> None:
    (raw_dir / "old-corpus").mkdir()
    (raw_dir / "old-corpus" / "1.eml").write_bytes(make_email(1))
    said = obtain(raw_dir, f"{server}/good.tgz", sri(tarball), force=True)
    assert said == f"{raw_dir / CORPUS_NAME}: downloaded from {server}/good.tgz (sha512 verified)"
    assert listing(raw_dir) == {".gitignore": b"/*\n", CORPUS_NAME: tarball}
    corpus = read_mail_corpus(raw_dir, DEFAULT_LABEL_FOLDERS, 100_000)
    assert (len(corpus.messages), corpus.bad_rows, corpus.format) == (12, [], "tar.gz+tree")


def test_a_wrong_checksum_keeps_what_was_there(raw_dir: Path, server: str, tarball: bytes) -> None:
    (raw_dir / CORPUS_NAME).write_bytes(b"the previous corpus")
    before = listing(raw_dir)
    with pytest.raises(DataError) as caught:
        obtain(raw_dir, f"{server}/wrong.tgz", sri(tarball), force=True)
    assert str(caught.value).startswith(f"{server}/wrong.tgz: sha512 does not match the pinned integrity (got sha512-")
    assert str(caught.value).endswith(f"expected {sri(tarball)}); {raw_dir} keeps what it held")
    assert listing(raw_dir) == before  # no temporary file left either


def test_a_truncated_download_keeps_what_was_there(raw_dir: Path, server: str, tarball: bytes) -> None:
    (raw_dir / CORPUS_NAME).write_bytes(b"the previous corpus")
    before = listing(raw_dir)
    with pytest.raises(DataError, match=rf"^{server}/truncated\.tgz: truncated download: received [\d,]+ of"):
        obtain(raw_dir, f"{server}/truncated.tgz", sri(tarball), force=True)
    assert listing(raw_dir) == before


def test_a_failed_request_names_the_url(raw_dir: Path, server: str, unreachable: str, tarball: bytes) -> None:
    with pytest.raises(DataError, match=rf"^{server}/missing\.tgz: download failed \(HTTP Error 404"):
        obtain(raw_dir, f"{server}/missing.tgz", sri(tarball))
    with pytest.raises(DataError, match=rf"^{unreachable}: download failed"):
        obtain(raw_dir, unreachable, sri(tarball))
    assert listing(raw_dir) == {".gitignore": b"/*\n"}


def test_a_download_far_larger_than_the_corpus_is_cut_off(raw_dir: Path, server: str, tarball: bytes) -> None:
    with pytest.raises(DataError, match=r"more than 1,000 bytes, not the corpus"):
        download_verified(f"{server}/good.tgz", raw_dir, Integrity.parse(sri(tarball)), max_bytes=1000)
    assert listing(raw_dir) == {".gitignore": b"/*\n"}


# --- the order of sources --------------------------------------------------------------------------------


def test_what_the_raw_directory_holds_is_kept(raw_dir: Path, unreachable: str, tarball: bytes) -> None:
    (raw_dir / CORPUS_NAME).write_bytes(tarball)
    assert obtain(raw_dir, unreachable, sri(tarball)) == f"{raw_dir}: already present"


def test_force_fetches_again(raw_dir: Path, server: str, tarball: bytes) -> None:
    (raw_dir / CORPUS_NAME).write_bytes(b"stale")
    assert "downloaded from" in obtain(raw_dir, f"{server}/good.tgz", sri(tarball), force=True)
    assert (raw_dir / CORPUS_NAME).read_bytes() == tarball


def test_the_shared_copy_is_verified_then_copied(
    tmp_path: Path, raw_dir: Path, unreachable: str, tarball: bytes
) -> None:
    shared = tmp_path / "shared" / "data" / SHARED_NAME
    shared.parent.mkdir(parents=True)
    shared.write_bytes(tarball)
    said = obtain(raw_dir, unreachable, sri(tarball), shared=shared)
    assert said == f"{raw_dir / CORPUS_NAME}: copied from {shared} (sha512 verified)"
    assert (raw_dir / CORPUS_NAME).read_bytes() == tarball
    shared.write_bytes(tarball + b"\0")
    with pytest.raises(DataError, match=rf"^{shared}: sha512 does not match the pinned integrity"):
        obtain(raw_dir, unreachable, sri(tarball), shared=shared, force=True)
    assert (raw_dir / CORPUS_NAME).read_bytes() == tarball


def test_a_named_copy_of_the_published_tarball_gets_the_canonical_name(
    tmp_path: Path, raw_dir: Path, unreachable: str, tarball: bytes
) -> None:
    named = tmp_path / "downloads" / "whatever.tgz"
    named.parent.mkdir()
    named.write_bytes(tarball)
    said = obtain(raw_dir, unreachable, sri(tarball), named=named)
    assert said == f"{raw_dir / CORPUS_NAME}: from SPAM_EMAIL_DATA={named}"
    assert listing(raw_dir) == {".gitignore": b"/*\n", CORPUS_NAME: tarball}


def test_a_named_corpus_of_another_kind_is_checked_and_kept_under_its_name(
    tmp_path: Path, raw_dir: Path, unreachable: str, tarball: bytes
) -> None:
    mine = tmp_path / "mine"
    (mine / "spam").mkdir(parents=True)
    (mine / "spam" / "1.eml").write_bytes(make_email(1))
    (mine / "ham").mkdir()
    (mine / "ham" / "2.eml").write_bytes(make_email(2, "ham"))
    (mine / "ham" / ".hidden").write_text("not copied")
    (raw_dir / CORPUS_NAME).write_bytes(tarball)
    said = obtain(raw_dir, unreachable, sri(tarball), named=mine)
    assert said == f"{raw_dir / 'mine'}: from SPAM_EMAIL_DATA={mine}"
    assert listing(raw_dir) == {
        ".gitignore": b"/*\n",
        "mine/ham/2.eml": make_email(2, "ham"),
        "mine/spam/1.eml": make_email(1),
    }
    again = obtain(raw_dir, unreachable, sri(tarball), named=mine)  # replacing a stored folder with a new copy
    assert again == said
    assert sorted(p.name for p in raw_dir.iterdir()) == [".gitignore", "mine"]
    mbox = tmp_path / "spam.mbox"
    mbox.write_bytes(make_email(3))
    assert (
        obtain(raw_dir, unreachable, sri(tarball), named=mbox)
        == f"{raw_dir / 'spam.mbox'}: from SPAM_EMAIL_DATA={mbox}"
    )
    assert listing(raw_dir) == {".gitignore": b"/*\n", "spam.mbox": make_email(3)}


def test_a_named_path_that_is_not_a_corpus_changes_nothing(
    tmp_path: Path, raw_dir: Path, unreachable: str, tarball: bytes
) -> None:
    (raw_dir / CORPUS_NAME).write_bytes(tarball)
    before = listing(raw_dir)
    junk = tmp_path / "notes.txt"
    junk.write_text("just some notes\n")
    with pytest.raises(DataError, match=rf"^{junk}: no usable e-mail messages; {junk}: not an e-mail"):
        obtain(raw_dir, unreachable, sri(tarball), named=junk)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'absent'}: not found \(named by SPAM_EMAIL_DATA\)"):
        obtain(raw_dir, unreachable, sri(tarball), named=tmp_path / "absent")
    with pytest.raises(DataError, match="holds the raw directory"):
        obtain(raw_dir, unreachable, sri(tarball), named=raw_dir.parent)
    assert listing(raw_dir) == before


# --- DVC -------------------------------------------------------------------------------------------------


def dvc(cwd: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.mark.slow
def test_dvc_pull_then_a_new_corpus_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unreachable: str, tarball: bytes
) -> None:
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    repo = tmp_path / "repo"
    (repo / "raw" / "email").mkdir(parents=True)
    (repo / "raw" / "email" / CORPUS_NAME).write_bytes(tarball)
    dvc(repo, "init", "--no-scm", "-q")
    dvc(repo, "remote", "add", "-d", "store", str(tmp_path / "store"))
    dvc(repo, "add", "-q", "raw/email")
    dvc(repo, "push", "-q")
    (repo / "raw" / "email" / CORPUS_NAME).unlink()
    (repo / "raw" / "email").rmdir()
    monkeypatch.chdir(repo)
    raw, dvc_file = Path("raw/email"), Path("raw/email.dvc")
    assert obtain(raw, unreachable, sri(tarball), dvc_file=dvc_file) == "raw/email: pulled from the DVC remote"
    assert (raw / CORPUS_NAME).read_bytes() == tarball
    tracked = yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]
    mbox = tmp_path / "spam.mbox"
    mbox.write_bytes(make_email(1))
    obtain(raw, unreachable, sri(tarball), dvc_file=dvc_file, named=mbox)
    assert yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"] != tracked  # the new corpus is recorded
