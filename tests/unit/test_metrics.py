"""Metric definitions, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from spamfilter.modeling.metrics import (
    METRIC_KEYS,
    behavioural_checks,
    classification_metrics,
    confusion_counts,
    confusion_rows,
    pr_points,
    roc_points,
)

TRUTH = ["spam", "spam", "spam", "spam", "ham", "ham", "ham", "ham", "ham", "ham"]
PRED = ["spam", "spam", "spam", "ham", "spam", "ham", "ham", "ham", "ham", "ham"]
PROBA = [0.9, 0.8, 0.7, 0.4, 0.6, 0.3, 0.2, 0.1, 0.05, 0.01]


def test_metrics_match_hand_computed_values() -> None:
    m = classification_metrics(TRUTH, PRED, PROBA)
    assert set(m) == set(METRIC_KEYS)
    # tp=3 fn=1 fp=1 tn=5
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)
    assert m["spam_caught_rate"] == pytest.approx(0.75)
    assert m["blocked_ham_rate"] == pytest.approx(1 / 6, abs=1e-6)
    expected_mcc = (3 * 5 - 1 * 1) / math.sqrt(4 * 4 * 6 * 6)
    assert m["mcc"] == pytest.approx(expected_mcc, abs=1e-6)
    # Of 24 spam/ham pairs, only (0.4 spam, 0.6 ham) is mis-ordered.
    assert m["roc_auc"] == pytest.approx(23 / 24, abs=1e-6)


def test_confusion_counts_and_rows() -> None:
    assert confusion_counts(TRUTH, PRED) == {"true_ham": 5, "blocked_ham": 1, "missed_spam": 1, "caught_spam": 3}
    rows = confusion_rows(TRUTH, PRED)
    assert len(rows) == 10
    assert rows[3] == {"actual": "spam", "predicted": "ham"}


def test_curves_span_the_unit_square() -> None:
    roc = roc_points(TRUTH, PROBA)
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0.0, 0.0)
    assert (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    pr = pr_points(TRUTH, PROBA)
    assert pr[-1] == {"recall": 0.0, "precision": 1.0, "threshold": 1.0}
    assert max(p["recall"] for p in pr) == 1.0


def test_single_class_input_gives_nan_auc_not_an_exception() -> None:
    m = classification_metrics(["ham", "ham"], ["ham", "spam"], [0.1, 0.9])
    assert math.isnan(m["roc_auc"])
    assert m["blocked_ham_rate"] == 0.5


def test_behavioural_checks_catch_a_case_sensitive_model() -> None:
    def shouty_model(texts: list[str]) -> list[str]:
        return ["spam" if t.isupper() or "WIN" in t or "£" in t else "ham" for t in texts]

    results = {r.name: r for r in behavioural_checks(["hello there", "see you"], shouty_model)}
    assert not results["case_invariance"].passed
    assert results["case_invariance"].failures == 2
    assert results["whitespace_invariance"].passed
    assert results["obvious_ham"].passed


def test_behavioural_checks_pass_for_a_consistent_model() -> None:
    def keyword_model(texts: list[str]) -> list[str]:
        words = ("win", "prize", "free", "claim", "award")
        return ["spam" if any(w in t.lower() for w in words) else "ham" for t in texts]

    assert all(r.passed for r in behavioural_checks(["hello there", "you win"], keyword_model))
