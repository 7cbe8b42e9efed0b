"""The out-of-core model (`train.model: streaming_sgd`): for training corpora larger than memory.

    features    Pipeline: read → hash → tfidf
      read      SMS: TextNormalizer (the SMS model's normalised text); e-mail: ParseMessages, then the
                e-mail model's own field extractors (RecordField: subject, body head and tail, sender,
                links, structure)
      hash      per block, `n_features` buckets of raw counts, no vocabulary whatever the corpus: word
                n-grams (WordAnalyzer, as the SMS model) and token blocks through a HashingVectorizer;
                char_wb n-grams through CharNgramHasher (scikit-learn's char_wb n-grams, hashed a batch at
                a time with numpy); e-mail: the blocks of `build_email_fields`, hashed
      tfidf     HashedTfidf: per bucket, how many training documents contain it (one integer array of fixed
                size, counted chunk by chunk); a bucket fewer than `min_df` training documents reached is
                dropped as TF-IDF drops an unknown term, then 1 + log(tf), idf and L2 per block
    classifier  StreamingLinearClassifier: an SGDClassifier fitted chunk by chunk (`partial_fit`) over
                epochs in a seeded order, with LinearSVC's objective (`C`); P(spam) from a Platt sigmoid
                fitted to held-out rows' decision values (`calibration_share`), or from the loss's own
                `predict_proba` (log_loss, modified_huber) when nothing is held out; the threshold.

Why the bucket counts (bench/scale_training.py, SMS corpus, 5-fold CV): hashed counts without document
frequencies score an unseen n-gram like a known one, diluting the L2 norm of messages full of new words
(spam, often), and lose about 0.01 F1 against the TF-IDF model; with them, a LinearSVC on the hashed
features matches the TF-IDF model's F1 (0.972), and this model reaches 0.966.

`fit_streaming` trains from an iterable of (inputs, labels) chunks read once: each chunk is hashed (in
worker processes with `pool_counter`), counted into the HashedTfidf, and its counts kept in a `ChunkStore`
(memory, or a file per chunk on disk: `DiskChunkStore`); the epochs read them back in a shuffled order.
`train_streaming_from_split` does that from a processed split (`train.jsonl`) read line by line: memory
holds a few chunks, the bucket arrays and the coefficients, never the corpus. Its worker processes are
spawned: a script calling it with workers > 1 must guard its main module (`if __name__ == "__main__"`).

The same pipeline also trains in memory (`Pipeline.fit`, as the other models), with the same result as
streaming chunks of `chunk_rows` rows. Scoring: `spamfilter.modeling.scoring.compile_scorer` (and the
e-mail one) have no lean path for hashed features and fall back to the pipeline's own `predict_proba`
(exact); `compile_streaming_scorer` is the SMS lean path, checked against it bit for bit at load.

Every class here is picklable and lives at this import path: fitted pipelines name them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.extmath import safe_sparse_dot

from spamfilter.config import Channel, EmailFeaturizeParams, FeaturizeParams, MailLimitsParams
from spamfilter.errors import ConfigError, DataError
from spamfilter.labels import LABELS, SPAM
from spamfilter.modeling.pipeline import assemble, checked_scorer
from spamfilter.modeling.scoring import PROBE_TEXTS
from spamfilter.modeling.text import TextNormalizer, WordAnalyzer, normalize

# -- params --------------------------------------------------------------------------------------------------
# Here until spamfilter.config holds them (params.yaml's schema lives there): then imported from it.

StreamingLoss = Literal["hinge", "log_loss", "modified_huber"]


class StreamingSgdParams(BaseModel):
    """The out-of-core model's knobs (`train.streaming_sgd` in params.yaml); the n-grams are the channel's
    `featurize` params. Defaults from bench/scale_training.py (5-fold CV on the SMS corpus, 1M messages)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_features: int = Field(2**20, ge=2**4, le=2**26)  # hash buckets per feature block
    loss: StreamingLoss = "hinge"
    C: float = Field(1.0, gt=0.0)  # inverse L2 strength, as LinearSVC's: SGD's alpha = 1 / (C × rows trained on)
    epochs: int = Field(10, ge=1)  # passes over the training rows, at most ...
    min_examples: int = Field(30_000, ge=1)  # ... stopping after the pass that has trained on this many rows
    chunk_rows: int = Field(10_000, ge=1)  # rows per chunk: what memory holds at a time
    calibration_share: float = Field(0.2, ge=0.0, lt=1.0)  # rows held out for the Platt sigmoid (0: none)

    @model_validator(mode="after")
    def _probabilities_defined(self) -> StreamingSgdParams:
        if self.loss == "hinge" and self.calibration_share == 0.0:
            raise ValueError("loss hinge has no probabilities of its own: set calibration_share above 0")
        return self


# -- features ------------------------------------------------------------------------------------------------


def _hasher(analyzer: Any, n_features: int) -> HashingVectorizer:
    # Raw counts (float32, exact for counts), all positive: HashedTfidf weighs and normalises them.
    return HashingVectorizer(
        analyzer=analyzer,
        lowercase=False,
        n_features=n_features,
        alternate_sign=False,
        norm=None,
        dtype=np.float32,
    )


class HashedTfidf(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn is untyped
    """TF-IDF weights for hashed counts, learnt chunk by chunk, with no vocabulary.

    The input is `len(min_df)` blocks of `block_width` columns each (a FeatureUnion of HashingVectorizers).
    `partial_fit` adds, per column, the number of documents where it is non-zero. `transform` drops the
    columns fewer than `min_df` (of its block) training documents reached — what TfidfVectorizer's
    vocabulary does to unknown terms, per bucket — then applies TfidfTransformer's steps: 1 + log(tf)
    (`sublinear_tf`), the smooth idf (log((1 + n) / (1 + df)) + 1) and an L2 norm per block and row.
    """

    def __init__(self, block_width: int = 2**20, min_df: tuple[int, ...] = (1,), sublinear_tf: bool = True):
        self.block_width = block_width
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf

    def fit(self, X: Any, y: Any = None) -> HashedTfidf:  # noqa: N803 (scikit-learn's API)
        for attribute in ("document_frequency_", "n_documents_", "weights_"):
            if hasattr(self, attribute):
                delattr(self, attribute)
        return self.partial_fit(X)

    def partial_fit(self, X: Any, y: Any = None) -> HashedTfidf:  # noqa: N803
        self.add_counts(X)
        self.update_weights()
        return self

    def add_counts(self, X: Any) -> None:  # noqa: N803
        """`partial_fit` without recomputing the weights (`update_weights`): for many chunks in a row."""
        counts = sp.csr_array(X)
        width = self.block_width * len(self.min_df)
        if counts.shape[1] != width:
            raise ValueError(
                f"expected {width} columns ({len(self.min_df)} blocks of {self.block_width}), got {counts.shape[1]}"
            )
        counts.sum_duplicates()
        if not hasattr(self, "document_frequency_"):
            self.document_frequency_ = np.zeros(width, dtype=np.int64)
            self.n_documents_ = 0
        present = counts.indices[counts.data != 0]
        self.document_frequency_ += np.bincount(present, minlength=width)
        self.n_documents_ += counts.shape[0]

    def update_weights(self) -> None:
        """The weights `transform` applies, from the counts so far."""
        self.weights_ = self._weights()

    def _weights(self) -> np.ndarray:
        """Per column: its idf, or 0 for a column to drop."""
        frequency = self.document_frequency_
        idf = np.log((1.0 + self.n_documents_) / (1.0 + frequency)) + 1.0
        floor = np.repeat(np.asarray(self.min_df, dtype=np.int64), self.block_width)
        return np.where(frequency >= np.maximum(floor, 1), idf, 0.0)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "document_frequency_")

    def transform(self, X: Any) -> sp.csr_array:  # noqa: N803
        if not hasattr(self, "weights_"):
            raise ValueError("HashedTfidf is not fitted: call fit or partial_fit first")
        features = sp.csr_array(X, dtype=np.float64, copy=True)
        features.sum_duplicates()
        if self.sublinear_tf:
            np.log(features.data, out=features.data)
            features.data += 1.0
        features.data *= self.weights_[features.indices]
        features.eliminate_zeros()
        rows = np.repeat(np.arange(features.shape[0]), np.diff(features.indptr))
        segment = rows * len(self.min_df) + features.indices // self.block_width
        squares = np.bincount(segment, weights=features.data**2, minlength=features.shape[0] * len(self.min_df))
        features.data /= np.sqrt(squares)[segment]
        return features

    def __getstate__(self) -> dict[str, Any]:
        # The weights follow from the counts: pickles (registry artifacts) carry one array, not two.
        state = dict(self.__dict__)
        state.pop("weights_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if hasattr(self, "document_frequency_"):
            self.update_weights()


# The n-gram hash: a polynomial over the code points (mod 2^64), plus the length times a constant, through
# MurmurHash3's 64-bit finaliser; the bucket is that modulo n_features. `char_ngram_bucket` is the reference.
_BASE = 0x100000001B3
_LENGTH = 0x9E3779B97F4A7C15
_MIX1 = 0xFF51AFD7ED558CCD
_MIX2 = 0xC4CEB9FE1A85EC53
_WORD_64 = (1 << 64) - 1
_SPACE = ord(" ")


def char_ngram_bucket(gram: str, n_features: int) -> int:
    """The bucket CharNgramHasher counts the n-gram `gram` in, one string at a time (for tests and readers)."""
    value = 0
    for char in gram:
        value = (value * _BASE + ord(char)) & _WORD_64
    value = (value + len(gram) * _LENGTH) & _WORD_64
    value ^= value >> 33
    value = (value * _MIX1) & _WORD_64
    value ^= value >> 33
    value = (value * _MIX2) & _WORD_64
    value ^= value >> 33
    return value % n_features


def _mixed(values: np.ndarray) -> np.ndarray:
    shift = np.uint64(33)
    values = values ^ (values >> shift)
    values = values * np.uint64(_MIX1)
    values = values ^ (values >> shift)
    values = values * np.uint64(_MIX2)
    return np.asarray(values ^ (values >> shift))


class CharNgramHasher(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn is untyped
    """Texts → counts of their character n-grams inside word boundaries, hashed into `n_features` columns.

    The n-grams are scikit-learn's `analyzer="char_wb"`, count for count: each whitespace-separated word
    padded with one space on either side; the n-grams of each length in `ngram_range` that fit in the
    padded word; a padded word shorter than the smallest length counts once as itself. Each n-gram counts
    in column `char_ngram_bucket(gram, n_features)`. A HashingVectorizer does the same one Python string
    per n-gram (about 350 of them per SMS); this hashes a whole batch's code points at once with numpy,
    about five times faster. Stateless: `fit` learns nothing.
    """

    def __init__(self, ngram_range: tuple[int, int] = (1, 5), n_features: int = 2**20, lowercase: bool = False):
        self.ngram_range = ngram_range
        self.n_features = n_features
        self.lowercase = lowercase

    def fit(self, X: Any, y: Any = None) -> CharNgramHasher:  # noqa: N803 (scikit-learn's API)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless

    def transform(self, X: Any) -> sp.csr_array:  # noqa: N803
        low, high = self.ngram_range
        # Each text as its padded words back to back (" w1  w2 "): one code point array for the batch, in
        # which a padded word starts at every space that follows a space (or the start).
        padded = []
        for text in X:
            words = (text.lower() if self.lowercase else text).split()
            padded.append(" " + "  ".join(words) + " " if words else "")
        lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
        codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        total = len(codes)
        if not total:
            return sp.csr_array((len(padded), self.n_features), dtype=np.float32)
        document = np.repeat(np.arange(len(padded)), lengths)
        space = codes == _SPACE
        starts = np.flatnonzero(space & np.concatenate(([True], space[:-1])))
        ends = np.append(starts[1:], total)
        word_end = np.repeat(ends, ends - starts)  # per position: where its padded word ends
        rows: list[np.ndarray] = []
        columns: list[np.ndarray] = []
        hashes = np.zeros(total, dtype=np.uint64)
        buckets = np.uint64(self.n_features)
        with np.errstate(over="ignore"):  # arithmetic modulo 2^64 is the point
            for n in range(1, min(high, total) + 1):
                # hashes[s]: the polynomial of codes[s:s + n], for every s with s + n <= total
                hashes = hashes[: total - n + 1] * np.uint64(_BASE) + codes[n - 1 :]
                if n >= low:
                    chosen = np.flatnonzero(np.arange(total - n + 1) + n <= word_end[: total - n + 1])
                else:  # padded words of exactly this length, shorter than the smallest n: themselves, once
                    chosen = starts[(ends - starts) == n]
                rows.append(document[chosen])
                columns.append(_mixed(hashes[chosen] + np.uint64(n) * np.uint64(_LENGTH)) % buckets)
        # One sort of (document, column) keys gives the CSR matrix directly: rows in order, columns ascending,
        # each distinct key once with its count (a quarter faster than scipy's COO → CSR and sort).
        keys = np.sort(np.concatenate(rows) * self.n_features + np.concatenate(columns).astype(np.int64))
        first = np.empty(len(keys), dtype=bool)
        first[:1] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        distinct = keys[starts]
        indptr = np.searchsorted(distinct, np.arange(len(padded) + 1, dtype=np.int64) * self.n_features)
        return sp.csr_array(
            (
                np.diff(starts, append=len(keys)).astype(np.float32),
                (distinct % self.n_features).astype(np.int32),
                indptr,
            ),
            shape=(len(padded), self.n_features),
        )


def _sms_featurizer(params: FeaturizeParams, n_features: int) -> Pipeline:
    if params.max_features is not None or params.max_df < 1.0:
        raise ConfigError(
            "featurize.max_features and featurize.max_df do not apply to the streaming_sgd model: leave them at null and 1.0"
        )
    branches: list[tuple[str, Any]] = [
        ("word", _hasher(WordAnalyzer(params.stemmer, params.stop_words, params.word_ngram_range), n_features))
    ]
    if params.char_ngrams:
        branches.append(("char", CharNgramHasher(params.char_ngram_range, n_features)))
    return Pipeline(
        [
            ("normalize", TextNormalizer()),
            ("hash", FeatureUnion(branches)),
            ("tfidf", HashedTfidf(n_features, (params.min_df,) * len(branches), params.sublinear_tf)),
        ]
    )


def _email_featurizer(params: EmailFeaturizeParams, n_features: int, limits: MailLimitsParams | None) -> Pipeline:
    # The blocks of email.build_email_fields, hashed; no numeric block (the linear model never reads it).
    from spamfilter.modeling import email

    words = WordAnalyzer(params.stemmer, False, params.word_ngram_range)
    tokens = partial(_hasher, email.tokens_as_is, n_features)
    blocks: dict[str, tuple[Any, Any, int]] = {  # block: (field extractor, hasher, min_df)
        "subject": (email.RecordField("subject"), _hasher(words, n_features), 1),
        "subject_chars": (
            email.RecordField("subject", normalized=False),
            CharNgramHasher(params.subject_char_ngram_range, n_features, lowercase=True),
            params.min_df,
        ),
        "body": (
            email.RecordField("body", params.body_head_chars, params.body_tail_chars),
            _hasher(words, n_features),
            params.min_df,
        ),
        "body_chars": (
            email.RecordField("body", params.body_chars_head, params.body_chars_tail),
            CharNgramHasher(params.body_char_ngram_range, n_features),
            params.min_df,
        ),
        "sender": (email.RecordField("sender"), tokens(), 1),
        "links": (email.RecordField("links"), tokens(), 1),
        "structure": (email.RecordField("structure"), tokens(), 1),
    }
    chosen: list[tuple[str, Any, Any, int]] = [(name, *blocks[name]) for name in params.blocks]
    if params.extra_header_fields:
        chosen.append(("headers", email.RecordField("headers", header_fields=params.extra_header_fields), tokens(), 1))
    branches = [(name, Pipeline([("field", extract), ("hash", hasher)])) for name, extract, hasher, _ in chosen]
    return Pipeline(
        [
            ("parse", email.ParseMessages(tuple(params.header_fields), email.mail_limits(limits))),
            ("hash", FeatureUnion(branches)),
            ("tfidf", HashedTfidf(n_features, tuple(min_df for *_, min_df in chosen), params.sublinear_tf)),
        ]
    )


def build_streaming_featurizer(
    featurize: FeaturizeParams | EmailFeaturizeParams, n_features: int, limits: MailLimitsParams | None = None
) -> Pipeline:
    """Raw input (SMS text, or a raw e-mail within `limits`) → hashed TF-IDF blocks of `n_features` columns."""
    if isinstance(featurize, EmailFeaturizeParams):
        return _email_featurizer(featurize, n_features, limits)
    return _sms_featurizer(featurize, n_features)


# -- classifier ----------------------------------------------------------------------------------------------

FeatureChunk = tuple[Any, np.ndarray]  # (feature matrix, labels)


class StreamingLinearClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn is untyped
    """A linear model trained by SGD over chunks, with P(spam) and the decision threshold.

    Rows are set aside chunk by chunk (`split_chunk`): a share `calibration_share` of each chunk's rows,
    drawn from (`seed`, chunk index), is held out and never trained on. `fit_chunks` makes `epochs` passes at
    most over the training chunks — as few as bring the rows trained on to `min_examples`, at least one —
    each pass in an order drawn from `seed`, one `SGDClassifier.partial_fit` per chunk (which shuffles the
    chunk's rows, also from `seed`); then a Platt sigmoid fitted to the held-out rows' decision values
    gives P(spam). With nothing held out, P(spam) is the loss's own (`log_loss`, `modified_huber`).
    `fit` does all that in memory, over slices of `chunk_rows` rows.
    """

    def __init__(
        self,
        loss: StreamingLoss = "hinge",
        C: float = 1.0,  # noqa: N803 (LinearSVC's name)
        epochs: int = 10,
        min_examples: int = 30_000,
        chunk_rows: int = 10_000,
        calibration_share: float = 0.2,
        threshold: float = 0.5,
        seed: int = 42,
    ):
        self.loss = loss
        self.C = C
        self.epochs = epochs
        self.min_examples = min_examples
        self.chunk_rows = chunk_rows
        self.calibration_share = calibration_share
        self.threshold = threshold
        self.seed = seed

    def split_chunk(self, index: int, features: Any, labels: Any) -> tuple[FeatureChunk | None, FeatureChunk | None]:
        """Chunk number `index` as (rows to train on, rows held out for calibration); None for no rows."""
        labels = np.asarray(labels)
        if self.calibration_share == 0.0:
            held = np.zeros(len(labels), dtype=bool)
        else:
            held = np.random.default_rng([self.seed, index]).random(len(labels)) < self.calibration_share
        if not held.any():
            return ((features, labels) if len(labels) else None), None
        if held.all():
            return None, (features, labels)
        return (features[~held], labels[~held]), (features[held], labels[held])

    def fit(self, X: Any, y: Any) -> StreamingLinearClassifier:  # noqa: N803 (scikit-learn's API)
        labels = np.asarray(y)
        training: list[FeatureChunk] = []
        held_out: list[FeatureChunk] = []
        for index, start in enumerate(range(0, X.shape[0], self.chunk_rows)):
            stop = start + self.chunk_rows
            train_part, held_part = self.split_chunk(index, X[start:stop], labels[start:stop])
            training.extend([train_part] if train_part is not None else [])
            held_out.extend([held_part] if held_part is not None else [])
        rows = sum(len(chunk_labels) for _, chunk_labels in training)
        return self.fit_chunks(training, held_out, sorted(set(labels.tolist())), rows)

    def fit_chunks(
        self,
        training: Sequence[FeatureChunk],
        held_out: Sequence[FeatureChunk],
        classes: Sequence[str],
        train_rows: int,
    ) -> StreamingLinearClassifier:
        """Train on the `training` chunks (`train_rows` rows in all; each chunk read once per epoch, in a
        seeded order); calibrate on the `held_out` ones (read once), as `split_chunk` divided them."""
        if sorted(classes) != sorted(LABELS):
            raise DataError(f"the streaming model needs the classes {sorted(LABELS)}, got {sorted(classes)}")
        if self.loss == "hinge" and self.calibration_share == 0.0:
            raise ConfigError("loss hinge has no probabilities of its own: set calibration_share above 0")
        if not len(training) or train_rows <= 0:
            raise DataError("no rows to train on")
        if self.calibration_share > 0.0 and not len(held_out):
            raise DataError(
                f"no rows held out for calibration (calibration_share {self.calibration_share}): too few rows; "
                "raise calibration_share, or use loss log_loss with calibration_share 0"
            )
        # The objective is LinearSVC's (C × the sum of losses + ||w||² / 2) divided by C × rows: one C means
        # the same regularisation whatever the corpus's size, where a fixed alpha would over-regularise a big one.
        alpha = 1.0 / (self.C * train_rows)
        linear = SGDClassifier(loss=self.loss, alpha=alpha, random_state=self.seed)
        passes = min(self.epochs, max(1, math.ceil(self.min_examples / train_rows)))
        order = np.random.default_rng(self.seed)
        for _ in range(passes):
            for index in order.permutation(len(training)):
                features, labels = training[index]
                linear.partial_fit(features, labels, classes=sorted(classes))
        self.linear_ = linear
        self.classes_ = linear.classes_
        self.n_epochs_ = passes
        self.n_train_rows_ = train_rows
        self.sigmoid_: tuple[float, float] | None = None
        self.n_calibration_rows_ = 0
        if self.calibration_share > 0.0:
            from spamfilter.modeling.email import platt_sigmoid  # the e-mail model's Platt fit: scikit-learn's

            scores = []
            positive = []
            for features, labels in held_out:
                scores.append(self.linear_.decision_function(features))
                positive.append(np.asarray(labels) == self.classes_[1])
            self.sigmoid_ = platt_sigmoid(np.concatenate(scores), np.concatenate(positive))
            self.n_calibration_rows_ = sum(map(len, positive))
        return self

    def decision_function(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(self.linear_.decision_function(X), dtype=float)

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        if self.sigmoid_ is None:
            return np.asarray(self.linear_.predict_proba(X), dtype=float)
        slope, intercept = self.sigmoid_
        positive = expit(slope * self.decision_function(X) + intercept)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        positive = self.predict_proba(X)[:, 1] >= self.threshold
        return np.asarray(np.where(positive, self.classes_[1], self.classes_[0]))


def build_streaming_classifier(params: StreamingSgdParams, threshold: float, seed: int) -> StreamingLinearClassifier:
    return StreamingLinearClassifier(
        loss=params.loss,
        C=params.C,
        epochs=params.epochs,
        min_examples=params.min_examples,
        chunk_rows=params.chunk_rows,
        calibration_share=params.calibration_share,
        threshold=threshold,
        seed=seed,
    )


def build_streaming_model(
    featurize: FeaturizeParams | EmailFeaturizeParams,
    params: StreamingSgdParams,
    threshold: float,
    seed: int,
    limits: MailLimitsParams | None = None,
) -> Pipeline:
    """The unfitted pipeline ("features", "classifier") from raw input to label and P(spam), of the other
    models' shape: `Pipeline.fit` trains it in memory, `fit_streaming` from chunks."""
    return assemble(
        build_streaming_featurizer(featurize, params.n_features, limits),
        build_streaming_classifier(params, threshold, seed),
    )


# -- training from chunks ------------------------------------------------------------------------------------


class ChunkStore(Protocol):
    """Where `fit_streaming` keeps each chunk's hashed counts between epochs."""

    def append(self, counts: sp.csr_array, labels: np.ndarray) -> None: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[sp.csr_array, np.ndarray]: ...


class MemoryChunkStore:
    """Counts kept in memory: for corpora that fit (tests, cross-validation)."""

    def __init__(self) -> None:
        self._chunks: list[tuple[sp.csr_array, np.ndarray]] = []

    def append(self, counts: sp.csr_array, labels: np.ndarray) -> None:
        self._chunks.append((counts, labels))

    def __len__(self) -> int:
        return len(self._chunks)

    def __getitem__(self, index: int) -> tuple[sp.csr_array, np.ndarray]:
        return self._chunks[index]


class DiskChunkStore:
    """Counts kept on disk, one uncompressed .npz file per chunk in `directory` (the caller's, and the
    caller removes it): memory holds one chunk at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._count = 0

    def _path(self, index: int) -> Path:
        return self.directory / f"chunk-{index:07d}.npz"

    def append(self, counts: sp.csr_array, labels: np.ndarray) -> None:
        with self._path(self._count).open("wb") as handle:
            np.savez(
                handle,
                data=counts.data,
                indices=counts.indices,
                indptr=counts.indptr,
                shape=np.asarray(counts.shape),
                labels=np.asarray(labels, dtype="<U4"),
            )
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> tuple[sp.csr_array, np.ndarray]:
        if not 0 <= index < self._count:
            raise IndexError(index)
        with np.load(self._path(index)) as stored:
            shape = tuple(int(size) for size in stored["shape"])
            counts = sp.csr_array((stored["data"], stored["indices"], stored["indptr"]), shape=shape)
            return counts, stored["labels"]


class _WeightedChunks(Sequence[FeatureChunk]):
    """Stored counts as TF-IDF features, chunk by chunk, on demand."""

    def __init__(self, store: ChunkStore, tfidf: HashedTfidf):
        self._store = store
        self._tfidf = tfidf

    def __len__(self) -> int:
        return len(self._store)

    def __getitem__(self, index: Any) -> Any:
        counts, labels = self._store[int(index)]
        return self._tfidf.transform(counts), labels


Inputs = list[str] | list[bytes]
RawChunk = tuple[Inputs, Sequence[str]]  # (inputs, labels)
CountedChunk = tuple[sp.csr_array, np.ndarray]  # (hashed counts, labels)
ChunkCounter = Callable[[Iterable[RawChunk]], Iterable[CountedChunk]]


def _count_chunk(counter: Pipeline, chunk: RawChunk) -> CountedChunk:
    inputs, labels = chunk
    if len(inputs) != len(labels):
        raise DataError(f"a chunk has {len(inputs)} inputs but {len(labels)} labels")
    return sp.csr_array(counter.transform(list(inputs))), np.asarray(labels, dtype="<U4")


def counting_steps(pipeline: Pipeline) -> Pipeline:
    """The stateless head of a streaming pipeline's featurizer (read and hash): raw input → counts."""
    features = pipeline.named_steps["features"]
    counter: Pipeline = features[:-1]
    return counter


def fit_streaming(
    pipeline: Pipeline,
    chunks: Iterable[RawChunk],
    classes: Sequence[str],
    store: ChunkStore | None = None,
    held_out_store: ChunkStore | None = None,
    count_chunks: ChunkCounter | None = None,
) -> Pipeline:
    """Train a pipeline of `build_streaming_model` from `chunks` of (inputs, labels), read once.

    Each chunk is hashed into counts (by `count_chunks`, e.g. `pool_counter`'s worker processes; by default
    the pipeline's own hashing steps in this process) and counted into the HashedTfidf; the classifier's
    `split_chunk` divides its rows between `store` (to train on) and `held_out_store` (to calibrate on;
    both default to memory). The classifier then trains on the stored counts as TF-IDF features
    (`StreamingLinearClassifier.fit_chunks`). The result does not depend on who hashes, and equals
    `pipeline.fit` on all the rows when every chunk but the last has the classifier's `chunk_rows` rows.
    Returns the pipeline, fitted.
    """
    store = MemoryChunkStore() if store is None else store
    held_out_store = MemoryChunkStore() if held_out_store is None else held_out_store
    tfidf: HashedTfidf = pipeline.named_steps["features"][-1]
    classifier: StreamingLinearClassifier = pipeline.named_steps["classifier"]
    if count_chunks is None:
        count_chunks = partial(map, partial(_count_chunk, counting_steps(pipeline)))
    index = train_rows = 0
    for counts, labels in count_chunks(chunk for chunk in chunks if len(chunk[1])):
        tfidf.add_counts(counts)
        train_part, held_part = classifier.split_chunk(index, counts, labels)
        index += 1
        if train_part is not None:
            store.append(*train_part)
            train_rows += len(train_part[1])
        if held_part is not None:
            held_out_store.append(*held_part)
    if not index:
        raise DataError("no rows to train on: every chunk is empty")
    tfidf.update_weights()
    classifier.fit_chunks(_WeightedChunks(store, tfidf), _WeightedChunks(held_out_store, tfidf), classes, train_rows)
    return pipeline


# -- from a processed split ----------------------------------------------------------------------------------


def _sms_row(record: Any) -> tuple[str, str]:
    return str(record["text"]), str(record["label"])


def _email_row(record: Any) -> tuple[bytes, str]:
    return base64.b64decode(record["raw_b64"], validate=True), str(record["label"])


def split_chunks(channel: Channel, path: Path, chunk_rows: int) -> Iterator[tuple[Inputs, list[str]]]:
    """A processed split (`train.jsonl` as the ingest stage writes it: `corpus.to_jsonl` for SMS,
    `mail_dataset.to_jsonl` for e-mail) as chunks of up to `chunk_rows` (inputs, labels), read line by line.
    A malformed record raises DataError naming the file and line."""
    row = _email_row if channel == "email" else _sms_row
    inputs: list[Any] = []
    labels: list[str] = []
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: split not found (run the ingest stage first)") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value, label = row(json.loads(line))
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise DataError(f"{path}:{number}: malformed record ({exc})") from None
            if label not in LABELS:
                raise DataError(f"{path}:{number}: unknown label {label!r}")
            inputs.append(value)
            labels.append(label)
            if len(inputs) == chunk_rows:
                yield inputs, labels
                inputs, labels = [], []
    if inputs:
        yield inputs, labels


# One per worker process: the hashing head of the pipeline, set once so that each worker keeps its
# WordAnalyzer's stem cache across chunks.
_worker_counter: Pipeline | None = None


def _start_worker(counter: Pipeline) -> None:
    global _worker_counter  # noqa: PLW0603 - a process pool's per-worker state
    _worker_counter = counter


def _count_in_worker(chunk: RawChunk) -> CountedChunk:
    assert _worker_counter is not None, "worker started without its counter"
    return _count_chunk(_worker_counter, chunk)


def pool_counter(executor: Executor, ahead: int) -> ChunkCounter:
    """Hash chunks in the processes of `executor` (started by `start_counting_pool`), results in input order,
    at most `ahead` chunks in flight: the input is read no faster than it is used (`Executor.map` would
    read all of it at once)."""

    def counted(chunks: Iterable[RawChunk]) -> Iterator[CountedChunk]:
        pending: deque[Future[CountedChunk]] = deque()
        for chunk in chunks:
            pending.append(executor.submit(_count_in_worker, chunk))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    return counted


def start_counting_pool(pipeline: Pipeline, workers: int) -> ProcessPoolExecutor:
    """`workers` processes, each holding the pipeline's hashing steps (`pool_counter` sends them chunks)."""
    import multiprocessing  # only when hashing in parallel

    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(counting_steps(pipeline),),
    )


def train_streaming_from_split(
    channel: Channel,
    path: Path,
    pipeline: Pipeline,
    workers: int = 1,
    scratch_dir: Path | None = None,
) -> Pipeline:
    """Fit a pipeline of `build_streaming_model` on the processed split at `path` without loading it: read
    in chunks of the classifier's `chunk_rows` rows, hashed in `workers` processes (1: in this one; the
    epochs always run here), the counts kept in a temporary directory under `scratch_dir` (default: the
    system's) and removed afterwards. Returns the pipeline, fitted."""
    classifier: StreamingLinearClassifier = pipeline.named_steps["classifier"]
    chunks = split_chunks(channel, path, classifier.chunk_rows)
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="streaming-", dir=scratch_dir)))
        count_chunks: ChunkCounter | None = None
        if workers > 1:
            executor = stack.enter_context(start_counting_pool(pipeline, workers))
            count_chunks = pool_counter(executor, ahead=2 * workers)
        try:
            (directory / "held_out").mkdir()
            stores = DiskChunkStore(directory), DiskChunkStore(directory / "held_out")
            return fit_streaming(pipeline, chunks, sorted(LABELS), *stores, count_chunks)
        except DataError as error:
            if str(error).startswith(str(path)):
                raise
            raise DataError(f"{path}: {error}") from None


# -- lean scoring --------------------------------------------------------------------------------------------


def _lean_branch(branch: Any) -> Callable[[list[str]], Any]:
    if isinstance(branch, CharNgramHasher):
        return branch.transform  # validates nothing already
    if isinstance(branch, HashingVectorizer) and branch.norm is None and not branch.binary:
        # HashingVectorizer.transform: its analyzer into its FeatureHasher, minus the parameter checks.
        analyze, hasher = branch.build_analyzer(), branch._get_hasher()
        return lambda texts: hasher.transform(analyze(text) for text in texts)
    raise ValueError(f"a hash branch of type {type(branch).__name__}")


def streaming_lean_scorer(model: Any) -> Callable[[Sequence[str]], np.ndarray]:
    """SMS texts → P(spam) through a fitted streaming pipeline's own steps, without scikit-learn's per-call
    validation: normalise, each hash branch, HashedTfidf, the classifier's linear model and sigmoid.
    Raises ValueError for a pipeline of another shape (an e-mail one included)."""
    if not is_streaming_model(model):
        raise ValueError("not a streaming model")
    features, classifier = model.steps[0][1], model.steps[1][1]
    steps = [step for _, step in features.steps]
    if len(steps) != 3 or not isinstance(steps[0], TextNormalizer) or not isinstance(steps[1], FeatureUnion):
        raise ValueError("not an SMS streaming featurizer (normalize, hash, tfidf)")
    union, tfidf = steps[1], steps[2]
    if union.transformer_weights:
        raise ValueError("a weighted feature union")
    branches = [_lean_branch(branch) for _, branch in union.transformer_list]
    probability = _lean_probability(classifier)

    def score(texts: Sequence[str]) -> np.ndarray:
        normalized = [normalize(text) for text in texts]
        counts = sp.hstack([branch(normalized) for branch in branches], format="csr")
        return probability(tfidf.transform(counts))

    return score


def _lean_probability(classifier: StreamingLinearClassifier) -> Callable[[Any], np.ndarray]:
    # StreamingLinearClassifier.predict_proba's spam column: SGDClassifier.decision_function's product
    # (safe_sparse_dot + intercept) without its input validation, then the same sigmoid.
    column = list(classifier.classes_).index(SPAM)
    if classifier.sigmoid_ is None:
        return lambda features: np.asarray(classifier.predict_proba(features)[:, column], dtype=float)
    if column != 1:
        raise ValueError(f"classes {list(classifier.classes_)}: spam is not the positive class")
    coef_t, intercept = classifier.linear_.coef_.T, classifier.linear_.intercept_
    slope, offset = classifier.sigmoid_

    def probability(features: Any) -> np.ndarray:
        scores = safe_sparse_dot(features, coef_t, dense_output=True) + intercept
        return np.asarray(expit(slope * np.asarray(scores, dtype=float).reshape(-1) + offset), dtype=float)

    return probability


def compile_streaming_scorer(
    model: Any, probes: Sequence[str] = PROBE_TEXTS
) -> tuple[Callable[[Sequence[str]], np.ndarray], str]:
    """As `spamfilter.modeling.scoring.compile_scorer`, for SMS streaming models (`checked_scorer`'s rule):
    the lean scorer when it equals the pipeline's `predict_proba` bit for bit on the probes, else the
    pipeline itself; and the scorer's name."""
    return checked_scorer(model, lambda: streaming_lean_scorer(model), probes)


def is_streaming_model(model: Any) -> bool:
    """Whether `model` is a (features, classifier) pipeline whose classifier is a StreamingLinearClassifier."""
    return (
        isinstance(model, Pipeline)
        and len(model.steps) == 2
        and isinstance(model.steps[1][1], StreamingLinearClassifier)
    )
