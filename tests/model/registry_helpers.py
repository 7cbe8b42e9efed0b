"""Shared set-up for the registry, gate and export tests: real pipelines trained in-process on the
fixture corpus, logged to a real MLflow SQLite store in tmp, with controlled differences in quality."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spamfilter.config import Params, Settings, TrainParams
from spamfilter.data import corpus
from spamfilter.modeling.metrics import OBVIOUS_HAM, OBVIOUS_SPAM
from spamfilter.modeling.pipeline import assemble, build_classifier, build_featurizer, spam_probability
from spamfilter.registry import tracking
from spamfilter.registry.release import score
from tests.conftest import make_messages

# Cheap but real: the default featurizer, logistic regression (no calibration folds).
PARAMS = Params(train=TrainParams(model="logreg"))


def store_settings(root: Path, registered_model: str = "spam-classifier") -> Settings:
    return Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        SPAM_MLFLOW_ARTIFACT_ROOT=str(root / "mlartifacts"),
        SPAM_EXPERIMENT="gate-tests",
        SPAM_REGISTERED_MODEL=registered_model,
    )


def train(messages: list[corpus.Message], params: Params = PARAMS) -> Any:
    texts, labels = corpus.texts_and_labels(messages)
    featurizer = build_featurizer(params.featurize)
    features = featurizer.fit_transform(texts)
    return assemble(featurizer, build_classifier(params.train).fit(features, labels))


def with_threshold(model: Any, threshold: float) -> Any:
    """The same fitted pipeline deciding spam at another P(spam): a controlled trade-off between
    caught spam and blocked ham."""
    changed = copy.deepcopy(model)
    changed.set_params(classifier__threshold=threshold)
    return changed


@dataclass
class Store:
    """A tmp MLflow store holding the logged models, and the held-out split they are judged on."""

    root: Path
    test_path: Path
    texts: list[str]
    truth: list[str]
    models: dict[str, Any] = field(default_factory=dict)
    uris: dict[str, str] = field(default_factory=dict)
    # What each run logged to MLflow: its metrics on the *training* split, so a gate that read them
    # instead of scoring the held-out split would report other values.
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # Each model on the held-out split the gate is given, scored here with scikit-learn's own functions.
    held_out: dict[str, dict[str, float]] = field(default_factory=dict)

    def settings(self, registered_model: str = "spam-classifier") -> Settings:
        return store_settings(self.root, registered_model)

    def register(self, name: str, *models: str) -> Settings:
        """A registered model `name` whose versions 1, 2, … are the named logged models, in order,
        so each test gets its own aliases and audit trail without logging models again."""
        import mlflow

        settings = self.settings(name)
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        for model in models:
            mlflow.register_model(self.uris[model], name)
        return settings


def build_store(root: Path, extra: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> Store:
    """Log `good`, `good_again` (retrained on identical data and params), `weak` (misses about
    half the spam) and `trigger_happy` (catches all spam, blocks some ham), plus `extra` copies
    of `good` (to break on purpose); `only` the named ones if given."""
    messages = [corpus.Message(label, text) for label, text in make_messages(n_ham=200, n_spam=60, seed=11)]
    train_split, test_split = corpus.split(messages, 0.25, seed=3)
    test_path = root / "test.jsonl"
    test_path.write_text(corpus.to_jsonl(test_split), encoding="utf-8")
    texts, truth = corpus.texts_and_labels(test_split)
    store = Store(root=root, test_path=test_path, texts=texts, truth=truth)

    good = train(train_split)
    proba = spam_probability(good, texts)
    is_spam = np.asarray(truth) == "spam"
    highest_ham = float(proba[~is_spam].max())
    median_spam = float(np.median(proba[is_spam]))
    assert highest_ham < median_spam, "fixture corpus no longer separable enough for the gate cases"
    store.models = {
        "good": good,
        "good_again": train(train_split),
        "weak": with_threshold(good, (median_spam + float(proba[is_spam].max())) / 2),
        "trigger_happy": with_threshold(good, highest_ham - 1e-6),
    }
    for name in extra:
        store.models[name] = copy.deepcopy(good)
    if only is not None:
        store.models = {name: store.models[name] for name in only}

    settings = store.settings()
    for name, model in store.models.items():
        run = tracking.log_training_run(
            settings,
            model,
            params={"train.model": "logreg", "train.threshold": model_threshold_of(model)},
            tags={"data_rows": str(len(messages)), "data_test_rows": str(len(test_split)), "data_sha256": "fixture"},
            input_example=[OBVIOUS_SPAM[0], OBVIOUS_HAM[0]],
            run_name=name,
        )
        store.uris[name] = run.source
        store.metrics[name] = score(model, *corpus.texts_and_labels(train_split))
        store.held_out[name] = independent_metrics(model, texts, truth)
        tracking.log_evaluation(settings, run.run_id, store.metrics[name], artifacts=[])
    return store


def independent_metrics(model: Any, texts: list[str], truth: list[str]) -> dict[str, float]:
    """The gate's metrics computed without the project's metric code: scikit-learn's and by hand."""
    from sklearn.metrics import f1_score, matthews_corrcoef

    predicted = [str(label) for label in model.predict(texts)]
    ham = [p for p, t in zip(predicted, truth, strict=True) if t == "ham"]
    return {
        "f1": float(f1_score(truth, predicted, pos_label="spam")),
        "mcc": float(matthews_corrcoef(truth, predicted)),
        "blocked_ham_rate": ham.count("spam") / len(ham),
    }


def model_threshold_of(model: Any) -> float:
    return float(model.named_steps["classifier"].threshold)


def artifact_file(store: Store, model: str, name: str = "model.pkl") -> Path:
    """The stored file of a logged model, to damage it on purpose."""
    matches = list((store.root / "mlartifacts").rglob(f"{store.uris[model].removeprefix('models:/')}/**/{name}"))
    assert len(matches) == 1, matches
    return matches[0]
