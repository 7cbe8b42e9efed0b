"""Building the featurizer, the classifier and the one pipeline from raw text to spam probability."""

from __future__ import annotations

from collections.abc import Sequence
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


def predict_labels(probabilities: Sequence[float] | np.ndarray, threshold: float) -> list[str]:
    """The label for each probability under the model's threshold."""
    return [SPAM if p >= threshold else HAM for p in probabilities]


def model_threshold(model: Any) -> float:
    """The decision threshold built into a pipeline made by `assemble`."""
    classifier = model.named_steps["classifier"] if hasattr(model, "named_steps") else model
    return float(getattr(classifier, "threshold", 0.5))
