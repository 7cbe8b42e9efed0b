"""Drift statistics and the retrain decision: pure functions over arrays, texts and a reference profile.

Every check yields a `CheckResult` with an effect size and, where a valid test exists, a p-value.
A check fires only when both hold: the effect is at least its practical threshold from
`params.yaml: monitor:` (so a huge window does not alarm on a negligible shift), and its p-value,
corrected for running all the tests at once, is below `monitor.alpha` (so a small window does not
alarm on noise). Checks with too little data are skipped, with the reason, never guessed.

Groups of checks (the retrain decision can be limited to some with `monitor.retrain_on`):
  data        text descriptors: length, tokens, URL/number/currency/uppercase shares, OOV rate (KS)
  vocabulary  Jensen–Shannon distance between term distributions beyond chance (permutation test)
  domain      a classifier told to separate reference from current texts (ROC AUC, Mann–Whitney)
  prediction  predicted spam rate (Fisher) and score distribution (PSI, chi-square)
  label       true spam rate in labelled data (Fisher)
  quality     precision and recall (one-sided Fisher) and F1 against the champion's, with tolerances
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse
from scipy import stats
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from spamfilter.config import MonitorParams
from spamfilter.text import EMAIL_TOKEN, MONEY_TOKEN, NUMBER_TOKEN, PHONE_TOKEN, URL_TOKEN, WordAnalyzer, normalize

DESCRIPTORS = ("length", "tokens", "url_share", "number_share", "currency_share", "uppercase_share", "oov_rate")
# Descriptors a prediction-log row without its text still has (`text_length`).
LENGTH_ONLY = ("length",)
GROUPS = ("data", "vocabulary", "domain", "prediction", "label", "quality")
QUALITY_METRICS = ("precision", "recall", "f1")
SCORE_BINS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95, 0.98, 1.0)
_PSI_EPSILON = 1e-4
_PLACEHOLDERS = {URL_TOKEN, EMAIL_TOKEN, PHONE_TOKEN, MONEY_TOKEN, NUMBER_TOKEN}


# --------------------------------------------------------------------------- text descriptors


@dataclass
class TokenizedTexts:
    """Per message: its word terms (stems and placeholders, in order) and the raw text's letter counts."""

    terms: list[list[str]]
    lengths: np.ndarray
    upper: np.ndarray
    letters: np.ndarray


def tokenize(texts: Sequence[str], analyzer: WordAnalyzer | None = None) -> TokenizedTexts:
    """Normalise and stem each text the way the model does (the one preprocessing path)."""
    analyzer = analyzer or WordAnalyzer("porter")
    # Traffic repeats itself (one spam sent to thousands, "ok", "call me"): work once per distinct text.
    distinct: dict[str, list[str]] = {}
    for text in texts:
        if text not in distinct:
            distinct[text] = [t for t in analyzer.tokens(normalize(text)) if t[0].isalpha()]
    terms = [distinct[text] for text in texts]
    lengths = np.fromiter(map(len, texts), dtype=float, count=len(texts))
    upper = np.fromiter((sum(map(str.isupper, t)) for t in texts), dtype=float, count=len(texts))
    letters = np.fromiter((sum(map(str.isalpha, t)) for t in texts), dtype=float, count=len(texts))
    return TokenizedTexts(terms, lengths, upper, letters)


def document_frequencies(terms: Iterable[Sequence[str]]) -> Counter[str]:
    """term → number of messages containing it."""
    counts: Counter[str] = Counter()
    for message_terms in terms:
        counts.update(set(message_terms))
    return counts


def descriptors(
    tokenized: TokenizedTexts, vocabulary: Mapping[str, int], leave_one_out: bool = False
) -> dict[str, np.ndarray]:
    """Per-message descriptors.

    `vocabulary` maps the reference's terms to their document frequency. A word is out of
    vocabulary when the reference never saw it; for the reference's own messages
    (`leave_one_out`), when only that message has it — what a new message would see, without the
    bias of a vocabulary that contains the message itself.
    """
    n = len(tokenized.terms)
    out = {name: np.zeros(n) for name in DESCRIPTORS}
    out["length"] = tokenized.lengths.copy()
    seen_at_least = 2 if leave_one_out else 1
    for i, message_terms in enumerate(tokenized.terms):
        count = len(message_terms)
        out["tokens"][i] = count
        if not count:
            continue
        placeholders = Counter(t for t in message_terms if t in _PLACEHOLDERS)
        out["url_share"][i] = (placeholders[URL_TOKEN] + placeholders[EMAIL_TOKEN]) / count
        out["number_share"][i] = (placeholders[NUMBER_TOKEN] + placeholders[PHONE_TOKEN]) / count
        out["currency_share"][i] = placeholders[MONEY_TOKEN] / count
        words = [t for t in message_terms if t not in _PLACEHOLDERS]
        if words:
            out["oov_rate"][i] = sum(vocabulary.get(w, 0) < seen_at_least for w in words) / len(words)
    out["uppercase_share"] = np.divide(tokenized.upper, tokenized.letters, out=np.zeros(n), where=tokenized.letters > 0)
    return out


# --------------------------------------------------------------------------- statistics


def normed_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein distance in units of the reference's standard deviation (Evidently's measure)."""
    scale = float(np.std(reference))
    if scale == 0.0:
        scale = float(np.mean(np.abs(reference))) or 1.0
    return float(stats.wasserstein_distance(reference, current)) / scale


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index between two binned count vectors (ε-smoothed shares)."""
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    ref = np.maximum(ref / max(ref.sum(), 1.0), _PSI_EPSILON)
    cur = np.maximum(cur / max(cur.sum(), 1.0), _PSI_EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def chi_square_p(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Chi-square test of homogeneity of two binned samples (empty bins dropped)."""
    table = np.vstack([reference_counts, current_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def fisher_p(k_ref: int, n_ref: int, k_cur: int, n_cur: int, alternative: str = "two-sided") -> float:
    """Fisher's exact test of two proportions; `less` asks whether the current one is lower."""
    table = [[k_cur, n_cur - k_cur], [k_ref, n_ref - k_ref]]
    return float(stats.fisher_exact(table, alternative=alternative).pvalue)


def js_distances(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon distance (base 2, in [0, 1]) between the rows of two count matrices."""
    p = np.atleast_2d(np.asarray(p, dtype=float))
    q = np.atleast_2d(np.asarray(q, dtype=float))
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
    q = q / np.maximum(q.sum(axis=1, keepdims=True), 1e-12)
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(a / np.where(b > 0, b, 1.0)), 0.0)
        return terms.sum(axis=1)

    return np.sqrt(np.maximum((kl(p, m) + kl(q, m)) / 2, 0.0))


def adjust_p_values(p_values: Sequence[float], method: str) -> list[float]:
    """Correct p-values for running many tests at once: holm, bonferroni, bh (Benjamini–Hochberg) or none."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0 or method == "none":
        return [float(x) for x in p]
    if method == "bonferroni":
        return [float(x) for x in np.minimum(p * m, 1.0)]
    if method == "bh":
        return [float(x) for x in stats.false_discovery_control(p, method="bh")]
    if method == "holm":
        order = np.argsort(p)
        adjusted = np.empty(m)
        running = 0.0
        for rank, index in enumerate(order):
            running = max(running, min((m - rank) * p[index], 1.0))
            adjusted[index] = running
        return [float(x) for x in adjusted]
    raise ValueError(f"unknown correction {method!r}: expected holm, bonferroni, bh or none")


def histogram(values: np.ndarray, edges: np.ndarray) -> list[int]:
    clipped = np.clip(values, edges[0], edges[-1])
    return [int(x) for x in np.histogram(clipped, bins=edges)[0]]


def display_edges(values: np.ndarray, bins: int = 20) -> np.ndarray:
    """Equal-width bins from the minimum to the 99th percentile (the rest falls in the last bin):
    for the report's histograms, where a long tail would squash the bulk into one bar."""
    low, high = float(np.min(values)), float(np.quantile(values, 0.99))
    if high <= low:
        high = float(np.max(values))
    if high <= low:
        high = low + 1.0
    return np.linspace(low, high, bins + 1)


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
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
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
    features = vectorizer.fit_transform([normalize(t) for t in texts])
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


def spam_rate_check(
    name: str, group: str, k_ref: int, n_ref: int, k_cur: int, n_cur: int, threshold: float
) -> CheckResult:
    """A two-sided Fisher test and the absolute change of a spam share."""
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


def confusion(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, int]:
    pairs = Counter(zip(truth, predicted, strict=True))
    return {
        "true_ham": pairs[("ham", "ham")],
        "blocked_ham": pairs[("ham", "spam")],
        "missed_spam": pairs[("spam", "ham")],
        "caught_spam": pairs[("spam", "spam")],
    }


def _f1(counts: Mapping[str, int]) -> float:
    tp, fp, fn = counts["caught_spam"], counts["blocked_ham"], counts["missed_spam"]
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


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
    counts = confusion(truth, predicted)
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
        reference = float(reference_metrics.get("f1", _f1(reference_confusion)))
        current = _f1(counts)
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


# --------------------------------------------------------------------------- the run


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
            "window": _jsonable(self.window),
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
    for check, adjusted in zip(tested, adjust_p_values([c.p_value for c in tested], params.correction), strict=True):
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
