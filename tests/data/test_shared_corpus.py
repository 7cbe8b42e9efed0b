"""Data checks on the real SMS Spam Collection: what the README of the shared copy promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from spamfilter.data.acquire import CANONICAL_NAME, UCI_MEMBER_SHA256, corpus_from_bytes, sha256
from spamfilter.data.corpus import deduplicate, parse_corpus, split

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def raw(shared_corpus: Path) -> bytes:
    return shared_corpus.read_bytes()


def test_parses_every_row_without_a_bad_one(raw: bytes) -> None:
    parsed = parse_corpus(raw, "sms_spam_collection.tsv")
    assert parsed.bad_rows == []
    assert len(parsed.messages) == 5574
    assert sum(m.is_spam for m in parsed.messages) == 747
    # 54 texts start with a double quote: quoting must be off for them to survive intact.
    assert sum(m.text.startswith('"') for m in parsed.messages) == 54


def test_html_entities_are_unescaped_everywhere(raw: bytes) -> None:
    parsed = parse_corpus(raw, "sms_spam_collection.tsv")
    assert not any("&lt;" in m.text or "&gt;" in m.text or "&amp;" in m.text for m in parsed.messages)
    assert any("<#>" in m.text for m in parsed.messages)


def test_403_exact_duplicates_and_no_label_conflicts(raw: bytes) -> None:
    dataset = deduplicate([parse_corpus(raw, "sms_spam_collection.tsv")])
    assert dataset.duplicates_dropped == 403
    assert dataset.bad_rows == []
    assert len(dataset.messages) == 5171


def test_split_keeps_the_spam_rate_on_both_sides(raw: bytes) -> None:
    dataset = deduplicate([parse_corpus(raw, "sms_spam_collection.tsv")])
    train, test = split(dataset.messages, 0.2, 42)
    rate = sum(m.is_spam for m in dataset.messages) / len(dataset.messages)
    for side in (train, test):
        assert abs(sum(m.is_spam for m in side) / len(side) - rate) < 0.002
    assert {m.text for m in train}.isdisjoint(m.text for m in test)


def test_uci_bytes_and_the_shared_copy_store_identically(raw: bytes) -> None:
    header, _, uci = raw.partition(b"\n")
    assert header == b"label\ttext"
    assert sha256(uci) == UCI_MEMBER_SHA256
    from_uci = corpus_from_bytes(uci, "SMSSpamCollection", "SMSSpamCollection")
    from_copy = corpus_from_bytes(raw, "copy.tsv", "copy.tsv")
    assert from_uci == from_copy
    assert from_uci.name == CANONICAL_NAME
    assert from_uci.content == raw


def test_committed_data_dvc_matches_the_real_corpus(raw: bytes) -> None:
    """data/raw/sms.dvc in the repo records this exact corpus (so `dvc status` is clean after `make data`)."""
    import yaml

    dvc_file = yaml.safe_load((Path(__file__).resolve().parents[2] / "data/raw/sms.dvc").read_text())
    assert dvc_file["outs"][0]["size"] == len(raw)
    assert dvc_file["outs"][0]["nfiles"] == 1
