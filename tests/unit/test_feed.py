"""The simulated production feed: sampling, drift injection and batches that pass validation."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spamfilter import cli
from spamfilter.data import corpus, feed
from spamfilter.errors import DataError
from spamfilter.modeling.text import WordAnalyzer, normalize
from tests.conftest import make_messages, write_tsv


@pytest.fixture
def pool() -> list[corpus.Message]:
    return [corpus.Message(label, text) for label, text in make_messages(n_ham=300, n_spam=60)]


def test_plain_sample_is_deterministic_and_from_the_pool(pool: list[corpus.Message]) -> None:
    batch = feed.make_batch(pool, 100, "none", 0.0, seed=3)
    assert batch == feed.make_batch(pool, 100, "none", 0.0, seed=3)
    assert batch != feed.make_batch(pool, 100, "none", 0.0, seed=4)
    assert len({m.text for m in batch}) == 100  # without replacement while the pool lasts
    assert {m.text for m in batch} <= {m.text for m in pool}


def test_spam_surge_raises_the_spam_share(pool: list[corpus.Message]) -> None:
    batch = feed.make_batch(pool, 200, "spam_surge", 0.5, seed=1)
    base = 60 / 360
    assert sum(m.is_spam for m in batch) == round(200 * (base + 0.5 * (1 - base)))


def test_new_campaign_adds_spam_with_unseen_words(pool: list[corpus.Message]) -> None:
    batch = feed.make_batch(pool, 200, "new_campaign", 0.25, seed=2)
    campaign = [m for m in batch if m.source == "feed:new_campaign"]
    assert len(campaign) == 50
    assert all(m.label == "spam" for m in campaign)
    analyzer = WordAnalyzer("none")
    seen = {t for m in pool for t in analyzer.tokens(normalize(m.text))}
    campaign_words = {t for m in campaign for t in analyzer.tokens(normalize(m.text))}
    assert len(campaign_words - seen) >= 20


def test_length_shift_keeps_labels_and_lengthens(pool: list[corpus.Message]) -> None:
    plain = feed.make_batch(pool, 200, "none", 0.0, seed=5)
    shifted = feed.make_batch(pool, 200, "length_shift", 0.5, seed=5)
    assert [m.label for m in shifted] == [m.label for m in plain]
    assert sum(m.source == "feed:length_shift" for m in shifted) == 100
    mean = lambda batch: sum(len(m.text) for m in batch) / len(batch)  # noqa: E731
    assert mean(shifted) > 1.4 * mean(plain)


def test_vocab_shift_swaps_in_modern_words(pool: list[corpus.Message]) -> None:
    shifted = feed.make_batch(pool, 100, "vocab_shift", 0.4, seed=6)
    changed = [m for m in shifted if m.source == "feed:vocab_shift"]
    assert len(changed) == 40
    assert all(set(m.text.split()) & set(feed.MODERN_WORDS) for m in changed)


@pytest.mark.parametrize(
    ("mode", "strength", "message"),
    [("tsunami", 0.1, "unknown drift mode"), ("new_campaign", 1.5, "strength must be within")],
)
def test_bad_arguments(pool: list[corpus.Message], mode: str, strength: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        feed.make_batch(pool, 10, mode, strength, seed=1)


def test_written_batch_passes_the_raw_corpus_validation(pool: list[corpus.Message], tmp_path: Path) -> None:
    messy = [corpus.Message("ham", "tab\there and a\nnewline"), *feed.make_batch(pool, 50, "new_campaign", 0.3, 1)]
    at = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    path = feed.write_batch(messy, tmp_path / "new", "new_campaign", at)
    assert re.fullmatch(r"batch-20250301T120000000000Z-new_campaign\.tsv", path.name)
    parsed = corpus.parse_corpus(path.read_bytes(), str(path))
    assert parsed.bad_rows == []
    assert [m.label for m in parsed.messages] == [m.label for m in messy]
    assert parsed.messages[0].text == "tab here and a newline"
    with pytest.raises(DataError, match="already exists"):
        feed.write_batch(messy, tmp_path / "new", "new_campaign", at)


def test_feed_command_writes_a_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "raw").mkdir()
    corpus_file = write_tsv(tmp_path / "raw" / "corpus.tsv", make_messages())
    out_dir = tmp_path / "new"
    argv = ["feed", "--source", str(tmp_path / "raw"), "--out-dir", str(out_dir), "--n", "30", "--drift", "spam_surge"]
    assert cli.main([*argv, "--seed", "1"]) == 0
    (written,) = out_dir.iterdir()
    assert "30 messages" in capsys.readouterr().out
    parsed = corpus.parse_corpus(written.read_bytes(), str(written))
    assert len(parsed.messages) == 30 and parsed.bad_rows == []
    raw = corpus.parse_corpus(corpus_file.read_bytes(), str(corpus_file))
    assert corpus.deduplicate([raw, parsed]).bad_rows == []  # merges with the corpus as `ingest` will


def test_feed_command_without_a_corpus_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "raw").mkdir()
    assert cli.main(["feed", "--source", str(tmp_path / "raw"), "--out-dir", str(tmp_path / "new")]) == 1
    assert "no corpus file" in capsys.readouterr().err
