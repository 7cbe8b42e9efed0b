"""Normalisation and tokenising: the preprocessing path shared by training and serving."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from spamfilter.modeling.text import (
    EMAIL_TOKEN,
    MONEY_TOKEN,
    NUMBER_TOKEN,
    PHONE_TOKEN,
    URL_TOKEN,
    TextNormalizer,
    WordAnalyzer,
    as_texts,
    make_stemmer,
    normalize,
)


@pytest.mark.parametrize(
    ("text", "expected_token"),
    [
        ("visit http://win.example.com/now", URL_TOKEN),
        ("go to www.prizes.co.uk today", URL_TOKEN),
        ("see freemsg.com for details", URL_TOKEN),
        ("mail me at jo.bloggs+sms@example.co.uk", EMAIL_TOKEN),
        ("call 09061701461 now", PHONE_TOKEN),
        ("call +44 7911 123 456", PHONE_TOKEN),
        ("win £1000 cash", MONEY_TOKEN),
        ("only 150p per msg", MONEY_TOKEN),
        ("it costs $95 per pax", MONEY_TOKEN),
        ("meet at 7 tonight", NUMBER_TOKEN),
    ],
)
def test_normalize_maps_entities_to_placeholders(text: str, expected_token: str) -> None:
    assert expected_token in normalize(text).split()


def test_normalize_lowercases_and_collapses_whitespace() -> None:
    assert normalize("  HELLO \t  There\n") == "hello there"


def test_money_keeps_its_currency() -> None:
    assert normalize("£5 prize").split()[:2] == ["£", MONEY_TOKEN]
    assert normalize("$5 lunch").split()[:2] == ["$", MONEY_TOKEN]
    assert normalize("150p/msg").split()[:2] == ["£", MONEY_TOKEN]


def test_phone_is_not_mistaken_for_a_number_and_short_numbers_are_not_phones() -> None:
    tokens = normalize("text 87121 or call 08712460324").split()
    assert tokens.count(NUMBER_TOKEN) == 1
    assert tokens.count(PHONE_TOKEN) == 1


@pytest.mark.parametrize("stemmer", ["porter", "snowball"])
def test_analyzer_stems_words_but_not_placeholders(stemmer: str) -> None:
    analyzer = WordAnalyzer(stemmer=stemmer)  # type: ignore[arg-type]
    tokens = analyzer(normalize("Winning prizes! call 09061701461"))
    assert "win" in tokens
    assert "prize" in tokens
    assert PHONE_TOKEN in tokens
    assert "!" in tokens


def test_analyzer_without_stemming_keeps_words() -> None:
    assert WordAnalyzer(stemmer="none")("winning prizes") == ["winning", "prizes"]


def test_analyzer_stop_words_from_scikit_learn() -> None:
    assert WordAnalyzer(stemmer="none", stop_words=True)("this is the prize") == ["prize"]


def test_analyzer_word_ngrams() -> None:
    grams = WordAnalyzer(stemmer="none", ngram_range=(1, 2))("free cash now")
    assert grams == ["free", "cash", "now", "free cash", "cash now"]
    assert WordAnalyzer(stemmer="none", ngram_range=(2, 2))("free cash now") == ["free cash", "cash now"]


def test_analyzer_pickles_without_its_cache() -> None:
    analyzer = WordAnalyzer(stemmer="porter", ngram_range=(1, 2))
    analyzer("running runners")
    restored = pickle.loads(pickle.dumps(analyzer))
    assert restored._cache == {}
    assert restored("running runners") == analyzer("running runners")


def test_unknown_stemmer_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown stemmer 'lancaster'"):
        make_stemmer("lancaster")  # type: ignore[arg-type]


def test_as_texts_reads_each_row_of_a_dataframe_not_its_column_names() -> None:
    frame = pd.DataFrame({"text": ["one", "two", "three"]})
    assert as_texts(frame) == ["one", "two", "three"]


def test_as_texts_accepts_common_shapes() -> None:
    assert as_texts("single") == ["single"]
    assert as_texts(["a", "b"]) == ["a", "b"]
    assert as_texts(pd.Series(["a", "b"], dtype="string")) == ["a", "b"]
    assert as_texts(np.array([["a"], ["b"]], dtype=object)) == ["a", "b"]
    assert as_texts(pd.DataFrame({"message": ["x"]})) == ["x"]


def test_as_texts_rejects_ambiguous_or_non_text_input() -> None:
    with pytest.raises(ValueError, match="'text' column"):
        as_texts(pd.DataFrame({"a": ["x"], "b": ["y"]}))
    with pytest.raises(TypeError, match="row 1: expected a string, got int"):
        as_texts(["ok", 3])


def test_text_normalizer_transforms_a_dataframe_row_by_row() -> None:
    out = TextNormalizer().fit_transform(pd.DataFrame({"text": ["WIN £5", "Hi"]}))
    assert out == [f"win £ {MONEY_TOKEN}", "hi"]
