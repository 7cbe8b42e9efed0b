"""The monitor's run and decision: every check the window allows, the multiple-testing correction,
and whether to retrain, with reasons. Pure functions over a `Reference` and a `Window`.

Both channels run the text checks (an e-mail's text is its subject and body); the e-mail channel adds
the checks of `spamfilter.monitoring.mail_descriptors` (size, HTML share, links, attachments, subject
length, unseen sender and link domains, charset mix), all in the `data` group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spamfilter.config import MonitorParams
from spamfilter.modeling.text import WordAnalyzer
from spamfilter.monitoring.checks import (
    QUALITY_METRICS,
    CheckResult,
    category_check,
    descriptor_check,
    domain_classifier_check,
    jsonable,
    quality_checks,
    score_distribution_check,
    share_check,
    skipped,
    spam_rate_check,
    vocabulary_check,
)
from spamfilter.monitoring.descriptors import DESCRIPTORS, descriptors, tokenize
from spamfilter.monitoring.mail_descriptors import (
    DESCRIPTOR_SCALES,
    MAIL_DESCRIPTORS,
    OTHER_CHARSET,
    MailFeatures,
    MailReference,
    Share,
    attachment_share,
    charset_categories,
    charset_counts,
    charset_vector,
    descriptor_values,
    link_domains,
    sender_domains,
    unseen_items,
    unseen_link_share,
    unseen_sender_share,
)
from spamfilter.monitoring.statistics import adjust_p_values


@dataclass
class Window:
    """The current window: one entry per message. Texts, scores and labels may be missing
    (a log without texts; unlabelled traffic) — the checks that need them are then skipped.
    `mail` (e-mail only) holds each message's e-mail features, as complete as the source allows."""

    lengths: np.ndarray
    scores: np.ndarray
    predicted: list[str]
    texts: list[str] | None = None
    truth: list[str | None] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    mail: list[MailFeatures] | None = None

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
    """What the monitor needs from the reference profile, as arrays (see `spamfilter.monitoring.profile`).
    `mail` is the e-mail channel's reference (None for SMS, and for an e-mail profile written before
    the e-mail descriptors existed: their checks are then skipped)."""

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
    channel: str = "sms"
    mail: MailReference | None = None
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
        if reference.channel == "email":
            # An e-mail log row's length is its raw message's, not its subject and body's: the
            # e-mail size check compares that.
            checks.append(skipped("descriptor:length", "data", "normed_wasserstein", reason))
        else:
            checks.append(
                descriptor_check("length", reference.descriptors["length"], window.lengths, params.descriptor_threshold)
            )
        checks.extend(skipped(f"descriptor:{n}", "data", "normed_wasserstein", reason) for n in DESCRIPTORS[1:])
        checks.append(skipped("vocabulary", "vocabulary", "js_distance", reason))
        checks.append(skipped("domain_classifier", "domain", "roc_auc", reason))
    if reference.channel == "email":
        checks.extend(mail_checks(reference.mail, window.mail, params))

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


@dataclass(frozen=True)
class MailThresholds:
    """Thresholds of the e-mail checks that `MonitorParams` does not carry yet (the descriptors use
    `descriptor_threshold`): a monitor params section with `mail_share_delta`, `charset_js` or
    `charset_min_share` overrides these defaults."""

    share_delta: float = 0.05  # attachment and unseen-domain shares: absolute change (Fisher test)
    charset_js: float = 0.1  # charset mix: Jensen–Shannon distance (chi-square test)
    charset_min_share: float = 0.01  # a charset rarer than this in the reference counts as "other"

    @classmethod
    def of(cls, params: MonitorParams) -> MailThresholds:
        defaults = cls()
        return cls(
            share_delta=float(getattr(params, "mail_share_delta", defaults.share_delta)),
            charset_js=float(getattr(params, "charset_js", defaults.charset_js)),
            charset_min_share=float(getattr(params, "charset_min_share", defaults.charset_min_share)),
        )


MAIL_SHARE_CHECKS = ("attachment_share", "unseen_sender_domain", "unseen_url_domain")
MAIL_CHECK_NAMES = (*(f"descriptor:{name}" for name in MAIL_DESCRIPTORS), *MAIL_SHARE_CHECKS, "charset_mix")
# What each e-mail check reads, for the reason it is skipped.
_MAIL_NEEDS = {
    "descriptor:size": "a size",
    "attachment_share": "the whole message",
    "unseen_sender_domain": "a sender domain",
    "unseen_url_domain": "links",
    "charset_mix": "the whole message",
}


def _mail_skipped(name: str, reason: str) -> CheckResult:
    statistic = "normed_wasserstein" if name.startswith("descriptor:") else "abs_change"
    return skipped(name, "data", "js_distance" if name == "charset_mix" else statistic, reason)


def mail_checks(
    reference: MailReference | None, current: Sequence[MailFeatures] | None, params: MonitorParams
) -> list[CheckResult]:
    """The e-mail checks; each needs `min_texts` messages that carry what it reads (a prediction-log row
    without the message carries only the size, the sender domain and the link domains)."""
    if reference is None:
        reason = "the reference profile has no e-mail descriptors (it predates them): rebuild it with `dvc repro`"
        return [_mail_skipped(name, reason) for name in MAIL_CHECK_NAMES]
    if current is None:
        return [_mail_skipped(name, "no e-mail fields in the window") for name in MAIL_CHECK_NAMES]
    thresholds = MailThresholds.of(params)
    needed = params.min_texts

    def too_few(name: str, count: int) -> CheckResult | None:
        if count >= needed:
            return None
        return _mail_skipped(name, f"{count} messages with {_MAIL_NEEDS.get(name, 'the whole message')} < {needed}")

    def shares(name: str, ref: Share, cur: Share) -> CheckResult:
        if not ref.n:
            return _mail_skipped(name, "the reference has no messages to compare with")
        return too_few(name, cur.n) or share_check(name, "data", ref.k, ref.n, cur.k, cur.n, thresholds.share_delta)

    results: list[CheckResult] = []
    for name in MAIL_DESCRIPTORS:
        values = descriptor_values(current, name)
        check = too_few(f"descriptor:{name}", len(values))
        if check is None:
            check = descriptor_check(name, reference.descriptors[name], values, params.descriptor_threshold)
            check.details["scale"] = DESCRIPTOR_SCALES[name]
        results.append(check)
    results.append(shares("attachment_share", reference.attachments, attachment_share(current)))

    senders = sender_domains(current)
    check = shares(
        "unseen_sender_domain", reference.unseen_sender, unseen_sender_share(senders, reference.sender_domains)
    )
    check.details["unseen"] = unseen_items([[d] for d in senders], reference.sender_domains, params.report_terms)
    results.append(check)
    links = link_domains(current)
    check = shares("unseen_url_domain", reference.unseen_url, unseen_link_share(links, reference.url_domains))
    check.details["unseen"] = unseen_items(links, reference.url_domains, params.report_terms)
    results.append(check)

    counts = charset_counts(current)
    check = too_few("charset_mix", sum(counts.values()))
    if check is None:
        categories = charset_categories(reference.charsets, thresholds.charset_min_share)
        check = category_check(
            "charset_mix",
            "data",
            [*categories, OTHER_CHARSET],
            charset_vector(reference.charsets, categories),
            charset_vector(counts, categories),
            thresholds.charset_js,
        )
        total = sum(counts.values())
        check.details["other_charsets"] = [
            {"charset": name, "current_share": count / total}
            for name, count in counts.items()
            if name not in categories
        ][: params.report_terms]
    results.append(check)
    return results


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
    if check.details.get("unseen"):
        text += f"; new domains: {', '.join(u['domain'] for u in check.details['unseen'][:5])}"
    if check.name == "charset_mix":
        text += "; " + ", ".join(
            f"{name} {ref:.0%}→{cur:.0%}"
            for name, ref, cur in sorted(
                zip(
                    check.details["categories"],
                    check.details["reference_shares"],
                    check.details["current_shares"],
                    strict=True,
                ),
                key=lambda item: -abs(item[2] - item[1]),
            )[:3]
        )
        others = check.details.get("other_charsets", [])[:3]
        if others:
            text += f" ({OTHER_CHARSET}: " + ", ".join(f"{o['charset']} {o['current_share']:.0%}" for o in others) + ")"
    if check.name == "vocabulary":
        unseen = [u["term"] for u in check.details.get("unseen_terms", [])[:5]]
        moved = [m["term"] for m in check.details.get("moved_terms", [])[:5]]
        text += f"; moved most: {', '.join(moved)}" + (f"; new terms: {', '.join(unseen)}" if unseen else "")
    return text
