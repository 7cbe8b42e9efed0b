"""E-mail fixtures for the API's tests: an e-mail model trained in-process on generated messages
(`tests/generated_mail.py`) the way the `featurize` and `train` stages build it, and its serving bundle as
`spamfilter export --channel email` writes it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spamfilter.config import EmailParams, flatten
from spamfilter.modeling import channels
from spamfilter.modeling.metrics import classification_metrics
from spamfilter.modeling.pipeline import model_threshold, spam_probability
from spamfilter.registry.bundle import METADATA_FILE, BundleMetadata
from tests.generated_mail import make_corpus

EMAIL_MODEL_NAME = "spam-classifier-email"


def make_emails(n_ham: int = 120, n_spam: int = 40, seed: int = 11) -> list[tuple[str, bytes]]:
    """Deterministic, distinct (label, raw message) pairs a model can learn (`tests/generated_mail.py`)."""
    return make_corpus(n_ham, n_spam, seed)


def train_email_model(seed: int = 11, model: str = "ensemble") -> Any:
    """An e-mail pipeline (raw message → P(spam)) trained on generated messages: the e-mail model's own
    pipeline (`spamfilter.modeling.email.build_email_model`) with its default features and `model`
    (ensemble, linear_svm or naive_bayes)."""
    from spamfilter.modeling import email

    rows = make_emails(seed=seed)
    train = email.EmailTrainParams.model_validate({"model": model})
    pipeline = email.build_email_model(email.EmailFeaturizeParams(), train)
    return pipeline.fit([raw for _, raw in rows], [label for label, _ in rows])


def email_metrics(model: Any) -> dict[str, float]:
    rows = make_emails(n_ham=45, n_spam=15, seed=99)
    probabilities = spam_probability(model, [raw for _, raw in rows])
    predicted = ["spam" if p >= model_threshold(model) else "ham" for p in probabilities]
    return classification_metrics([label for label, _ in rows], predicted, probabilities)


def write_email_bundle(destination: Path, model: Any, version: str = "1") -> Path:
    """An e-mail bundle as `spamfilter export --channel email` writes it."""
    from spamfilter.registry import tracking

    destination.mkdir(parents=True, exist_ok=True)
    tracking.save_model(model, destination / "model", channels.input_example("email"), channels.input_column("email"))
    now = datetime.now(UTC).isoformat()
    meta = BundleMetadata(
        name=EMAIL_MODEL_NAME,
        version=version,
        alias="champion",
        run_id=f"email-run-{version}",
        model_uri=f"models:/{EMAIL_MODEL_NAME}/{version}",
        metrics=email_metrics(model),
        threshold=model_threshold(model),
        trained_at=now,
        exported_at=now,
        data_fingerprint={
            "raw_md5": "2" * 32,
            "dataset_sha256": "3" * 64,
            "rows": 160,
            "train_rows": 128,
            "test_rows": 32,
        },
        params=flatten(EmailParams().model_dump(mode="json", exclude={"gate", "monitor"})),
        channel="email",
    )
    (destination / METADATA_FILE).write_text(meta.model_dump_json(indent=2), encoding="utf-8")
    return destination
