"""Text descriptors of a window of messages: tokens the way the model sees them, lengths, shares of
URLs, numbers, currency and uppercase, and the out-of-vocabulary rate. Pure functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from spamfilter.modeling.text import (
    EMAIL_TOKEN,
    MONEY_TOKEN,
    NUMBER_TOKEN,
    PHONE_TOKEN,
    URL_TOKEN,
    WordAnalyzer,
    normalize,
)

DESCRIPTORS = ("length", "tokens", "url_share", "number_share", "currency_share", "uppercase_share", "oov_rate")
# Descriptors a prediction-log row without its text still has (`text_length`).
LENGTH_ONLY = ("length",)
_PLACEHOLDERS = {URL_TOKEN, EMAIL_TOKEN, PHONE_TOKEN, MONEY_TOKEN, NUMBER_TOKEN}


@dataclass
class TokenizedTexts:
    """Per message: its word terms (stems and placeholders, in order) and the raw text's letter counts."""

    terms: list[list[str]]
    lengths: np.ndarray
    upper: np.ndarray
    letters: np.ndarray


def tokenize(texts: Sequence[str], analyzer: WordAnalyzer | None = None) -> TokenizedTexts:
    """Normalise and stem each text the way the model does (the one preprocessing path)."""
    analyzer = analyzer or WordAnalyzer("porter")
    # Traffic repeats itself (one spam sent to thousands, "ok", "call me"): work once per distinct text.
    distinct: dict[str, list[str]] = {}
    for text in texts:
        if text not in distinct:
            distinct[text] = [t for t in analyzer.tokens(normalize(text)) if t[0].isalpha()]
    terms = [distinct[text] for text in texts]
    lengths = np.fromiter(map(len, texts), dtype=float, count=len(texts))
    upper = np.fromiter((sum(map(str.isupper, t)) for t in texts), dtype=float, count=len(texts))
    letters = np.fromiter((sum(map(str.isalpha, t)) for t in texts), dtype=float, count=len(texts))
    return TokenizedTexts(terms, lengths, upper, letters)


def document_frequencies(terms: Iterable[Sequence[str]]) -> Counter[str]:
    """term → number of messages containing it, ordered by count and then by term: `most_common`
    breaks ties the same way in every run (a set's order changes with the hash seed)."""
    counts: Counter[str] = Counter()
    for message_terms in terms:
        counts.update(set(message_terms))
    return Counter(dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))))


def descriptors(
    tokenized: TokenizedTexts, vocabulary: Mapping[str, int], leave_one_out: bool = False
) -> dict[str, np.ndarray]:
    """Per-message descriptors.

    `vocabulary` maps the reference's terms to their document frequency. A word is out of
    vocabulary when the reference never saw it; for the reference's own messages
    (`leave_one_out`), when only that message has it — what a new message would see, without the
    bias of a vocabulary that contains the message itself.
    """
    n = len(tokenized.terms)
    out = {name: np.zeros(n) for name in DESCRIPTORS}
    out["length"] = tokenized.lengths.copy()
    seen_at_least = 2 if leave_one_out else 1
    for i, message_terms in enumerate(tokenized.terms):
        count = len(message_terms)
        out["tokens"][i] = count
        if not count:
            continue
        placeholders = Counter(t for t in message_terms if t in _PLACEHOLDERS)
        out["url_share"][i] = (placeholders[URL_TOKEN] + placeholders[EMAIL_TOKEN]) / count
        out["number_share"][i] = (placeholders[NUMBER_TOKEN] + placeholders[PHONE_TOKEN]) / count
        out["currency_share"][i] = placeholders[MONEY_TOKEN] / count
        words = [t for t in message_terms if t not in _PLACEHOLDERS]
        if words:
            out["oov_rate"][i] = sum(vocabulary.get(w, 0) < seen_at_least for w in words) / len(words)
    out["uppercase_share"] = np.divide(tokenized.upper, tokenized.letters, out=np.zeros(n), where=tokenized.letters > 0)
    return out
