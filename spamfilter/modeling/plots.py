"""Evaluation figures as matplotlib `Figure`s (no pyplot, so no global backend state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from spamfilter.labels import LABELS


def roc_figure(points: Sequence[Mapping[str, float]], auc: float) -> Figure:
    fig = Figure(figsize=(5, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot([p["fpr"] for p in points], [p["tpr"] for p in points], label=f"ROC AUC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="False positive rate (blocked ham)", ylabel="True positive rate (spam caught)", title="ROC curve")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def pr_figure(points: Sequence[Mapping[str, float]], auc: float) -> Figure:
    fig = Figure(figsize=(5, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot([p["recall"] for p in points], [p["precision"] for p in points], label=f"PR AUC = {auc:.4f}")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def confusion_figure(counts: Mapping[str, int]) -> Figure:
    grid = [[counts["true_ham"], counts["blocked_ham"]], [counts["missed_spam"], counts["caught_spam"]]]
    fig = Figure(figsize=(4.5, 4), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="Blues")
    for row in range(2):
        for col in range(2):
            ax.text(col, row, str(grid[row][col]), ha="center", va="center", fontsize=14)
    ax.set_xticks([0, 1], labels=list(LABELS))
    ax.set_yticks([0, 1], labels=list(LABELS))
    ax.set(xlabel="Predicted", ylabel="Actual", title="Confusion matrix")
    fig.tight_layout()
    return fig
