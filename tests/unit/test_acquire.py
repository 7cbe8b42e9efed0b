"""Obtaining the corpus: zip extraction, checksum pinning, format recognition, atomic storage."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from spamfilter.data.acquire import (
    CANONICAL_NAME,
    HEADER,
    UCI_MEMBER,
    corpus_from_bytes,
    download,
    extract_uci_member,
    store,
)
from spamfilter.errors import DataError

CONTENT = b"ham\tHello\nspam\tWIN a prize\n"


def make_zip(member: str = UCI_MEMBER, content: bytes = CONTENT) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("readme", "SMS Spam Collection")
        bundle.writestr(member, content)
    return buffer.getvalue()


def test_extract_checks_the_pinned_sha256() -> None:
    digest = hashlib.sha256(CONTENT).hexdigest()
    assert extract_uci_member(make_zip(), "uci.zip", expected_sha256=digest) == CONTENT
    with pytest.raises(DataError, match=r"uci.zip: SMSSpamCollection has sha256 [0-9a-f]{64}, expected the pinned"):
        extract_uci_member(make_zip(), "uci.zip")


def test_truncated_zip_is_a_clear_error() -> None:
    archive = make_zip()
    with pytest.raises(DataError, match=r"uci\.zip: not a readable zip archive, truncated or corrupt"):
        extract_uci_member(archive[: len(archive) // 2], "uci.zip")


def test_zip_without_the_member() -> None:
    with pytest.raises(DataError, match="archive has no SMSSpamCollection member"):
        extract_uci_member(make_zip(member="other.txt"), "uci.zip")


def test_unknown_corpus_is_kept_verbatim_under_its_name() -> None:
    corpus = corpus_from_bytes(CONTENT, "mine.tsv", "mine.tsv")
    assert (corpus.name, corpus.content) == ("mine.tsv", CONTENT)


def test_file_with_no_valid_row_is_refused() -> None:
    with pytest.raises(DataError, match=r"junk.tsv: no valid labelled rows \(first problem: junk.tsv:1: no tab"):
        corpus_from_bytes(b"just some text\n", "junk.tsv", "junk.tsv")


def test_store_replaces_the_previous_corpus_atomically(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "old.csv").write_bytes(b"v1,v2\nham,old\n")
    (raw / ".gitignore").write_text("x")
    path = store(corpus_from_bytes(CONTENT, "new.tsv", "new.tsv"), raw)
    assert path.read_bytes() == CONTENT
    assert sorted(p.name for p in raw.iterdir()) == [".gitignore", "new.tsv"]


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "uci.zip").write_bytes(make_zip())
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_over_real_http(http_server: str) -> None:
    assert download(f"{http_server}/uci.zip") == make_zip()
    with pytest.raises(DataError, match=r"missing\.zip: download failed"):
        download(f"{http_server}/missing.zip")


def test_canonical_form_is_header_plus_uci_bytes() -> None:
    assert HEADER == b"label\ttext\n"
    assert CANONICAL_NAME.endswith(".tsv")
