"""The reference profile: what the monitor compares the current window against.

Built by the `evaluate` stage from the training texts (descriptors, vocabulary with document
frequencies, the texts themselves for the vocabulary and domain-classifier checks) and the
held-out results (the model's score distribution, predicted spam rate, confusion counts and
metrics). Pure: the caller reads and writes the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spamfilter.errors import DataError
from spamfilter.modeling.metrics import confusion_counts
from spamfilter.monitoring import decision, descriptors

SCHEMA_VERSION = 1
PROFILE_STAGE_HINT = "it is written by the `evaluate` stage: run `dvc repro` (or `make repro`)"


def build_profile(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    test_scores: Sequence[float],
    test_truth: Sequence[str],
    test_predicted: Sequence[str],
    metrics: Mapping[str, float],
    threshold: float,
    model: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The reference profile as a JSON-ready mapping."""
    tokenized = descriptors.tokenize(train_texts)
    vocabulary = descriptors.document_frequencies(tokenized.terms)
    values = descriptors.descriptors(tokenized, vocabulary, leave_one_out=True)
    scores = np.asarray(test_scores, dtype=float)
    return {
        "schema_version": SCHEMA_VERSION,
        "model": dict(model or {}),
        "texts": {
            "messages": len(train_texts),
            "spam": sum(label == "spam" for label in train_labels),
            "sample": list(train_texts),
        },
        "descriptors": {
            name: {
                "mean": round(float(np.mean(column)), 6),
                "std": round(float(np.std(column)), 6),
                "quantiles": [round(float(q), 6) for q in np.quantile(column, [0.05, 0.25, 0.5, 0.75, 0.95])],
                "values": [round(float(v), 5) for v in column],
            }
            for name, column in values.items()
        },
        "vocabulary": {"messages": len(train_texts), "document_frequency": dict(vocabulary.most_common())},
        "scores": {
            "threshold": float(threshold),
            "values": [round(float(s), 6) for s in scores],
            "predicted_spam": sum(p == "spam" for p in test_predicted),
            "truth_spam": sum(t == "spam" for t in test_truth),
        },
        "metrics": {key: float(value) for key, value in metrics.items()},
        "confusion": confusion_counts(test_truth, test_predicted),
    }


def reference_from_profile(profile: Mapping[str, Any], source: str = "reference profile") -> decision.Reference:
    """The monitor's view of a profile, checked: a clear error naming what is missing."""
    try:
        if profile.get("schema_version") != SCHEMA_VERSION:
            raise DataError(
                f"{source}: schema_version {profile.get('schema_version')!r}, expected {SCHEMA_VERSION}; "
                f"rebuild it: {PROFILE_STAGE_HINT}"
            )
        return decision.Reference(
            texts=[str(t) for t in profile["texts"]["sample"]],
            descriptors={
                name: np.asarray(profile["descriptors"][name]["values"], dtype=float)
                for name in descriptors.DESCRIPTORS
            },
            vocabulary={str(k): int(v) for k, v in profile["vocabulary"]["document_frequency"].items()},
            scores=np.asarray(profile["scores"]["values"], dtype=float),
            predicted_spam=int(profile["scores"]["predicted_spam"]),
            label_spam=int(profile["texts"]["spam"]),
            label_total=int(profile["texts"]["messages"]),
            confusion={k: int(v) for k, v in profile["confusion"].items()},
            metrics={k: float(v) for k, v in profile["metrics"].items()},
            threshold=float(profile["scores"]["threshold"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{source}: malformed reference profile ({exc!r}); {PROFILE_STAGE_HINT}") from None
