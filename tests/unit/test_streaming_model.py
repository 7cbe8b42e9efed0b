"""The out-of-core model (spamfilter.modeling.streaming): hashed features with no vocabulary, TF-IDF weights
counted chunk by chunk, SGD over chunks; the same model in memory and streamed; scoring; reading splits."""

from __future__ import annotations

import math
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.feature_extraction.text import CountVectorizer

from api.model_holder import channel_scorer
from spamfilter.config import EmailFeaturizeParams, FeaturizeParams
from spamfilter.data import corpus, mail_dataset
from spamfilter.data.splits import read_split
from spamfilter.errors import ConfigError, DataError
from spamfilter.modeling import streaming
from spamfilter.modeling.email import compile_email_scorer, is_email_model
from spamfilter.modeling.pipeline import model_threshold, spam_probability
from spamfilter.modeling.scoring import PROBE_TEXTS, compile_scorer
from spamfilter.modeling.text import normalize
from tests.conftest import make_messages
from tests.generated_mail import make_corpus

MESSAGES = make_messages(n_ham=150, n_spam=50)
TEXTS = [text for _, text in MESSAGES]
LABELS = [label for label, _ in MESSAGES]
HELD_OUT = [(label, text) for label, text in make_messages(n_ham=120, n_spam=40, seed=99) if text not in set(TEXTS)]
HELD_OUT_TEXTS = [text for _, text in HELD_OUT]
# Small buckets keep the tests fast; chunks of 40 rows make five chunks of the 200 messages.
SMALL = streaming.StreamingSgdParams(n_features=2**12, chunk_rows=40, min_examples=2_000)
EDGE_TEXTS = ["", "   ", "ok", "!!!", "a b", "Ünïcödé тест 😀", "x" * 30, "tab\tand\nnewline  spaces"]


def build(params: streaming.StreamingSgdParams = SMALL, seed: int = 42, threshold: float = 0.5):
    return streaming.build_streaming_model(FeaturizeParams(), params, threshold, seed)


def chunks_of(texts: list[str], labels: list[str], rows: int) -> list[tuple[list[str], list[str]]]:
    return [(texts[start : start + rows], labels[start : start + rows]) for start in range(0, len(texts), rows)]


@pytest.fixture(scope="module")
def fitted():
    return build().fit(TEXTS, LABELS)


# -- features ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ngram_range", "lowercase"), [((1, 5), False), ((3, 5), False), ((4, 6), False), ((2, 4), True)]
)
def test_char_ngram_hasher_counts_exactly_scikit_learns_char_wb_ngrams(
    ngram_range: tuple[int, int], lowercase: bool
) -> None:
    texts = [normalize(text) for text in TEXTS[:60]] + EDGE_TEXTS + ["MiXeD CaSe WoRdS", "a" * 9 + " bb"]
    analyze = CountVectorizer(analyzer="char_wb", ngram_range=ngram_range, lowercase=lowercase).build_analyzer()
    n_features = 2**16
    counts = streaming.CharNgramHasher(ngram_range, n_features, lowercase=lowercase).transform(texts)
    assert counts.shape == (len(texts), n_features)
    for row, text in enumerate(texts):
        expected = Counter(streaming.char_ngram_bucket(gram, n_features) for gram in analyze(text))
        found = counts[[row]].tocoo()
        assert Counter(dict(zip(found.coords[1].tolist(), found.data.astype(int).tolist(), strict=True))) == expected, (
            text
        )


def test_hashed_tfidf_drops_buckets_no_training_document_reached() -> None:
    hasher = streaming.CharNgramHasher((3, 3), 2**16)
    tfidf = streaming.HashedTfidf(2**16, (1,)).fit(hasher.transform(["hello world"]))
    known = set(tfidf.transform(hasher.transform(["hello world"])).indices.tolist())
    mixed = tfidf.transform(hasher.transform(["hello zzzqqq"]))
    assert set(mixed.indices.tolist()) <= known
    assert {streaming.char_ngram_bucket(gram, 2**16) for gram in (" he", "hel", "ell", "llo", "lo ")} <= set(
        mixed.indices.tolist()
    )
    # An unknown word leaves the known n-grams' weights as they are alone: the L2 norm counts only known buckets.
    alone = tfidf.transform(hasher.transform(["hello"]))
    np.testing.assert_allclose(np.linalg.norm(mixed.data), 1.0)
    np.testing.assert_allclose(sorted(mixed.data), sorted(alone.data))
    assert tfidf.transform(hasher.transform(["qqq zzz"])).nnz == 0


def test_hashed_tfidf_counts_document_frequency_chunk_by_chunk_and_normalises_each_block() -> None:
    counts = streaming._sms_featurizer(FeaturizeParams(min_df=2), 2**12)[:-1].transform(TEXTS)
    whole = streaming.HashedTfidf(2**12, (2, 2)).fit(counts)
    chunked = streaming.HashedTfidf(2**12, (2, 2))
    for start in range(0, len(TEXTS), 33):
        chunked.partial_fit(counts[start : start + 33])
    np.testing.assert_array_equal(chunked.document_frequency_, whole.document_frequency_)
    assert chunked.n_documents_ == len(TEXTS)
    features = whole.transform(counts)
    np.testing.assert_array_equal(features.toarray(), chunked.transform(counts).toarray())
    kept = whole.document_frequency_ >= 2
    assert set(features.indices.tolist()) <= set(np.flatnonzero(kept).tolist())
    dense = features.toarray()
    for block in (dense[:, : 2**12], dense[:, 2**12 :]):
        norms = np.linalg.norm(block, axis=1)
        np.testing.assert_allclose(norms[norms > 0], 1.0)


# -- the model --------------------------------------------------------------------------------------------


def test_streaming_model_learns_the_fixture_and_yields_probabilities(fitted) -> None:
    assert list(fitted.classes_) == ["ham", "spam"]
    assert list(fitted.named_steps) == ["features", "classifier"]
    proba = fitted.predict_proba(HELD_OUT_TEXTS + EDGE_TEXTS)
    assert proba.shape == (len(HELD_OUT_TEXTS) + len(EDGE_TEXTS), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()
    spam = spam_probability(fitted, HELD_OUT_TEXTS)
    predicted = list(fitted.predict(HELD_OUT_TEXTS))
    assert predicted == ["spam" if p >= model_threshold(fitted) else "ham" for p in spam]
    truth = [label for label, _ in HELD_OUT]
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
    assert len(truth) >= 100 and accuracy > 0.95, accuracy  # all-ham scores 0.75 here
    # AUC well above chance: the calibrated probabilities order spam above ham.
    positive, negative = spam[np.array(truth) == "spam"], spam[np.array(truth) == "ham"]
    assert (positive[:, None] > negative[None, :]).mean() > 0.95


def test_epochs_stop_once_enough_rows_are_trained_on(fitted) -> None:
    classifier = fitted.named_steps["classifier"]
    assert classifier.n_train_rows_ + classifier.n_calibration_rows_ == len(TEXTS)
    assert 0 < classifier.n_calibration_rows_ < len(TEXTS) * 0.35
    assert classifier.n_epochs_ == min(SMALL.epochs, math.ceil(SMALL.min_examples / classifier.n_train_rows_)) > 1
    few = build(SMALL.model_copy(update={"min_examples": 1})).fit(TEXTS, LABELS)
    assert few.named_steps["classifier"].n_epochs_ == 1


def test_fit_streaming_equals_the_in_memory_fit_and_is_deterministic(fitted) -> None:
    streamed = streaming.fit_streaming(build(), chunks_of(TEXTS, LABELS, SMALL.chunk_rows), ["ham", "spam"])
    again = streaming.fit_streaming(build(), iter(chunks_of(TEXTS, LABELS, SMALL.chunk_rows)), ["ham", "spam"])
    expected = spam_probability(fitted, HELD_OUT_TEXTS)
    np.testing.assert_array_equal(spam_probability(streamed, HELD_OUT_TEXTS), expected)
    np.testing.assert_array_equal(spam_probability(again, HELD_OUT_TEXTS), expected)
    # The seed draws the chunk order, the rows held out and SGD's shuffling: another seed, another model.
    other = streaming.fit_streaming(build(seed=7), chunks_of(TEXTS, LABELS, SMALL.chunk_rows), ["ham", "spam"])
    assert not np.array_equal(
        other.named_steps["classifier"].linear_.coef_, streamed.named_steps["classifier"].linear_.coef_
    )


def test_log_loss_without_calibration_uses_its_own_probabilities() -> None:
    params = SMALL.model_copy(update={"loss": "log_loss", "calibration_share": 0.0, "C": 3.0})
    model = build(params).fit(TEXTS, LABELS)
    classifier = model.named_steps["classifier"]
    assert classifier.sigmoid_ is None and classifier.n_calibration_rows_ == 0
    assert classifier.n_train_rows_ == len(TEXTS)
    features = model.named_steps["features"].transform(HELD_OUT_TEXTS)
    np.testing.assert_array_equal(model.predict_proba(HELD_OUT_TEXTS), classifier.linear_.predict_proba(features))


def test_hinge_needs_a_calibration_share() -> None:
    with pytest.raises(ValidationError, match="calibration_share"):
        streaming.StreamingSgdParams(loss="hinge", calibration_share=0.0)
    classifier = streaming.StreamingLinearClassifier(loss="hinge", calibration_share=0.0)
    with pytest.raises(ConfigError, match="calibration_share"):
        classifier.fit_chunks([], [], ["ham", "spam"], 0)


def test_too_few_rows_to_hold_out_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no rows held out for calibration"):
        build(SMALL.model_copy(update={"calibration_share": 0.01})).fit(TEXTS[:20], LABELS[:20])
    with pytest.raises(DataError, match="no rows to train on"):
        streaming.fit_streaming(build(), [([], [])], ["ham", "spam"])


def test_unsupported_featurize_params_are_refused() -> None:
    with pytest.raises(ConfigError, match="max_features"):
        streaming.build_streaming_model(FeaturizeParams(max_features=1000), SMALL, 0.5, 42)


# -- scoring, pickling, memory ----------------------------------------------------------------------------


def test_scorers_reproduce_the_pipeline_exactly(fitted) -> None:
    texts = HELD_OUT_TEXTS + EDGE_TEXTS + list(PROBE_TEXTS)
    expected = spam_probability(fitted, texts)
    # The SMS lean scorer has no path for hashed features: it falls back to the pipeline's own call.
    full, kind = compile_scorer(fitted)
    assert kind == "pipeline"
    np.testing.assert_array_equal(full(texts), expected)
    served, served_kind = channel_scorer(fitted, "sms")  # what the API and batch scoring use today
    assert served_kind == "pipeline"
    np.testing.assert_array_equal(served(texts), expected)
    lean, lean_kind = streaming.compile_streaming_scorer(fitted)
    assert lean_kind == "lean"
    np.testing.assert_array_equal(lean(texts), expected)
    np.testing.assert_array_equal(np.concatenate([lean([text]) for text in texts]), expected)


def test_lean_scorer_refuses_other_pipelines(fitted) -> None:
    with pytest.raises(ValueError, match="not a streaming model"):
        streaming.streaming_lean_scorer(fitted.named_steps["features"])


def test_pickled_model_scores_the_same(fitted) -> None:
    loaded = pickle.loads(pickle.dumps(fitted))
    tfidf = loaded.named_steps["features"][-1]
    np.testing.assert_array_equal(tfidf.weights_, fitted.named_steps["features"][-1].weights_)
    np.testing.assert_array_equal(
        spam_probability(loaded, HELD_OUT_TEXTS + EDGE_TEXTS), spam_probability(fitted, HELD_OUT_TEXTS + EDGE_TEXTS)
    )


def test_model_size_does_not_grow_with_the_vocabulary(fitted) -> None:
    # Four times the messages, each with words of its own: a vocabulary-based model grows with them.
    rng = np.random.default_rng(3)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=8)) for _ in range(4 * len(TEXTS))]
    texts = [f"{text} {word}" for text, word in zip(TEXTS * 4, words, strict=True)]
    bigger = build().fit(texts, LABELS * 4)
    size, bigger_size = len(pickle.dumps(fitted)), len(pickle.dumps(bigger))
    assert abs(bigger_size - size) < 256, (size, bigger_size)
    tfidf = fitted.named_steps["features"][-1]
    assert tfidf.document_frequency_.shape == (2 * SMALL.n_features,)
    assert not any(isinstance(value, dict) for value in vars(tfidf).values())


# -- e-mail -----------------------------------------------------------------------------------------------


def test_email_streaming_model_scores_raw_messages_and_falls_back_exactly() -> None:
    mail = make_corpus(90, 40, seed=5)
    held = make_corpus(30, 15, seed=6)
    model = streaming.build_streaming_model(EmailFeaturizeParams(), SMALL, 0.5, 42)
    chunks = chunks_of([raw for _, raw in mail], [label for label, _ in mail], SMALL.chunk_rows)
    streaming.fit_streaming(model, chunks, ["ham", "spam"])
    assert is_email_model(model)
    raws = [raw for _, raw in held]
    truth = [label for label, _ in held]
    predicted = list(model.predict(raws))
    assert sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth) > 0.9
    expected = spam_probability(model, raws)
    scorer, kind = compile_email_scorer(model)
    assert kind == "pipeline"
    np.testing.assert_array_equal(scorer(raws), expected)
    tfidf = model.named_steps["features"][-1]
    assert len(tfidf.min_df) == len(EmailFeaturizeParams().blocks)


# -- reading a split --------------------------------------------------------------------------------------


def test_split_chunks_read_a_processed_sms_split_in_order(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(corpus.to_jsonl(corpus.Message(label, text) for label, text in MESSAGES), encoding="utf-8")
    chunks = list(streaming.split_chunks("sms", path, 33))
    assert [len(inputs) for inputs, _ in chunks] == [33] * 6 + [2]
    inputs, labels = read_split("sms", path)
    assert [text for chunk, _ in chunks for text in chunk] == inputs
    assert [label for _, chunk in chunks for label in chunk] == labels


def test_split_chunks_read_a_processed_email_split(tmp_path: Path) -> None:
    mail = make_corpus(5, 3, seed=1)
    path = tmp_path / "train.jsonl"
    path.write_text(
        mail_dataset.to_jsonl(mail_dataset.MailMessage(label, raw, f"m{i}") for i, (label, raw) in enumerate(mail))
    )
    chunks = list(streaming.split_chunks("email", path, 3))
    assert [raw for inputs, _ in chunks for raw in inputs] == [raw for _, raw in mail]
    assert [label for _, labels in chunks for label in labels] == [label for label, _ in mail]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"label": "spam"}', "malformed record"),
        ("not json", "malformed record"),
        ('{"label": "maybe", "text": "hi"}', "unknown label 'maybe'"),
    ],
)
def test_a_malformed_split_line_is_named(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(corpus.to_jsonl([corpus.Message("ham", "a"), corpus.Message("spam", "b")]) + line + "\n")
    with pytest.raises(DataError, match=f"train.jsonl:3: {reason}"):
        list(streaming.split_chunks("sms", path, 10))
    with pytest.raises(DataError, match="split not found"):
        list(streaming.split_chunks("sms", tmp_path / "missing.jsonl", 10))


def test_training_from_a_split_on_disk_equals_the_in_memory_fit(tmp_path: Path, fitted) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(corpus.to_jsonl(corpus.Message(label, text) for label, text in MESSAGES), encoding="utf-8")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    model = streaming.train_streaming_from_split("sms", path, build(), scratch_dir=scratch)
    expected = spam_probability(fitted, HELD_OUT_TEXTS)
    np.testing.assert_array_equal(spam_probability(model, HELD_OUT_TEXTS), expected)
    assert list(scratch.iterdir()) == []  # the stored counts are gone


@pytest.mark.slow  # starts two worker processes (spawned: each imports the model's libraries)
def test_hashing_in_worker_processes_trains_the_same_model(tmp_path: Path, fitted) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(corpus.to_jsonl(corpus.Message(label, text) for label, text in MESSAGES), encoding="utf-8")
    pooled = streaming.train_streaming_from_split("sms", path, build(), workers=2, scratch_dir=tmp_path)
    np.testing.assert_array_equal(spam_probability(pooled, HELD_OUT_TEXTS), spam_probability(fitted, HELD_OUT_TEXTS))


def test_disk_chunk_store_gives_back_what_it_stored(tmp_path: Path) -> None:
    counts = streaming.CharNgramHasher((2, 3), 2**10).transform(TEXTS[:25])
    store = streaming.DiskChunkStore(tmp_path)
    store.append(counts, np.array(LABELS[:25]))
    store.append(counts[:3], np.array(LABELS[:3]))
    assert len(store) == 2
    read, labels = store[0]
    np.testing.assert_array_equal(read.toarray(), counts.toarray())
    assert labels.tolist() == LABELS[:25]
    assert store[1][0].shape == (3, 2**10)
    with pytest.raises(IndexError):
        store[2]
