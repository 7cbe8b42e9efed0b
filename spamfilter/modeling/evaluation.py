"""Evaluating a fitted pipeline on a held-out split: the metrics, curves, confusion counts and
behavioural checks the `evaluate` stage writes, and the figures of them. Pure: no files, no tracking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from spamfilter.modeling import metrics, plots
from spamfilter.modeling.pipeline import model_threshold, spam_probability


@dataclass(frozen=True)
class Evaluation:
    """A model's results on a held-out split."""

    truth: list[str]
    probabilities: list[float]
    predicted: list[str]
    threshold: float
    scores: dict[str, float]  # the held-out metrics (`metrics.METRIC_KEYS`)
    counts: dict[str, int]  # the confusion counts
    roc: list[dict[str, float]]
    pr: list[dict[str, float]]
    behavioural: list[metrics.BehaviouralResult]

    @property
    def behavioural_passed(self) -> bool:
        return all(check.passed for check in self.behavioural)

    def metrics_record(self) -> dict[str, Any]:
        """What `reports/metrics.json` holds."""
        return {**self.scores, "test_rows": len(self.truth), "confusion": self.counts}


def evaluate_model(
    model: Any, inputs: Sequence[Any], truth: Sequence[str], behavioural: Sequence[metrics.BehaviouralResult] = ()
) -> Evaluation:
    """Score `model` on the held-out inputs (texts or raw messages) with their true labels; the
    channel's behavioural check results come along (`channels.behavioural_checks`)."""
    probabilities = spam_probability(model, list(inputs))
    predicted = [str(label) for label in model.predict(list(inputs))]
    return Evaluation(
        truth=list(truth),
        probabilities=[float(p) for p in probabilities],
        predicted=predicted,
        threshold=model_threshold(model),
        scores=metrics.classification_metrics(truth, predicted, probabilities),
        counts=metrics.confusion_counts(truth, predicted),
        roc=metrics.roc_points(truth, probabilities),
        pr=metrics.pr_points(truth, probabilities),
        behavioural=list(behavioural),
    )


def evaluation_figures(evaluation: Evaluation) -> dict[str, Figure]:
    """The PNG figures of an evaluation, by file name."""
    return {
        "roc.png": plots.roc_figure(evaluation.roc, evaluation.scores["roc_auc"]),
        "pr.png": plots.pr_figure(evaluation.pr, evaluation.scores["pr_auc"]),
        "confusion.png": plots.confusion_figure(evaluation.counts),
    }
