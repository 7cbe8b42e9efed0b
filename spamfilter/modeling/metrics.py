"""Evaluation metrics, curves and behavioural checks: pure functions of labels and scores."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from spamfilter.labels import HAM, SPAM

METRIC_KEYS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "mcc",
    "roc_auc",
    "pr_auc",
    "spam_caught_rate",
    "blocked_ham_rate",
)


Scores = Sequence[float] | np.ndarray  # P(spam) per message


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], spam_proba: Scores) -> dict[str, float]:
    """The evaluation metrics, spam as the positive class.

    `spam_caught_rate` is recall on spam; `blocked_ham_rate` is the share of ham classified as
    spam (the false-positive rate) — the cost users notice.
    """
    truth = np.asarray(y_true) == SPAM
    pred = np.asarray(y_pred) == SPAM
    scores = np.asarray(spam_proba, dtype=float)
    tn, fp, fn, tp = confusion_matrix(truth, pred, labels=[False, True]).ravel()
    both_classes = 0 < truth.sum() < len(truth)
    metrics = {
        "accuracy": accuracy_score(truth, pred),
        "precision": precision_score(truth, pred, zero_division=0.0),
        "recall": recall_score(truth, pred, zero_division=0.0),
        "f1": f1_score(truth, pred, zero_division=0.0),
        "mcc": matthews_corrcoef(truth, pred),
        "roc_auc": roc_auc_score(truth, scores) if both_classes else float("nan"),
        "pr_auc": average_precision_score(truth, scores) if both_classes else float("nan"),
        "spam_caught_rate": tp / (tp + fn) if tp + fn else 0.0,
        "blocked_ham_rate": fp / (fp + tn) if fp + tn else 0.0,
    }
    return {key: round(float(metrics[key]), 6) for key in METRIC_KEYS}


def confusion_counts(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, int]:
    """The confusion matrix as named counts, spam as the positive class."""
    truth = np.asarray(y_true) == SPAM
    pred = np.asarray(y_pred) == SPAM
    tn, fp, fn, tp = confusion_matrix(truth, pred, labels=[False, True]).ravel()
    return {"true_ham": int(tn), "blocked_ham": int(fp), "missed_spam": int(fn), "caught_spam": int(tp)}


def f1_from_counts(counts: Mapping[str, int]) -> float:
    """Spam F1 from named confusion counts (`confusion_counts`)."""
    tp, fp, fn = counts["caught_spam"], counts["blocked_ham"], counts["missed_spam"]
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def roc_points(y_true: Sequence[str], spam_proba: Scores) -> list[dict[str, float]]:
    fpr, tpr, thresholds = roc_curve(np.asarray(y_true) == SPAM, spam_proba)
    return [
        {"fpr": round(float(f), 6), "tpr": round(float(t), 6), "threshold": round(float(min(th, 1.0)), 6)}
        for f, t, th in zip(fpr, tpr, thresholds, strict=True)
    ]


def pr_points(y_true: Sequence[str], spam_proba: Scores) -> list[dict[str, float]]:
    precision, recall, thresholds = precision_recall_curve(np.asarray(y_true) == SPAM, spam_proba)
    # precision_recall_curve's last point has no threshold; it is the (recall 0, precision 1) end.
    padded = [*thresholds.tolist(), 1.0]
    return [
        {"recall": round(float(r), 6), "precision": round(float(p), 6), "threshold": round(float(t), 6)}
        for p, r, t in zip(precision, recall, padded, strict=True)
    ]


def confusion_rows(y_true: Sequence[str], y_pred: Sequence[str]) -> list[dict[str, str]]:
    """One row per message, the shape DVC's `confusion` template reads."""
    return [{"actual": a, "predicted": p} for a, p in zip(y_true, y_pred, strict=True)]


# Behavioural checks (Ribeiro et al., "Beyond Accuracy", 2020): invariance and minimum
# functionality tests a model must pass whatever its aggregate metrics.
OBVIOUS_SPAM = (
    "WINNER!! You have been selected to receive a £900 prize reward! To claim call 09061701461. Valid 12 hours only.",
    "FREE entry in 2 a wkly comp to win FA Cup final tkts. Text FA to 87121 to receive entry question",
    "URGENT! Your mobile number has been awarded a £2000 bonus caller prize. Call 09058094455 from a landline now",
    "Congratulations! You've won a free ringtone. Reply WIN to 85233 now. Std txt rate. T&Cs apply",
    "You have won a guaranteed £1000 cash or a £2000 prize. To claim txt CLAIM to 81010 T&C www.dbuk.net",
)
OBVIOUS_HAM = (
    "Are we still meeting for lunch tomorrow at 1?",
    "I'll be home late tonight, don't wait up for dinner",
    "Can you pick up some milk on your way back?",
    "Happy birthday! Hope you have a lovely day",
    "Sorry I missed your call, I was in a meeting. Talk later?",
)


@dataclass(frozen=True)
class BehaviouralResult:
    name: str
    passed: bool
    failures: int
    total: int
    examples: list[str]

    def as_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "failures": self.failures,
            "total": self.total,
            "examples": self.examples,
        }


def _perturbation_check(
    name: str, texts: Sequence[str], predict: Callable[[list[str]], list[str]], perturb: Callable[[str], str]
) -> BehaviouralResult:
    original = predict(list(texts))
    changed = predict([perturb(t) for t in texts])
    flipped = [t for t, a, b in zip(texts, original, changed, strict=True) if a != b]
    return BehaviouralResult(name, not flipped, len(flipped), len(texts), [t[:80] for t in flipped[:5]])


def _expectation_check(
    name: str, texts: Sequence[str], expected: str, predict: Callable[[list[str]], list[str]]
) -> BehaviouralResult:
    labels = predict(list(texts))
    wrong = [t for t, label in zip(texts, labels, strict=True) if label != expected]
    return BehaviouralResult(name, not wrong, len(wrong), len(texts), [t[:80] for t in wrong[:5]])


def behavioural_checks(sample: Sequence[str], predict: Callable[[list[str]], list[str]]) -> list[BehaviouralResult]:
    """Case and whitespace invariance on `sample`; obvious spam and ham predicted as such."""
    return [
        _perturbation_check("case_invariance", sample, predict, str.upper),
        _perturbation_check("whitespace_invariance", sample, predict, lambda t: "  " + t.replace(" ", "   ") + " \n"),
        _expectation_check("obvious_spam", OBVIOUS_SPAM, SPAM, predict),
        _expectation_check("obvious_ham", OBVIOUS_HAM, HAM, predict),
    ]
