"""Each selectable model builds one pipeline from raw text to label and probability."""

from __future__ import annotations

import pandas as pd
import pytest

from spamfilter.config import FeaturizeParams, TrainParams
from spamfilter.modeling.pipeline import assemble, build_classifier, build_featurizer, model_threshold, spam_probability
from tests.conftest import make_messages

MESSAGES = make_messages(n_ham=120, n_spam=40)
TEXTS = [text for _, text in MESSAGES]
LABELS = [label for label, _ in MESSAGES]
# Held out: generated with another seed, none of them in the training texts.
HELD_OUT = [(label, text) for label, text in make_messages(n_ham=120, n_spam=40, seed=99) if text not in set(TEXTS)]


def train(featurize: FeaturizeParams, train_params: TrainParams):
    featurizer = build_featurizer(featurize)
    features = featurizer.fit_transform(TEXTS)
    return assemble(featurizer, build_classifier(train_params).fit(features, LABELS))


@pytest.mark.parametrize("model_name", ["mnb", "complement_nb", "logreg", "linear_svm"])
def test_every_model_learns_the_fixture_and_yields_probabilities(model_name: str) -> None:
    model = train(FeaturizeParams(), TrainParams(model=model_name))
    assert list(model.classes_) == ["ham", "spam"]
    texts = [text for _, text in HELD_OUT]
    truth = [label for label, _ in HELD_OUT]
    proba = spam_probability(model, texts)
    assert ((proba >= 0) & (proba <= 1)).all()
    predicted = list(model.predict(texts))
    assert predicted == ["spam" if p >= model_threshold(model) else "ham" for p in proba]
    # On messages it never saw: a model that learnt nothing (all ham) scores 0.75 here.
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
    assert len(truth) >= 100 and accuracy > 0.95, accuracy


def test_pipeline_scores_each_dataframe_row() -> None:
    model = train(FeaturizeParams(char_ngrams=False), TrainParams(model="mnb"))
    frame = pd.DataFrame({"text": ["WINNER! Call 09061701461 to claim £900", "see you at lunch", "ok"]})
    predicted = model.predict(frame)
    assert len(predicted) == 3
    assert predicted[0] == "spam"
    assert predicted[1] == "ham"


def test_threshold_is_built_into_the_model() -> None:
    featurize = FeaturizeParams(char_ngrams=False)
    strict = train(featurize, TrainParams(model="mnb", threshold=0.99))
    lenient = train(featurize, TrainParams(model="mnb", threshold=0.01))
    assert model_threshold(strict) == 0.99
    mixed = [f"{spam} {ham}" for (_, spam), (_, ham) in zip(MESSAGES[:40], MESSAGES[40:80], strict=True)]
    texts = TEXTS + mixed
    proba = spam_probability(strict, texts)
    assert (proba == spam_probability(lenient, texts)).all()
    assert list(strict.predict(texts)) == ["spam" if p >= 0.99 else "ham" for p in proba]
    assert list(lenient.predict(texts)) == ["spam" if p >= 0.01 else "ham" for p in proba]
    assert ((proba > 0.01) & (proba < 0.99)).any(), "fixture needs an ambiguous text to tell thresholds apart"


def test_featurizer_fits_vocabulary_on_training_texts_only() -> None:
    featurizer = build_featurizer(FeaturizeParams(char_ngrams=False, word_ngram_range=(1, 1)))
    featurizer.fit(["alpha beta", "beta gamma"])
    vocabulary = featurizer.named_steps["tfidf"].transformer_list[0][1].vocabulary_
    assert set(vocabulary) == {"alpha", "beta", "gamma"}
    assert featurizer.transform(["delta"]).nnz == 0


@pytest.mark.parametrize(
    ("model_name", "estimator", "setting", "value"),
    [
        ("mnb", "MultinomialNB", "alpha", 0.1),
        ("complement_nb", "ComplementNB", "alpha", 0.3),
        ("logreg", "LogisticRegression", "C", 30),
        ("linear_svm", "CalibratedClassifierCV", "method", "sigmoid"),
    ],
)
def test_train_model_builds_the_estimator_it_names_with_its_settings_and_threshold(
    model_name: str, estimator: str, setting: str, value: object
) -> None:
    classifier = build_classifier(TrainParams(model=model_name, threshold=0.7))
    assert type(classifier.estimator).__name__ == estimator
    assert getattr(classifier.estimator, setting) == value  # params.yaml's documented defaults
    assert classifier.threshold == 0.7
