"""The monitor's run and decision: every check the window allows, the multiple-testing correction,
and whether to retrain, with reasons. Pure functions over a `Reference` and a `Window`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spamfilter.config import MonitorParams
from spamfilter.modeling.text import WordAnalyzer
from spamfilter.monitoring.checks import (
    QUALITY_METRICS,
    CheckResult,
    descriptor_check,
    domain_classifier_check,
    jsonable,
    quality_checks,
    score_distribution_check,
    skipped,
    spam_rate_check,
    vocabulary_check,
)
from spamfilter.monitoring.descriptors import DESCRIPTORS, descriptors, tokenize
from spamfilter.monitoring.statistics import adjust_p_values


@dataclass
class Window:
    """The current window: one entry per message. Texts, scores and labels may be missing
    (a log without texts; unlabelled traffic) — the checks that need them are then skipped."""

    lengths: np.ndarray
    scores: np.ndarray
    predicted: list[str]
    texts: list[str] | None = None
    truth: list[str | None] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass
class MonitorResult:
    status: str  # ok | drift | insufficient_data
    retrain_needed: bool
    reasons: list[str]
    checks: list[CheckResult]
    window: dict[str, Any]
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "retrain_needed": self.retrain_needed,
            "reasons": self.reasons,
            "message": self.message,
            "window": jsonable(self.window),
            "checks": [check.as_dict() for check in self.checks],
        }


@dataclass
class Reference:
    """What the monitor needs from the reference profile, as arrays (see `spamfilter.profile`)."""

    texts: list[str]
    descriptors: dict[str, np.ndarray]
    vocabulary: dict[str, int]
    scores: np.ndarray
    predicted_spam: int
    label_spam: int
    label_total: int
    confusion: dict[str, int]
    metrics: dict[str, float]
    threshold: float
    _terms: list[list[str]] | None = None

    def terms(self, analyzer: WordAnalyzer) -> list[list[str]]:
        if self._terms is None:
            self._terms = tokenize(self.texts, analyzer).terms
        return self._terms


def run_checks(reference: Reference, window: Window, params: MonitorParams) -> MonitorResult:
    """Every check the window's contents allow, the multiple-testing correction, and the decision."""
    info = {
        **window.info,
        "size": len(window),
        "with_text": 0 if window.texts is None else len(window.texts),
        "labelled": 0 if window.truth is None else sum(t is not None for t in window.truth),
    }
    if len(window) < params.min_window:
        message = f"insufficient data: {len(window)} messages in the window, need at least {params.min_window}"
        return MonitorResult("insufficient_data", False, [], [], info, message)

    checks: list[CheckResult] = []
    analyzer = WordAnalyzer("porter")
    texts = window.texts
    if texts is not None and len(texts) >= params.min_texts:
        tokenized = tokenize(texts, analyzer)
        current = descriptors(tokenized, reference.vocabulary)
        for name in DESCRIPTORS:
            checks.append(
                descriptor_check(name, reference.descriptors[name], current[name], params.descriptor_threshold)
            )
        checks.append(vocabulary_check(reference.terms(analyzer), tokenized.terms, reference.vocabulary, params))
        checks.append(domain_classifier_check(reference.texts, texts, params))
    else:
        reason = f"{info['with_text']} messages with text < {params.min_texts}"
        checks.append(
            descriptor_check("length", reference.descriptors["length"], window.lengths, params.descriptor_threshold)
        )
        checks.extend(skipped(f"descriptor:{n}", "data", "normed_wasserstein", reason) for n in DESCRIPTORS[1:])
        checks.append(skipped("vocabulary", "vocabulary", "js_distance", reason))
        checks.append(skipped("domain_classifier", "domain", "roc_auc", reason))

    n_ref_scores = len(reference.scores)
    checks.append(
        spam_rate_check(
            "predicted_spam_rate",
            "prediction",
            reference.predicted_spam,
            n_ref_scores,
            sum(p == "spam" for p in window.predicted),
            len(window),
            params.spam_rate_delta,
        )
    )
    checks.append(score_distribution_check(reference.scores, window.scores, params.score_psi))

    labelled = [(t, p) for t, p in zip(window.truth or [], window.predicted, strict=False) if t is not None]
    if len(labelled) >= params.min_labelled:
        truth = [t for t, _ in labelled]
        predicted = [p for _, p in labelled]
        checks.append(
            spam_rate_check(
                "label_spam_rate",
                "label",
                reference.label_spam,
                reference.label_total,
                sum(t == "spam" for t in truth),
                len(truth),
                params.label_rate_delta,
            )
        )
        checks.extend(quality_checks(reference.confusion, reference.metrics, truth, predicted, params))
    else:
        reason = f"{len(labelled)} labelled messages < {params.min_labelled}"
        checks.append(skipped("label_spam_rate", "label", "abs_change", reason))
        checks.extend(skipped(f"quality:{m}", "quality", "drop", reason) for m in QUALITY_METRICS)

    return decide(checks, info, params)


def decide(checks: list[CheckResult], window: dict[str, Any], params: MonitorParams) -> MonitorResult:
    """Correct the p-values, mark the checks that fired, and decide whether to retrain, with reasons."""
    tested = [c for c in checks if c.skipped is None and c.p_value is not None]
    p_values = [c.p_value for c in tested if c.p_value is not None]
    for check, adjusted in zip(tested, adjust_p_values(p_values, params.correction), strict=True):
        check.p_adjusted = adjusted
    for check in checks:
        if check.skipped is None and check.p_adjusted is not None:
            check.drifted = check.effect_exceeded and check.p_adjusted < params.alpha
    by_name = {c.name: c for c in checks}
    f1 = by_name.get("quality:f1")
    if f1 is not None and f1.skipped is None:
        confirmed = any(by_name[n].drifted for n in ("quality:precision", "quality:recall") if n in by_name)
        f1.drifted = f1.effect_exceeded and confirmed

    fired = [c for c in checks if c.drifted]
    reasons = [describe(c) for c in fired if c.group in params.retrain_on]
    retrain = bool(reasons)
    status = "drift" if fired else "ok"
    message = (
        f"retrain needed: {len(reasons)} check(s) fired"
        if retrain
        else ("drift noted in checks that do not trigger retraining" if fired else "no drift detected")
    )
    return MonitorResult(status, retrain, reasons, checks, window, message)


def describe(check: CheckResult) -> str:
    """One line a person can act on."""
    p = f", p_adj={check.p_adjusted:.2g}" if check.p_adjusted is not None else ""
    if check.group == "quality":
        return (
            f"{check.name}: {check.current:.3f} vs reference {check.reference:.3f} "
            f"(drop {check.statistic:.3f} > tolerance {check.threshold}{p})"
        )
    text = f"{check.name}: {check.statistic_name} {check.statistic:.3f} >= {check.threshold}{p}"
    if check.reference is not None and check.current is not None:
        text += f" (reference {check.reference:.3g}, current {check.current:.3g})"
    if check.name == "vocabulary":
        unseen = [u["term"] for u in check.details.get("unseen_terms", [])[:5]]
        moved = [m["term"] for m in check.details.get("moved_terms", [])[:5]]
        text += f"; moved most: {', '.join(moved)}" + (f"; new terms: {', '.join(unseen)}" if unseen else "")
    return text
