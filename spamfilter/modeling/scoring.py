"""Scoring texts with a loaded pipeline: the model's own steps, without per-call overhead.

Scoring one message through `Pipeline.predict_proba` spends most of its time in scikit-learn's
input validation (repeated once per step, per branch and per calibration fold), not in the
arithmetic. `compile_scorer` walks the fitted pipeline once and returns a function that runs
the same steps (the pipeline's own TextNormalizer, vectorizers, idf weights, linear models and
calibrators) with the same numpy and scipy operations in the same order, skipping only the
validation: the probabilities are bit-for-bit the model's. Pipelines of another shape fall
back to the model's `predict_proba` (`spamfilter.model.spam_probability`), and so does any
pipeline whose lean scores do not equal the full path on the probe texts at load time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l1, inplace_csr_row_normalize_l2

from spamfilter.labels import SPAM
from spamfilter.modeling.pipeline import checked_scorer
from spamfilter.modeling.text import TextNormalizer

log = logging.getLogger(__name__)

Scorer = Callable[[Sequence[str]], np.ndarray]
Featurize = Callable[[list[str]], Any]

# Probe texts for the load-time equality check: spam, ham, placeholders, empty after normalising.
PROBE_TEXTS = (
    "WINNER!! You have won a £1000 prize. Call 09061701461 now to claim, T&Cs apply",
    "Are we still meeting for lunch at 1? I'll be at the station",
    "FREE entry to win an iPod! Text WIN to 80086 now www.win.com £1.50p/msg",
    "ok",
    "!!!",
    "Ünïcödé тест 😀 email me at someone@example.com",
)


class _NotLeanError(Exception):
    """The pipeline has a step this module has no lean equivalent for."""


def _tfidf_branch(vectorizer: TfidfVectorizer) -> Featurize:
    # TfidfVectorizer.transform = CountVectorizer counts → TfidfTransformer.transform, minus validation.
    if vectorizer.binary or not hasattr(vectorizer, "vocabulary_"):
        raise _NotLeanError("binary or unfitted vectorizer")
    tfidf = vectorizer._tfidf
    sublinear = tfidf.sublinear_tf
    idf = tfidf.idf_ if tfidf.use_idf else None
    norm = tfidf.norm
    if norm not in (None, "l1", "l2"):
        raise _NotLeanError(f"norm {norm!r}")

    def featurize(texts: list[str]) -> Any:
        _, counts = vectorizer._count_vocab(texts, fixed_vocab=True)
        if sublinear:
            np.log(counts.data, counts.data)
            counts.data += 1.0
        if idf is not None:
            counts.data *= idf[counts.indices]
        if norm == "l2":
            inplace_csr_row_normalize_l2(counts)
        elif norm == "l1":
            inplace_csr_row_normalize_l1(counts)
        return counts

    return featurize


def _featurizer(features: Any) -> Featurize:
    if isinstance(features, TfidfVectorizer):
        return _tfidf_branch(features)
    if isinstance(features, FeatureUnion):
        if features.transformer_weights or getattr(features, "verbose_feature_names_out", True) is None:
            raise _NotLeanError("weighted feature union")
        branches = [_featurizer(step) for _, step in features.transformer_list if step not in ("drop", None)]

        def union(texts: list[str]) -> Any:
            return sp.hstack([branch(texts) for branch in branches]).tocsr()

        return union
    if isinstance(features, Pipeline):
        steps = [step for _, step in features.steps if step not in ("passthrough", None)]
        if not steps:
            raise _NotLeanError("empty pipeline")
        head: Callable[[list[str]], list[str]] | None = None
        if isinstance(steps[0], TextNormalizer):
            normalizer = steps[0]
            head = normalizer.transform
            steps = steps[1:]
        if len(steps) != 1:
            raise _NotLeanError("feature pipeline of unexpected shape")
        tail = _featurizer(steps[0])
        if head is None:
            return tail
        normalize = head
        return lambda texts: tail(normalize(texts))
    raise _NotLeanError(f"feature step {type(features).__name__}")


def _calibrated_linear(calibrated: CalibratedClassifierCV, spam_column: int) -> Callable[[Any], np.ndarray]:
    # CalibratedClassifierCV.predict_proba for a binary linear model with sigmoid calibration:
    # the mean over folds of expit(-(a · (X·wᵀ + b) + c)), summed in fold order as scikit-learn does.
    if calibrated.method != "sigmoid" or len(calibrated.classes_) != 2 or spam_column != 1:
        raise _NotLeanError("calibration other than binary sigmoid")
    folds = []
    for fold in calibrated.calibrated_classifiers_:
        estimator = fold.estimator
        coef = getattr(estimator, "coef_", None)
        if coef is None or coef.ndim != 2 or coef.shape[0] != 1 or len(fold.calibrators) != 1:
            raise _NotLeanError("calibrated estimator is not a binary linear model")
        calibrator = fold.calibrators[0]
        folds.append((coef.T, estimator.intercept_, calibrator.a_, calibrator.b_))
    count = len(folds)

    def proba(features: Any) -> np.ndarray:
        total = np.zeros(features.shape[0])
        for coef_t, intercept, a, b in folds:
            scores = np.asarray(features @ coef_t) + intercept
            fold_proba = expit(-(a * scores.reshape(-1) + b))
            fold_proba[(fold_proba > 1.0) & (fold_proba <= 1.0 + 1e-5)] = 1.0
            total += fold_proba
        total /= count
        return total

    return proba


def _classifier(classifier: Any, spam_column: int) -> Callable[[Any], np.ndarray]:
    inner = classifier.estimator_ if isinstance(classifier, FixedThresholdClassifier) else classifier
    if isinstance(inner, CalibratedClassifierCV):
        try:
            return _calibrated_linear(inner, spam_column)
        except _NotLeanError as why:
            log.debug("generic classifier path: %s", why)
    # Still skips the pipeline and feature validation; the classifier validates its own input.
    return lambda features: np.asarray(inner.predict_proba(features)[:, spam_column], dtype=float)


def lean_scorer(model: Any) -> Scorer:
    """A scorer running the fitted pipeline's own steps without validation; raises `ValueError`
    when the pipeline is of a shape it does not know."""
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise ValueError("not a two-step (features, classifier) pipeline")
    (_, features), (_, classifier) = model.steps
    spam_column = list(model.classes_).index(SPAM)
    try:
        featurize = _featurizer(features)
    except _NotLeanError as why:
        raise ValueError(str(why)) from None
    classify = _classifier(classifier, spam_column)

    def score(texts: Sequence[str]) -> np.ndarray:
        return classify(featurize(list(texts)))

    return score


def compile_scorer(model: Any, probes: Sequence[str] = PROBE_TEXTS) -> tuple[Scorer, str]:
    """The fastest scorer that reproduces the model's probabilities exactly, and its name."""
    return checked_scorer(model, lambda: lean_scorer(model), probes)
