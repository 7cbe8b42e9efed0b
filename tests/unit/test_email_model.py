"""The e-mail model (spamfilter.modeling.email) on small generated e-mails: one pipeline from raw messages
to P(spam), its input forms, pickling, threshold, lean scorer, parameters and parts."""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from pydantic import ValidationError
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline

from spamfilter.errors import MailError, ModelInputError
from spamfilter.mail import parse_message
from spamfilter.modeling.email import (
    EXAMPLE_MESSAGES,
    NUMERIC_FEATURES,
    OBVIOUS_HAM_EMAILS,
    OBVIOUS_SPAM_EMAILS,
    BoostedTrees,
    CharNgrams,
    EmailFeaturizeParams,
    EmailTrainParams,
    NaiveBayesLogOdds,
    as_messages,
    behavioural_checks,
    build_email_featurizer,
    build_email_model,
    compile_email_scorer,
    email_lean_featurizer,
    email_lean_scorer,
    is_email_model,
    monitored_texts,
    numeric_features,
    platt_sigmoid,
    structure_tokens,
    with_collection_headers,
    without_collection_headers,
)
from spamfilter.modeling.pipeline import model_threshold, spam_probability
from tests.generated_mail import make_corpus, make_email

CORPUS = make_corpus(n_ham=90, n_spam=45, seed=5)
RAWS = [raw for _, raw in CORPUS]
LABELS = [label for label, _ in CORPUS]
HELD_OUT = [raw for _, raw in make_corpus(n_ham=20, n_spam=10, seed=6)]
# Small vocabularies: every token counts on a corpus this size.
SMALL = EmailFeaturizeParams(min_df=1)


@pytest.fixture(scope="module")
def model() -> Pipeline:
    return build_email_model(SMALL, EmailTrainParams()).fit(RAWS, LABELS)


def test_pipeline_learns_and_scores_each_row(model: Pipeline) -> None:
    assert list(model.classes_) == ["ham", "spam"]
    assert is_email_model(model)
    proba = spam_probability(model, HELD_OUT)
    assert proba.shape == (len(HELD_OUT),)
    assert ((proba > 0) & (proba < 1)).all()
    truth = [label for label, _ in make_corpus(n_ham=20, n_spam=10, seed=6)]
    predicted = list(model.predict(HELD_OUT))
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
    assert accuracy >= 0.9


def test_every_input_form_gives_the_same_probabilities(model: Pipeline) -> None:
    expected = spam_probability(model, HELD_OUT)
    as_text = [raw.decode("utf-8") for raw in HELD_OUT]
    forms = {
        "str": as_text,
        "array": np.array(HELD_OUT, dtype=object),
        "column array": np.array(HELD_OUT, dtype=object).reshape(-1, 1),
        "message column": pd.DataFrame({"message": HELD_OUT, "other": range(len(HELD_OUT))}),
        "single column": pd.DataFrame({"raw": as_text}),
        "series": pd.Series(HELD_OUT),
    }
    for name, data in forms.items():
        assert np.array_equal(spam_probability(model, data), expected), name
    assert np.array_equal(spam_probability(model, HELD_OUT[0]), expected[:1])
    assert np.array_equal(spam_probability(model, as_text[0]), expected[:1])


def test_bad_input_is_named(model: Pipeline) -> None:
    with pytest.raises(ModelInputError, match="'message' column"):
        model.predict(pd.DataFrame({"a": HELD_OUT[:2], "b": HELD_OUT[:2]}))
    with pytest.raises(ModelInputError, match="input row 1: expected a raw message"):
        model.predict([HELD_OUT[0], 42])
    with pytest.raises(MailError, match="input row 1: not an e-mail"):
        model.predict([HELD_OUT[0], b"just some words, no header block at all"])


def test_pickle_round_trip_gives_identical_probabilities(model: Pipeline) -> None:
    loaded = pickle.loads(pickle.dumps(model))
    assert np.array_equal(spam_probability(loaded, HELD_OUT), spam_probability(model, HELD_OUT))
    assert list(loaded.predict(HELD_OUT)) == list(model.predict(HELD_OUT))


def test_threshold_is_built_into_the_model() -> None:
    # The averaging model: on separable generated mail the stacked model's trees give two values only.
    strict = build_email_model(SMALL, EmailTrainParams(model="ensemble", threshold=0.9)).fit(RAWS, LABELS)
    lenient = copy.deepcopy(strict).set_params(classifier__threshold=0.1)  # the same fit, another threshold
    assert model_threshold(strict) == 0.9
    probes = HELD_OUT + list(OBVIOUS_SPAM_EMAILS) + list(OBVIOUS_HAM_EMAILS)
    proba = spam_probability(strict, probes)
    assert np.array_equal(proba, spam_probability(lenient, probes))
    assert list(strict.predict(probes)) == ["spam" if p >= 0.9 else "ham" for p in proba]
    assert list(lenient.predict(probes)) == ["spam" if p >= 0.1 else "ham" for p in proba]
    assert ((proba > 0.1) & (proba < 0.9)).any(), "the probes need an ambiguous message to tell thresholds apart"


@pytest.mark.parametrize("name", ["ensemble", "linear_svm", "naive_bayes"])
def test_each_member_alone_is_a_model(name: str) -> None:
    single = build_email_model(SMALL, EmailTrainParams(model=name)).fit(RAWS, LABELS)
    proba = spam_probability(single, HELD_OUT)
    truth = np.array([label for label, _ in make_corpus(n_ham=20, n_spam=10, seed=6)]) == "spam"
    assert ((proba >= 0) & (proba <= 1)).all()
    assert (proba[truth] > 0.5).all() and (proba[~truth] < 0.5).all()
    scorer, kind = compile_email_scorer(single)
    assert kind == "lean"
    assert np.array_equal(scorer(HELD_OUT), proba)


LEAN_PROBES = [
    *HELD_OUT,
    *EXAMPLE_MESSAGES,
    *OBVIOUS_SPAM_EMAILS,
    b"From: a@example.org\n\n",
    b"Subject: hi\n\nunseen words only",
]


def test_lean_featurizer_gives_the_featurizer_output_entry_for_entry(model: Pipeline) -> None:
    featurize = email_lean_featurizer(model)
    expected = model.named_steps["features"].transform(LEAN_PROBES).tocsr()
    for got in (featurize(LEAN_PROBES), sp.vstack([featurize([raw]) for raw in LEAN_PROBES]).tocsr()):
        assert got.shape == expected.shape
        assert got.dtype == expected.dtype
        assert np.array_equal(got.indptr, expected.indptr)
        assert np.array_equal(got.indices, expected.indices)
        assert np.array_equal(got.data, expected.data)


def test_lean_scorer_is_bit_identical_one_by_one_and_in_batches(model: Pipeline) -> None:
    scorer, kind = compile_email_scorer(model)
    assert kind == "lean"
    expected = spam_probability(model, LEAN_PROBES)
    assert np.array_equal(scorer(LEAN_PROBES), expected)
    assert np.array_equal(np.concatenate([scorer([raw]) for raw in LEAN_PROBES]), expected)


def test_lean_scorer_refuses_another_shape_and_compile_falls_back(model: Pipeline) -> None:
    other = Pipeline([("features", TfidfVectorizer()), ("classifier", MultinomialNB())])
    other.fit(["spam spam", "ham ham"], ["spam", "ham"])
    with pytest.raises(ValueError, match="not an e-mail pipeline"):
        email_lean_scorer(other)
    _, kind = compile_email_scorer(other, probes=[b"spam spam"])
    assert kind == "pipeline"


def test_split_featurizer_fits_the_same_model_as_the_whole_pipeline(model: Pipeline) -> None:
    # What the benches and DVC stages do: parse once, fit the fields step on records, then assemble.
    featurizer = build_email_featurizer(SMALL)
    records = featurizer.named_steps["parse"].transform(RAWS)
    features = featurizer.named_steps["fields"].fit_transform(records)
    assert np.array_equal(features.toarray(), model.named_steps["features"].transform(RAWS).toarray())


def test_numeric_features_are_the_last_columns_and_only_the_trees_read_them(model: Pipeline) -> None:
    records = model.named_steps["features"].named_steps["parse"].transform(HELD_OUT)
    features = model.named_steps["features"].transform(HELD_OUT)
    numbers = numeric_features(records)
    assert numbers.shape == (len(HELD_OUT), len(NUMERIC_FEATURES))
    assert np.array_equal(features[:, -len(NUMERIC_FEATURES) :].toarray(), numbers)
    stacked = model.named_steps["classifier"].estimator_
    assert all(member.coef_.shape[1] == features.shape[1] - len(NUMERIC_FEATURES) for member in stacked.members_)
    assert stacked.booster_.n_features_in_ == len(stacked.members_) + len(NUMERIC_FEATURES)


def test_boosted_trees_in_numpy_give_the_boosters_probabilities() -> None:
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(400, 5))
    inputs[rng.random(inputs.shape) < 0.05] = np.nan  # missing values take each split's learned side
    labels = inputs[:, 0] + np.nan_to_num(inputs[:, 1]) * inputs[:, 2] + rng.normal(scale=0.5, size=400) > 0
    booster = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=8, random_state=0).fit(inputs, labels)
    trees = BoostedTrees.of(booster)
    probes = np.vstack([inputs, rng.normal(scale=3, size=(200, 5))])
    assert np.array_equal(trees.probability(probes), booster.predict_proba(probes)[:, 1])


def test_member_scores_are_the_members_own_decisions_on_the_text_columns(model: Pipeline) -> None:
    stacked = model.named_steps["classifier"].estimator_
    features = model.named_steps["features"].transform(LEAN_PROBES)
    text = features[:, : -len(NUMERIC_FEATURES)]
    expected = np.column_stack([member.decision_function(text) for member in stacked.members_])
    assert np.array_equal(stacked.member_scores(features), expected)


def test_stacked_model_scores_through_the_numpy_trees(model: Pipeline) -> None:
    stacked = model.named_steps["classifier"].estimator_
    assert stacked.trees_ is not None
    features = model.named_steps["features"].transform(HELD_OUT)
    inputs = np.hstack([stacked.member_scores(features), features[:, -len(NUMERIC_FEATURES) :].toarray()])
    assert np.array_equal(stacked.predict_proba(features)[:, 1], stacked.booster_.predict_proba(inputs)[:, 1])


def test_char_ngrams_match_scikit_learn_char_wb() -> None:
    texts = ["Hello wonderful   world", "a bb ccc dddd eeeee", "Ünïcödé тест\tline\nnext", "", "x", "  lead trail  "]
    for ngram_range in ((1, 3), (2, 4), (3, 5)):
        reference = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, lowercase=True).build_analyzer()
        ours = CharNgrams(ngram_range, lowercase=True)
        for text in texts:
            assert sorted(ours(text)) == sorted(reference(text)), (ngram_range, text)


def test_platt_sigmoid_stays_finite_on_separated_scores_and_orders_them() -> None:
    scores = np.array([-3.0, -2.0, -1.5, 1.0, 2.5, 4.0])
    positive = scores > 0
    slope, intercept = platt_sigmoid(scores, positive)
    assert 0 < slope < 50
    proba = 1 / (1 + np.exp(-(slope * scores + intercept)))
    assert (np.diff(proba) > 0).all()
    # Platt's smoothed targets: the fitted probabilities stay inside (1/(N-+2), (N++1)/(N++2)) at the data.
    assert proba.max() < 1 and proba.min() > 0
    assert proba[positive].min() > 0.5 > proba[~positive].max()


def test_naive_bayes_log_odds_is_the_linear_form_of_multinomial_nb() -> None:
    features = np.array([[3, 0, 1], [0, 2, 2], [4, 1, 0], [0, 3, 1]], dtype=float)
    labels = ["spam", "ham", "spam", "ham"]
    bayes = NaiveBayesLogOdds(alpha=0.5).fit(features, labels)
    joint = MultinomialNB(alpha=0.5).fit(features, labels).predict_joint_log_proba(features)
    assert np.allclose(bayes.decision_function(features), joint[:, 1] - joint[:, 0])
    assert list(bayes.predict(features)) == labels


def test_params_are_strict_and_frozen() -> None:
    with pytest.raises(ValidationError, match="extra"):
        EmailFeaturizeParams(body_chars=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="1 <= low <= high"):
        EmailFeaturizeParams(body_char_ngram_range=(5, 3))
    with pytest.raises(ValidationError, match="at most once"):
        EmailFeaturizeParams(blocks=("body", "body"))
    with pytest.raises(ValidationError, match="threshold"):
        EmailTrainParams(threshold=1.0)
    params = EmailTrainParams()
    with pytest.raises(ValidationError, match="frozen"):
        params.threshold = 0.2  # type: ignore[misc]


def test_default_reads_no_collection_header_and_extra_fields_get_a_block() -> None:
    default = EmailFeaturizeParams()
    assert not {"received", "delivered-to", "return-path", "precedence", "errors-to", "message-id"} & set(
        default.header_fields
    )
    assert not any(field.startswith(("list-", "x-")) for field in default.header_fields)
    assert default.extra_header_fields == ()
    names = [name for name, _ in build_email_featurizer(default).named_steps["fields"].transformer_list]
    assert "headers" not in names
    wider = EmailFeaturizeParams(header_fields=(*default.header_fields, "X-Mailer"))
    assert wider.extra_header_fields == ("x-mailer",)
    names = [name for name, _ in build_email_featurizer(wider).named_steps["fields"].transformer_list]
    assert names[-2:] == ["headers", "numbers"]


def test_collection_headers_are_added_and_removed_exactly() -> None:
    original = b"From MAILER-DAEMON Mon Sep  2 10:00:00 2002\n" + make_email("a@example.org", "Hello", "Body text")
    added = with_collection_headers(original)
    assert added.startswith(b"From MAILER-DAEMON")
    assert b"\nReceived: from relay" in added and b"\nList-Id:" in added and b"\nX-Mailer:" in added
    folded = added.replace(b"Precedence: bulk", b"Precedence: bulk\n\tcontinued\nx-spam-level: ***")
    assert without_collection_headers(folded) == original
    assert without_collection_headers(original) == original
    body_header = b"From: a@example.org\nSubject: s\n\nReceived: this line is body text\n"
    assert without_collection_headers(body_header) == body_header
    # The parser keeps none of them: only the raw size differs, which is why no feature reads it.
    assert replace(parse_message(added), size=0) == replace(parse_message(original), size=0)


def test_structure_tokens_read_date_validity_and_the_sender_in_links() -> None:
    record = parse_message(
        b"From: news@shop.example.com\nSubject: OFFER\nDate: Sun, 28 Jul 0102 12:29:29 -1600\n\n"
        b"see http://www.shop.example.com/deal\n"
    )
    tokens = structure_tokens(record)
    assert {"date:bad-year", "date:bad-zone", "sender:in-links", "sender:all-links"} <= set(tokens)
    assert "subject.caps:3" in tokens


def test_behavioural_checks_and_monitored_texts(model: Pipeline) -> None:
    def predict(batch: list[object]) -> list[str]:
        return [str(label) for label in model.predict(batch)]

    results = {result.name: result for result in behavioural_checks(HELD_OUT[:10], predict)}
    assert set(results) == {"collection_header_invariance", "obvious_spam", "obvious_ham"}
    assert results["collection_header_invariance"].passed
    assert results["collection_header_invariance"].total == 10
    texts = monitored_texts([EXAMPLE_MESSAGES[1], b"not an e-mail"])
    assert texts[0].startswith("Re: review of the parser patch\n")
    assert "header unfolding" in texts[0]
    assert texts[1] == ""


def test_as_messages_accepts_bytearray_and_refuses_wide_arrays() -> None:
    assert as_messages(bytearray(b"From: a@b.c\n\nx")) == [b"From: a@b.c\n\nx"]
    with pytest.raises(ModelInputError, match="one column"):
        as_messages(np.array([[b"a", b"b"]], dtype=object))
