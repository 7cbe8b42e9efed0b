"""The statistics behind the drift checks: distances, PSI, exact and asymptotic tests, and the
multiple-testing corrections. Pure functions over arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

_PSI_EPSILON = 1e-4


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
        return np.asarray(terms.sum(axis=1), dtype=float)

    return np.asarray(np.sqrt(np.maximum((kl(p, m) + kl(q, m)) / 2, 0.0)), dtype=float)


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
