"""Data checks on the real SpamAssassin corpus (the npm tarball beside the checkout): what SPAMASSASSIN.md in
the shared copy promises, read straight from the archive."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from spamfilter.data.mail_acquire import (
    CORPUS_INTEGRITY,
    CORPUS_NAME,
    CORPUS_SHA256,
    SHARED_NAME,
    file_integrity,
    obtain_mail_corpus,
    shared_tarball,
)
from spamfilter.data.mail_corpus import DEFAULT_LABEL_FOLDERS, MailCorpus, looks_like_email, read_mail_corpus

pytestmark = pytest.mark.real_data

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MAX_BYTES = 1_048_576
GROUPS = {"easy-ham-1": 2500, "easy-ham-2": 1400, "hard-ham-1": 250, "spam-1": 500, "spam-2": 1396}
ODD_ONE = "package/data/hard-ham-1/00230.244a63cd74c81123ef26129453e32c95.txt"


@pytest.fixture(scope="module")
def tarball() -> Path:
    path = SHARED_DATA / SHARED_NAME
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def corpus(tarball: Path) -> MailCorpus:
    return read_mail_corpus(tarball, DEFAULT_LABEL_FOLDERS, MAX_BYTES)


def test_every_message_is_read_with_its_label(corpus: MailCorpus) -> None:
    assert corpus.bad_rows == []
    assert corpus.format == "tar.gz+tree"
    assert len(corpus.messages) == 6046
    assert Counter(m.label for m in corpus.messages) == {"ham": 4150, "spam": 1896}
    assert Counter(m.group for m in corpus.messages) == GROUPS
    assert {m.group: m.label for m in corpus.messages} == {group: DEFAULT_LABEL_FOLDERS[group] for group in GROUPS}


def test_exactly_one_message_differs_from_the_md5_in_its_name(corpus: MailCorpus, tarball: Path) -> None:
    assert corpus.checksum_mismatches == [f"{tarball}:{ODD_ONE}"]


def test_messages_are_distinct_in_source_order_and_look_like_email(corpus: MailCorpus) -> None:
    assert len({m.raw for m in corpus.messages}) == 6046
    sources = [m.source for m in corpus.messages]
    assert sources == sorted(sources)
    assert all(looks_like_email(m.raw) for m in corpus.messages)
    assert max(len(m.raw) for m in corpus.messages) < MAX_BYTES


def test_the_shared_tarball_is_the_published_one(tarball: Path) -> None:
    assert tarball == shared_tarball(Path(__file__).resolve().parents[2])
    assert str(file_integrity(tarball)) == CORPUS_INTEGRITY
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == CORPUS_SHA256


def test_obtaining_from_the_shared_copy_stores_it_as_is(tarball: Path, tmp_path: Path) -> None:
    raw_dir = tmp_path / "data" / "raw" / "email"
    said = obtain_mail_corpus(raw_dir, None, None, "http://127.0.0.1:9/unused", CORPUS_INTEGRITY, tarball)
    assert said == f"{raw_dir / CORPUS_NAME}: copied from {tarball} (sha512 verified)"
    assert (raw_dir / CORPUS_NAME).read_bytes() == tarball.read_bytes()
