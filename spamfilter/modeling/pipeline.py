"""Building the featurizer, the classifier and the one pipeline from raw text to spam probability."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.naive_bayes import ComplementNB, MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from spamfilter.config import FeaturizeParams, TrainParams
from spamfilter.labels import HAM, SPAM
from spamfilter.modeling.text import TextNormalizer, WordAnalyzer

log = logging.getLogger(__name__)

Scorer = Callable[[Sequence[Any]], np.ndarray]


def build_featurizer(params: FeaturizeParams) -> Pipeline:
    """Raw input → normalised text → TF-IDF word n-grams (+ optional char n-grams)."""
    common: dict[str, Any] = {
        "sublinear_tf": params.sublinear_tf,
        "min_df": params.min_df,
        "max_df": params.max_df,
        "max_features": params.max_features,
        "dtype": np.float32,
    }
    branches: list[tuple[str, TfidfVectorizer]] = [
        (
            "word",
            TfidfVectorizer(
                analyzer=WordAnalyzer(params.stemmer, params.stop_words, params.word_ngram_range),
                lowercase=False,
                **common,
            ),
        )
    ]
    if params.char_ngrams:
        branches.append(
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=tuple(params.char_ngram_range), lowercase=False, **common
                ),
            )
        )
    return Pipeline([("normalize", TextNormalizer()), ("tfidf", FeatureUnion(branches))])


def build_classifier(params: TrainParams) -> ClassifierMixin:
    """The estimator named by `train.model`, wrapped to yield probabilities and apply `train.threshold`."""
    name = params.model
    estimator: Any
    if name == "mnb":
        estimator = MultinomialNB(alpha=params.mnb.alpha)
    elif name == "complement_nb":
        estimator = ComplementNB(alpha=params.complement_nb.alpha)
    elif name == "logreg":
        estimator = LogisticRegression(
            C=params.logreg.C,
            class_weight=params.logreg.class_weight,
            max_iter=params.logreg.max_iter,
            random_state=params.seed,
        )
    elif name == "linear_svm":
        svm = params.linear_svm
        estimator = CalibratedClassifierCV(
            LinearSVC(C=svm.C, class_weight=svm.class_weight, random_state=params.seed),
            method=svm.calibration,
            cv=svm.calibration_folds,
        )
    else:  # pragma: no cover - Literal type already restricts this
        raise ValueError(f"unknown model {name!r}")
    return FixedThresholdClassifier(
        estimator, threshold=params.threshold, pos_label=SPAM, response_method="predict_proba"
    )


def assemble(featurizer: Pipeline, classifier: ClassifierMixin) -> Pipeline:
    """One pipeline from raw text to label and probability: what evaluate, MLflow and the API load."""
    return Pipeline([("features", featurizer), ("classifier", classifier)])


def spam_probability(model: Any, texts: Any) -> np.ndarray:
    """P(spam) for each input row, whatever the order of the model's classes."""
    proba = model.predict_proba(texts)
    column = list(model.classes_).index(SPAM)
    return np.asarray(proba[:, column], dtype=float)


def checked_scorer(model: Any, build_lean: Callable[[], Scorer], probes: Sequence[Any]) -> tuple[Scorer, str]:
    """The fastest scorer that reproduces the model's probabilities exactly, and its name: the lean scorer
    `build_lean` makes ("lean") when it equals `predict_proba` bit for bit on the probes, one at a time and
    all together; otherwise the model's own call ("pipeline"). One rule for every model family's lean path."""

    def full(inputs: Sequence[Any]) -> np.ndarray:
        return spam_probability(model, list(inputs))

    try:
        lean = build_lean()
        expected = full(probes)
        for size in (1, len(probes)):
            got = np.concatenate([lean(probes[i : i + size]) for i in range(0, len(probes), size)])
            if not np.array_equal(got, expected):
                raise ValueError(f"lean scores differ from the pipeline's (batches of {size})")
    except Exception as exc:  # any surprise in a lean path means: use the model's own call
        log.warning("scoring through the full pipeline: %s", exc)
        return full, "pipeline"
    return lean, "lean"


def predict_labels(probabilities: Sequence[float] | np.ndarray, threshold: float) -> list[str]:
    """The label for each probability under the model's threshold."""
    return [SPAM if p >= threshold else HAM for p in probabilities]


def model_threshold(model: Any) -> float:
    """The decision threshold built into a pipeline made by `assemble`."""
    classifier = model.named_steps["classifier"] if hasattr(model, "named_steps") else model
    return float(getattr(classifier, "threshold", 0.5))
