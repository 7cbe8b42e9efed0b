"""Text normalisation and tokenising: the one preprocessing path shared by training and serving.

Everything here is pure and picklable, so the fitted scikit-learn pipeline that carries these
objects scores raw text the same way in `evaluate`, in MLflow's pyfunc and in the API.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from spamfilter.config import StemmerName
from spamfilter.errors import ConfigError, ModelInputError

# Placeholder tokens: letters only, so no tokeniser or stemmer splits or rewrites them.
URL_TOKEN = "urltoken"
EMAIL_TOKEN = "emailtoken"
PHONE_TOKEN = "phonetoken"
MONEY_TOKEN = "moneytoken"
NUMBER_TOKEN = "numbertoken"
PLACEHOLDER_TOKENS = frozenset({URL_TOKEN, EMAIL_TOKEN, PHONE_TOKEN, MONEY_TOKEN, NUMBER_TOKEN})

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|co\.uk|uk|biz|info|tv|mobi|ly)(?:/\S*)?\b"
)
# Money before phone and number: "£1000", "$5", "1.50p", "€20", "100 pounds".
_MONEY = re.compile(
    r"[£$€]\s?\d[\d,]*(?:\.\d+)?(?:k|m)?"
    r"|\b\d[\d,]*(?:\.\d+)?\s?(?:p|pence|pounds?|gbp|usd|dollars?|euros?)\b"
)
# Phone numbers: 10+ digits, optionally grouped by spaces or dashes, optional leading +.
_PHONE = re.compile(r"\+?\d(?:[\s-]?\d){9,}")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SPACES = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")

# Words, the placeholder tokens, and the punctuation that carries signal in SMS spam.
TOKEN_PATTERN = r"[a-z]+(?:'[a-z]+)?|[!?£$€]"


def _money_placeholder(match: re.Match[str]) -> str:
    # The currency stays: "£" marks UK premium-rate spam, "$" mostly ham prices in this corpus.
    amount = match.group(0)
    if "$" in amount or "usd" in amount or "dollar" in amount:
        symbol = "$"
    elif "€" in amount or "euro" in amount:
        symbol = "€"
    else:
        symbol = "£"
    return f" {symbol} {MONEY_TOKEN} "


def normalize(text: str) -> str:
    """Lowercase; map URLs, e-mail addresses, money (keeping its currency), phone numbers and numbers to placeholders."""
    text = text.lower()
    # Each pattern needs a character most messages lack: test for it before running the regex.
    if "@" in text:
        text = _EMAIL.sub(f" {EMAIL_TOKEN} ", text)
    if "." in text or "://" in text:
        text = _URL.sub(f" {URL_TOKEN} ", text)
    if _DIGIT.search(text):
        text = _MONEY.sub(_money_placeholder, text)
        text = _PHONE.sub(f" {PHONE_TOKEN} ", text)
        text = _NUMBER.sub(f" {NUMBER_TOKEN} ", text)
    return _SPACES.sub(" ", text).strip()


def make_stemmer(name: StemmerName) -> Callable[[str], str]:
    """Return a stemming function; `none` returns the identity."""
    # nltk is imported here, not at module level: its package import takes ~1-2 s, which every
    # command importing the config would otherwise pay.
    from nltk.stem import PorterStemmer, SnowballStemmer

    stem: Callable[[str], str]
    if name == "porter":
        stem = PorterStemmer().stem
    elif name == "snowball":
        stem = SnowballStemmer("english").stem
    elif name == "none":
        stem = str  # the identity on words
    else:
        raise ConfigError(f"unknown stemmer {name!r}: expected porter, snowball or none")
    return stem


class WordAnalyzer:
    """Tokenise normalised text with NLTK's RegexpTokenizer, drop stop words, stem.

    Used as `TfidfVectorizer(analyzer=WordAnalyzer(...))`. Stems are memoised per instance:
    SMS vocabularies are small, and stemming dominates the cost of scoring one message.
    """

    def __init__(
        self,
        stemmer: StemmerName = "porter",
        stop_words: bool = False,
        ngram_range: tuple[int, int] = (1, 1),
    ) -> None:
        self.stemmer = stemmer
        self.stop_words = stop_words
        self.ngram_range = ngram_range
        from nltk.tokenize import RegexpTokenizer  # lazily, as in make_stemmer

        self._tokenizer = RegexpTokenizer(TOKEN_PATTERN)
        self._stem = make_stemmer(stemmer)
        self._cache: dict[str, str] = {}

    def tokens(self, text: str) -> list[str]:
        """Stemmed tokens of already normalised text."""
        cache = self._cache
        out: list[str] = []
        for token in self._tokenizer.tokenize(text):
            if self.stop_words and token in ENGLISH_STOP_WORDS:
                continue
            stem = cache.get(token)
            if stem is None:
                stem = token if token in PLACEHOLDER_TOKENS else self._stem(token)
                if len(cache) < 200_000:
                    cache[token] = stem
            out.append(stem)
        return out

    def __call__(self, text: str) -> list[str]:
        tokens = self.tokens(text)
        low, high = self.ngram_range
        if (low, high) == (1, 1):
            return tokens
        grams: list[str] = tokens[:] if low == 1 else []
        for n in range(max(low, 2), high + 1):
            grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        return grams

    def __getstate__(self) -> dict[str, Any]:
        # The tokenizer, stemmer and cache are rebuilt on load: smaller, version-independent pickles.
        return {"stemmer": self.stemmer, "stop_words": self.stop_words, "ngram_range": self.ngram_range}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]


def as_texts(data: Any) -> list[str]:
    """Coerce model input to a list of strings.

    Accepts a string, a sequence of strings, a pandas Series, or a DataFrame with a `text`
    column (or a single column). A bare TfidfVectorizer iterates a DataFrame's column names,
    which would score the word "text" once instead of each row: this guard prevents that.
    """
    if isinstance(data, str):
        return [data]
    columns = getattr(data, "columns", None)
    if columns is not None:
        names = list(columns)
        if "text" in names:
            data = data["text"]
        elif len(names) == 1:
            data = data[names[0]]
        else:
            raise ModelInputError(f"expected a 'text' column, got columns {names}")
    if isinstance(data, np.ndarray) and data.ndim == 2:
        if data.shape[1] != 1:
            raise ModelInputError(f"expected one column of texts, got shape {data.shape}")
        data = data[:, 0]
    texts = data.tolist() if hasattr(data, "tolist") else list(data)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ModelInputError(f"input row {i}: expected a string, got {type(text).__name__}")
    return texts


class TextNormalizer(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn is untyped
    """First step of every model pipeline: raw input of any accepted shape → normalised texts."""

    def fit(self, X: Any, y: Any = None) -> TextNormalizer:  # noqa: N803 (sklearn's API)
        return self

    def transform(self, X: Any) -> list[str]:  # noqa: N803
        return [normalize(text) for text in as_texts(X)]
