"""The lean scorer gives the pipeline's own probabilities, bit for bit, singly and in batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from spamfilter.config import FeaturizeParams, Params, TrainParams
from spamfilter.modeling.pipeline import assemble, build_classifier, build_featurizer, spam_probability
from spamfilter.modeling.scoring import compile_scorer, lean_scorer
from tests.api.conftest import train_model
from tests.conftest import make_messages

TEXTS = [text for _, text in make_messages(n_ham=120, n_spam=60, seed=3)] + [
    "",
    "   ",
    "£££ $$$ €€€ 0800 123 4567 www.example.com me@example.org",
    "Ünïcödé тест 😀",
    "x" * 3000,
]


@pytest.mark.parametrize("train", [None, TrainParams(model="mnb"), TrainParams(model="logreg")], ids=str)
def test_lean_scores_equal_the_pipeline(train: TrainParams | None) -> None:
    model = train_model(train)
    expected = spam_probability(model, TEXTS)
    lean = lean_scorer(model)
    np.testing.assert_array_equal(lean(TEXTS), expected)
    singles = np.concatenate([lean([text]) for text in TEXTS])
    np.testing.assert_array_equal(singles, expected)
    score, kind = compile_scorer(model)
    assert kind == "lean"
    np.testing.assert_array_equal(score(TEXTS[:7]), expected[:7])


def test_word_only_features_score_lean_too() -> None:
    params = Params(featurize=FeaturizeParams(char_ngrams=False), train=TrainParams(model="complement_nb"))
    rows = make_messages()
    featurizer = build_featurizer(params.featurize)
    features = featurizer.fit_transform([text for _, text in rows])
    model = assemble(featurizer, build_classifier(params.train).fit(features, [label for label, _ in rows]))
    np.testing.assert_array_equal(lean_scorer(model)(TEXTS), spam_probability(model, TEXTS))


def test_unknown_pipeline_shape_falls_back_to_the_model(default_model: Any) -> None:
    class Wrapped:  # not a Pipeline: only predict_proba and classes_
        classes_ = default_model.classes_

        def predict_proba(self, texts: Any) -> Any:
            return default_model.predict_proba(texts)

    with pytest.raises(ValueError, match="pipeline"):
        lean_scorer(Wrapped())
    score, kind = compile_scorer(Wrapped())
    assert kind == "pipeline"
    np.testing.assert_array_equal(score(TEXTS), spam_probability(default_model, TEXTS))
