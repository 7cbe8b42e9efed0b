"""Drift statistics and the retrain decision: pure functions over arrays, texts and a reference profile.

Every check yields a `CheckResult` with an effect size and, where a valid test exists, a p-value.
A check fires only when both hold: the effect is at least its practical threshold from
`params.yaml: monitor:` (so a huge window does not alarm on a negligible shift), and its p-value,
corrected for running all the tests at once, is below `monitor.alpha` (so a small window does not
alarm on noise). Checks with too little data are skipped, with the reason, never guessed.

Groups of checks (the retrain decision can be limited to some with `monitor.retrain_on`):
  data        text descriptors: length, tokens, URL/number/currency/uppercase shares, OOV rate (KS);
              for e-mail also size, HTML share, links and subject length (KS), the shares with
              attachments and from or linking to unseen domains (Fisher), the charset mix (chi-square)
  vocabulary  Jensen–Shannon distance between term distributions beyond chance (permutation test)
  domain      a classifier told to separate reference from current texts (ROC AUC, Mann–Whitney)
  prediction  predicted spam rate (Fisher) and score distribution (PSI, chi-square)
  label       true spam rate in labelled data (Fisher)
  quality     precision and recall (one-sided Fisher) and F1 against the champion's, with tolerances
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse
from scipy import stats
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from spamfilter.config import MonitorParams
from spamfilter.modeling.metrics import confusion_counts, f1_from_counts
from spamfilter.modeling.text import WordAnalyzer, normalize
from spamfilter.monitoring.descriptors import document_frequencies
from spamfilter.monitoring.statistics import (
    chi_square_p,
    display_edges,
    fisher_p,
    histogram,
    js_distances,
    normed_wasserstein,
    psi,
)

GROUPS = ("data", "vocabulary", "domain", "prediction", "label", "quality")
# The domain classifier reads each text's first this many characters. E-mail bodies run to hundreds
# of KB, and their bigram features made the check cost seconds per window; the start of a message
# (subject, greeting, first paragraphs) tells two sources apart as well. An SMS is far shorter.
DOMAIN_TEXT_CHARS = 3000
QUALITY_METRICS = ("precision", "recall", "f1")
SCORE_BINS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95, 0.98, 1.0)


# --------------------------------------------------------------------------- results


@dataclass
class CheckResult:
    name: str
    group: str
    statistic_name: str
    statistic: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    effect_exceeded: bool = False
    drifted: bool = False
    skipped: str | None = None
    reference: float | None = None
    current: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = jsonable(asdict(self))
        return record


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    return value


def skipped(name: str, group: str, statistic_name: str, reason: str) -> CheckResult:
    return CheckResult(name, group, statistic_name, skipped=reason)


# --------------------------------------------------------------------------- checks


def descriptor_check(name: str, reference: np.ndarray, current: np.ndarray, threshold: float) -> CheckResult:
    """KS test and normed Wasserstein distance of one descriptor."""
    effect = normed_wasserstein(reference, current)
    # The asymptotic distribution: exact, for samples of thousands, costs ~0.3 s and changes nothing.
    p_value = float(stats.ks_2samp(reference, current, method="asymp").pvalue)
    edges = display_edges(np.concatenate([reference, current]))
    return CheckResult(
        f"descriptor:{name}",
        "data",
        "normed_wasserstein",
        statistic=effect,
        threshold=threshold,
        p_value=p_value,
        effect_exceeded=effect >= threshold,
        reference=float(np.mean(reference)),
        current=float(np.mean(current)),
        details={
            "test": "ks",
            "edges": edges.tolist(),
            "reference_hist": histogram(reference, edges),
            "current_hist": histogram(current, edges),
        },
    )


def term_matrix(terms: Sequence[Sequence[str]], index: Mapping[str, int]) -> scipy.sparse.csr_matrix:
    """Binary message × term matrix over `index`, with a last column counting the other terms' presences."""
    rows, cols = [], []
    other = len(index)
    for row, message_terms in enumerate(terms):
        present = set(message_terms)
        known = [index[t] for t in present if t in index]
        rows.extend([row] * len(known))
        cols.extend(known)
        n_other = len(present) - len(known)
        if n_other:
            rows.extend([row] * n_other)
            cols.extend([other] * n_other)
    data = np.ones(len(rows), dtype=float)
    return scipy.sparse.csr_matrix((data, (rows, cols)), shape=(len(terms), other + 1))


def vocabulary_check(
    reference_terms: Sequence[Sequence[str]],
    current_terms: Sequence[Sequence[str]],
    reference_vocabulary: Mapping[str, int],
    params: MonitorParams,
) -> CheckResult:
    """Jensen–Shannon distance between the term distributions (document frequencies of the top
    terms of both samples, plus one bucket for all other terms), with a permutation test.

    Messages, not tokens, are the unit that is shuffled, so words that come together in a message
    (a campaign, a conversation) do not make the test over-confident. The p-value comes from a
    gamma distribution fitted to the permutation distances (so it resolves below 1/permutations).
    """
    pooled = [*reference_terms, *current_terms]
    frequencies = document_frequencies(pooled)
    top = [term for term, _ in frequencies.most_common(params.vocab_top_terms)]
    index = {term: i for i, term in enumerate(top)}
    matrix = term_matrix(pooled, index)
    n_ref, n_cur = len(reference_terms), len(current_terms)
    total = np.asarray(matrix.sum(axis=0)).ravel()
    current_counts = np.asarray(matrix[n_ref:].sum(axis=0)).ravel()
    observed = float(js_distances(total - current_counts, current_counts)[0])

    rng = np.random.default_rng(params.seed)
    permutations = params.vocab_permutations
    membership = np.zeros((permutations, n_ref + n_cur))
    for row in range(permutations):
        membership[row, rng.choice(n_ref + n_cur, size=n_cur, replace=False)] = 1.0
    permuted_current = np.asarray((matrix.T @ membership.T).T)
    null = js_distances(total - permuted_current, permuted_current) ** 2  # divergences: closer to gamma
    mean, var = float(null.mean()), float(null.var())
    if var > 0 and mean > 0:
        p_value = float(stats.gamma.sf(observed**2, a=mean**2 / var, scale=var / mean))
    else:
        p_value = 1.0 if observed**2 <= mean else 0.0

    # Terms that moved most: document-frequency shares, ordered by a two-proportion z-score.
    ref_counts = total - current_counts
    moved = []
    for i, term in enumerate(top):
        ref_share, cur_share = ref_counts[i] / n_ref, current_counts[i] / n_cur
        pooled_share = total[i] / (n_ref + n_cur)
        se = math.sqrt(max(pooled_share * (1 - pooled_share) * (1 / n_ref + 1 / n_cur), 1e-12))
        moved.append(
            {
                "term": term,
                "reference_share": ref_share,
                "current_share": cur_share,
                "z": (cur_share - ref_share) / se,
                "new": reference_vocabulary.get(term, 0) == 0,
            }
        )
    moved.sort(key=lambda item: -abs(item["z"]))
    current_df = document_frequencies(current_terms)
    unseen = [
        {"term": term, "current_share": count / n_cur}
        for term, count in current_df.most_common()
        if reference_vocabulary.get(term, 0) == 0
    ][: params.report_terms]
    # Two finite samples are never at distance 0: the effect is the distance beyond what chance
    # gives at these sample sizes (the permutations' mean distance).
    chance = float(np.sqrt(null).mean())
    excess = observed - chance
    return CheckResult(
        "vocabulary",
        "vocabulary",
        "js_excess",
        statistic=excess,
        threshold=params.vocab_js_excess,
        p_value=p_value,
        effect_exceeded=excess >= params.vocab_js_excess,
        details={
            "test": "permutation",
            "top_terms": len(top),
            "js_distance": observed,
            "chance_js_distance": chance,
            "moved_terms": moved[: params.report_terms],
            "unseen_terms": unseen,
        },
    )


def _deduplicated(texts: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def domain_classifier_check(
    reference_texts: Sequence[str], current_texts: Sequence[str], params: MonitorParams
) -> CheckResult:
    """Can a classifier tell current texts from reference ones? Cross-validated ROC AUC.

    Each side is de-duplicated (a repeated message would be memorised across folds) and capped at
    `domain_max_per_side`, balanced. Under no drift the out-of-fold scores of both sides come from
    one distribution, so a one-sided Mann–Whitney test on them gives the p-value.
    """
    rng = np.random.default_rng(params.seed)
    reference = _deduplicated(reference_texts)
    current = _deduplicated(current_texts)
    per_side = min(len(reference), len(current), params.domain_max_per_side)
    name = "domain_classifier"
    if per_side < params.min_texts // 2:
        return skipped(name, "domain", "roc_auc", f"{per_side} distinct texts per side < {params.min_texts // 2}")
    reference = [reference[i] for i in rng.choice(len(reference), per_side, replace=False)]
    current = [current[i] for i in rng.choice(len(current), per_side, replace=False)]
    texts = reference + current
    is_current = np.array([0] * per_side + [1] * per_side)
    vectorizer = TfidfVectorizer(
        analyzer=WordAnalyzer("porter", ngram_range=(1, 2)), lowercase=False, sublinear_tf=True, min_df=2
    )
    features = vectorizer.fit_transform([normalize(t[:DOMAIN_TEXT_CHARS]) for t in texts])
    classifier = LogisticRegression(C=1.0, max_iter=1000)
    folds = StratifiedKFold(n_splits=params.domain_folds, shuffle=True, random_state=params.seed)
    scores = cross_val_predict(classifier, features, is_current, cv=folds, method="decision_function")
    test = stats.mannwhitneyu(scores[is_current == 1], scores[is_current == 0], alternative="greater")
    auc = float(test.statistic) / (per_side * per_side)
    details: dict[str, Any] = {"test": "mann_whitney", "per_side": per_side}
    if auc >= params.domain_auc:
        # The terms the classifier leans on to recognise current texts: a hint at what changed.
        fitted = LogisticRegression(C=1.0, max_iter=1000).fit(features, is_current)
        names = vectorizer.get_feature_names_out()
        order = np.argsort(-fitted.coef_[0])[: params.report_terms]
        details["current_markers"] = [str(names[i]) for i in order]
    return CheckResult(
        name,
        "domain",
        "roc_auc",
        statistic=auc,
        threshold=params.domain_auc,
        p_value=float(test.pvalue),
        effect_exceeded=auc >= params.domain_auc,
        details=details,
    )


def share_check(name: str, group: str, k_ref: int, n_ref: int, k_cur: int, n_cur: int, threshold: float) -> CheckResult:
    """A two-sided Fisher test and the absolute change of a share of messages (spam, with attachments, ...)."""
    ref_rate, cur_rate = k_ref / n_ref, k_cur / n_cur
    delta = abs(cur_rate - ref_rate)
    return CheckResult(
        name,
        group,
        "abs_change",
        statistic=delta,
        threshold=threshold,
        p_value=fisher_p(k_ref, n_ref, k_cur, n_cur),
        effect_exceeded=delta >= threshold,
        reference=ref_rate,
        current=cur_rate,
        details={"test": "fisher", "reference_count": [k_ref, n_ref], "current_count": [k_cur, n_cur]},
    )


def spam_rate_check(
    name: str, group: str, k_ref: int, n_ref: int, k_cur: int, n_cur: int, threshold: float
) -> CheckResult:
    """A two-sided Fisher test and the absolute change of a spam share."""
    return share_check(name, group, k_ref, n_ref, k_cur, n_cur, threshold)


def category_check(
    name: str,
    group: str,
    categories: Sequence[str],
    reference_counts: np.ndarray,
    current_counts: np.ndarray,
    threshold: float,
) -> CheckResult:
    """A categorical distribution (e-mail charsets): Jensen–Shannon distance between the shares, with a
    chi-square test of homogeneity. `categories` names the counts' columns."""
    distance = float(js_distances(reference_counts, current_counts)[0])
    ref_total, cur_total = max(float(reference_counts.sum()), 1.0), max(float(current_counts.sum()), 1.0)
    return CheckResult(
        name,
        group,
        "js_distance",
        statistic=distance,
        threshold=threshold,
        p_value=chi_square_p(reference_counts, current_counts),
        effect_exceeded=distance >= threshold,
        details={
            "test": "chi_square",
            "categories": list(categories),
            "reference_shares": [float(c) / ref_total for c in reference_counts],
            "current_shares": [float(c) / cur_total for c in current_counts],
            "current_count": [int(c) for c in current_counts],
        },
    )


def score_distribution_check(reference_scores: np.ndarray, current_scores: np.ndarray, threshold: float) -> CheckResult:
    edges = np.asarray(SCORE_BINS)
    ref_hist, cur_hist = histogram(reference_scores, edges), histogram(current_scores, edges)
    value = psi(np.asarray(ref_hist), np.asarray(cur_hist))
    return CheckResult(
        "score_distribution",
        "prediction",
        "psi",
        statistic=value,
        threshold=threshold,
        p_value=chi_square_p(np.asarray(ref_hist), np.asarray(cur_hist)),
        effect_exceeded=value >= threshold,
        reference=float(np.mean(reference_scores)),
        current=float(np.mean(current_scores)),
        details={"test": "chi_square", "edges": list(SCORE_BINS), "reference_hist": ref_hist, "current_hist": cur_hist},
    )


def quality_checks(
    reference_confusion: Mapping[str, int],
    reference_metrics: Mapping[str, float],
    truth: Sequence[str],
    predicted: Sequence[str],
    params: MonitorParams,
) -> list[CheckResult]:
    """Precision, recall and F1 on labelled current data against the champion's held-out values.

    Precision and recall fire on a drop beyond their tolerance confirmed by a one-sided Fisher test
    against the reference's counts; F1 has no exact test, so it fires on a drop beyond its tolerance
    only when precision's or recall's test is significant too (decided in `decide`).
    """
    counts = confusion_counts(truth, predicted)
    ref_tp, ref_fp, ref_fn = (
        reference_confusion["caught_spam"],
        reference_confusion["blocked_ham"],
        reference_confusion["missed_spam"],
    )
    tp, fp, fn = counts["caught_spam"], counts["blocked_ham"], counts["missed_spam"]
    results = []
    for metric, k_ref, n_ref, k_cur, n_cur, basis in (
        ("precision", ref_tp, ref_tp + ref_fp, tp, tp + fp, "predicted spam"),
        ("recall", ref_tp, ref_tp + ref_fn, tp, tp + fn, "spam"),
    ):
        name = f"quality:{metric}"
        if n_cur < params.min_class_count:
            results.append(skipped(name, "quality", "drop", f"{n_cur} {basis} < {params.min_class_count}"))
            continue
        reference = float(reference_metrics.get(metric, k_ref / max(n_ref, 1)))
        current = k_cur / n_cur
        tolerance = getattr(params.quality_tolerance, metric)
        results.append(
            CheckResult(
                name,
                "quality",
                "drop",
                statistic=reference - current,
                threshold=tolerance,
                p_value=fisher_p(k_ref, n_ref, k_cur, n_cur, alternative="less"),
                effect_exceeded=reference - current > tolerance,
                reference=reference,
                current=current,
                details={
                    "test": "fisher_one_sided",
                    "current_count": [k_cur, n_cur],
                    "reference_count": [k_ref, n_ref],
                },
            )
        )
    name = "quality:f1"
    if tp + fn < params.min_class_count:
        results.append(skipped(name, "quality", "drop", f"{tp + fn} spam < {params.min_class_count}"))
    else:
        reference = float(reference_metrics.get("f1", f1_from_counts(reference_confusion)))
        current = f1_from_counts(counts)
        results.append(
            CheckResult(
                name,
                "quality",
                "drop",
                statistic=reference - current,
                threshold=params.quality_tolerance.f1,
                effect_exceeded=reference - current > params.quality_tolerance.f1,
                reference=reference,
                current=current,
                details={"test": "confirmed by precision or recall", "confusion": counts},
            )
        )
    return results
