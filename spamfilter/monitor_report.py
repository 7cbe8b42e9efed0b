"""Rendering a monitor report (the JSON-ready mapping of `spamfilter.monitor`): a self-contained HTML
page with figures embedded as PNG, the summary table for stdout, and the `GITHUB_OUTPUT` lines.

Pure: every function takes the report mapping and returns text; the caller writes it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

REFERENCE_COLOUR = "#4c72b0"
CURRENT_COLOUR = "#dd8452"
FIRED_COLOUR = "#c44e52"
QUIET_COLOUR = "#55a868"
SKIPPED_COLOUR = "#b0b0b0"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value != 0 and abs(value) < 10**-digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


def check_verdict(check: Mapping[str, Any]) -> str:
    if check.get("skipped"):
        return "skipped"
    return "DRIFT" if check.get("drifted") else "ok"


# --------------------------------------------------------------------------- text outputs


def summary_table(report: Mapping[str, Any]) -> str:
    """A fixed-width table of every check, then the decision and its reasons."""
    lines = []
    window = report.get("window", {})
    lines.append(
        f"window: {window.get('size', 0)} messages ({window.get('with_text', 0)} with text, "
        f"{window.get('labelled', 0)} labelled) from {window.get('source', '?')}"
        + (f"; {window['skipped_rows']} corrupt rows skipped" if window.get("skipped_rows") else "")
    )
    checks = report.get("checks", [])
    if checks:
        header = f"{'check':<28} {'statistic':<18} {'value':>9} {'threshold':>9} {'p_adj':>9}  result"
        lines += [header, "-" * len(header)]
        for check in checks:
            if check.get("skipped"):
                lines.append(
                    f"{check['name']:<28} {check['statistic_name']:<18} {'':>9} {'':>9} {'':>9}  skipped: {check['skipped']}"
                )
                continue
            lines.append(
                f"{check['name']:<28} {check['statistic_name']:<18} {_fmt(check.get('statistic')):>9} "
                f"{_fmt(check.get('threshold')):>9} {_fmt(check.get('p_adjusted')):>9}  {check_verdict(check)}"
            )
    lines.append(f"status: {report.get('status')} — {report.get('message', '')}")
    lines.append(f"retrain_needed={'true' if report.get('retrain_needed') else 'false'}")
    lines.extend(f"  reason: {reason}" for reason in report.get("reasons", []))
    return "\n".join(lines) + "\n"


def github_output(report: Mapping[str, Any]) -> str:
    """Lines for the `GITHUB_OUTPUT` file: the decision, the status and the reasons on one line."""
    reasons = "; ".join(" ".join(str(r).split()) for r in report.get("reasons", []))
    return (
        f"retrain_needed={'true' if report.get('retrain_needed') else 'false'}\n"
        f"monitor_status={report.get('status', 'unknown')}\n"
        f"retrain_reasons={reasons}\n"
    )


# --------------------------------------------------------------------------- figures


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    # Light compression: a few kilobytes more per figure, a third less time to write it.
    figure.savefig(buffer, format="png", dpi=90, pil_kwargs={"compress_level": 1})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def overview_figure(checks: Sequence[Mapping[str, Any]]) -> Figure | None:
    """Each check's effect as a multiple of its threshold: 1 is the line a check must cross."""
    shown = [c for c in checks if not c.get("skipped") and c.get("statistic") is not None and c.get("threshold")]
    if not shown:
        return None
    # ROC AUC starts at 0.5 (a classifier that cannot tell the samples apart), the others at 0.
    baselines = [0.5 if c["statistic_name"] == "roc_auc" else 0.0 for c in shown]
    ratios = [
        max((float(c["statistic"]) - base) / (float(c["threshold"]) - base), 0.0)
        for c, base in zip(shown, baselines, strict=True)
    ]
    colours = [FIRED_COLOUR if c.get("drifted") else QUIET_COLOUR for c in shown]
    figure = Figure(figsize=(7.5, 0.35 * len(shown) + 1.2))
    ax = figure.add_subplot()
    positions = np.arange(len(shown))[::-1]
    ax.barh(positions, ratios, color=colours)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_yticks(positions, labels=[c["name"] for c in shown])
    ax.set_xlabel("effect as a multiple of its threshold")
    ax.set_title("Checks (red: fired; a check fires past 1 if its corrected p-value < alpha)", fontsize=10)
    figure.tight_layout()
    return figure


def _bars(ax: Any, edges: Sequence[float], reference: Sequence[int], current: Sequence[int]) -> None:
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref = ref / max(ref.sum(), 1.0)
    cur = cur / max(cur.sum(), 1.0)
    positions = np.arange(len(ref))
    ax.bar(positions - 0.2, ref, width=0.4, color=REFERENCE_COLOUR, label="reference")
    ax.bar(positions + 0.2, cur, width=0.4, color=CURRENT_COLOUR, label="current")
    step = max(1, len(ref) // 6)
    ticks = positions[::step]
    ax.set_xticks(ticks, labels=[f"{edges[i]:.3g}" for i in ticks], fontsize=7)
    ax.set_ylabel("share", fontsize=8)


def _overlaid(ax: Any, edges: Sequence[float], reference: Sequence[int], current: Sequence[int]) -> None:
    """Reference as filled bars, current as an outline, on the value axis."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref = ref / max(ref.sum(), 1.0)
    cur = cur / max(cur.sum(), 1.0)
    left = np.asarray(edges[:-1], dtype=float)
    widths = np.diff(np.asarray(edges, dtype=float))
    ax.bar(left, ref, width=widths, align="edge", color=REFERENCE_COLOUR, alpha=0.55, label="reference")
    ax.stairs(cur, edges, color=CURRENT_COLOUR, linewidth=2, label="current")
    ax.tick_params(labelsize=7)
    ax.set_ylabel("share", fontsize=8)


def descriptor_figure(checks: Sequence[Mapping[str, Any]]) -> Figure | None:
    shown = [c for c in checks if c["name"].startswith("descriptor:") and c.get("details", {}).get("edges")]
    if not shown:
        return None
    columns = min(3, len(shown))
    rows = (len(shown) + columns - 1) // columns
    figure = Figure(figsize=(3.6 * columns, 2.6 * rows))
    for i, check in enumerate(shown):
        ax = figure.add_subplot(rows, columns, i + 1)
        details = check["details"]
        _overlaid(ax, details["edges"], details["reference_hist"], details["current_hist"])
        name = check["name"].removeprefix("descriptor:")
        ax.set_title(f"{name}{'  (DRIFT)' if check.get('drifted') else ''}", fontsize=9)
        if i == 0:
            ax.legend(fontsize=7)
    figure.suptitle("Text descriptors: share of messages per bin (last bin: the top 1% too)", fontsize=10)
    figure.tight_layout()
    return figure


def score_figure(check: Mapping[str, Any] | None) -> Figure | None:
    if not check or check.get("skipped"):
        return None
    details = check["details"]
    figure = Figure(figsize=(7, 3.2))
    ax = figure.add_subplot()
    _bars(ax, details["edges"], details["reference_hist"], details["current_hist"])
    ax.set_xlabel("P(spam) bin (lower edge)")
    ax.set_title(f"Score distribution: PSI {_fmt(check.get('statistic'))}")
    ax.legend()
    figure.tight_layout()
    return figure


def vocabulary_figure(check: Mapping[str, Any] | None) -> Figure | None:
    if not check or check.get("skipped") or not check.get("details", {}).get("moved_terms"):
        return None
    moved = check["details"]["moved_terms"]
    figure = Figure(figsize=(7, 0.32 * len(moved) + 1.4))
    ax = figure.add_subplot()
    positions = np.arange(len(moved))[::-1]
    ax.barh(
        positions + 0.2, [m["reference_share"] for m in moved], height=0.4, color=REFERENCE_COLOUR, label="reference"
    )
    ax.barh(positions - 0.2, [m["current_share"] for m in moved], height=0.4, color=CURRENT_COLOUR, label="current")
    ax.set_yticks(positions, labels=[m["term"] + (" (new)" if m.get("new") else "") for m in moved])
    ax.set_xlabel("share of messages containing the term (stemmed)")
    ax.set_title("Terms that moved most")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def quality_figure(checks: Sequence[Mapping[str, Any]]) -> Figure | None:
    shown = [c for c in checks if c["group"] == "quality" and not c.get("skipped")]
    if not shown:
        return None
    figure = Figure(figsize=(5.5, 3.2))
    ax = figure.add_subplot()
    positions = np.arange(len(shown))
    ax.bar(
        positions - 0.2, [c["reference"] for c in shown], width=0.4, color=REFERENCE_COLOUR, label="champion (held-out)"
    )
    ax.bar(positions + 0.2, [c["current"] for c in shown], width=0.4, color=CURRENT_COLOUR, label="current (labelled)")
    ax.errorbar(
        positions - 0.2,
        [c["reference"] for c in shown],
        yerr=[[c["threshold"] for c in shown], [0] * len(shown)],
        fmt="none",
        ecolor="black",
        capsize=4,
        label="tolerance",
    )
    ax.set_xticks(positions, labels=[c["name"].removeprefix("quality:") for c in shown])
    ax.set_ylim(0, 1.05)
    ax.set_title("Quality on labelled data")
    ax.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- HTML

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
.banner { padding: 0.8em 1.2em; border-radius: 6px; font-size: 1.2em; }
.retrain { background: #f8d7da; } .ok { background: #d4edda; } .insufficient { background: #fff3cd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drift td { background: #fbe3e4; } tr.skipped td { color: #888; }
img { max-width: 100%; } .note { color: #555; font-size: 0.9em; }
"""


def _row(check: Mapping[str, Any]) -> str:
    verdict = check_verdict(check)
    css = {"DRIFT": "drift", "skipped": "skipped"}.get(verdict, "")
    cells = [
        html.escape(check["name"]),
        html.escape(check["group"]),
        html.escape(check["statistic_name"]),
    ]
    numbers = [check.get(k) for k in ("reference", "current", "statistic", "threshold", "p_value", "p_adjusted")]
    note = check.get("skipped") or ""
    return (
        f'<tr class="{css}">'
        + "".join(f"<td>{c}</td>" for c in cells)
        + "".join(f'<td class="num">{html.escape(_fmt(n))}</td>' for n in numbers)
        + f"<td>{html.escape(verdict)}</td><td>{html.escape(str(note))}</td></tr>"
    )


def render_html(report: Mapping[str, Any]) -> str:
    """The whole report as one HTML page (figures inline, no external files)."""
    checks = report.get("checks", [])
    by_name = {c["name"]: c for c in checks}
    status = report.get("status", "unknown")
    retrain = bool(report.get("retrain_needed"))
    banner_class = "retrain" if retrain else ("insufficient" if status == "insufficient_data" else "ok")
    window = report.get("window", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Spam filter monitor report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Spam filter monitor report</h1>",
        f'<p class="banner {banner_class}"><b>retrain_needed = {str(retrain).lower()}</b> · status: '
        f"{html.escape(str(status))} · {html.escape(str(report.get('message', '')))}</p>",
    ]
    if report.get("reasons"):
        parts.append("<h2>Reasons</h2><ul>")
        parts += [f"<li>{html.escape(str(r))}</li>" for r in report["reasons"]]
        parts.append("</ul>")
    parts.append("<h2>Window</h2><table>")
    for key, value in window.items():
        parts.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_fmt(value))}</td></tr>")
    reference = report.get("reference", {})
    for key, value in reference.items():
        if not isinstance(value, dict | list):
            parts.append(f"<tr><th>reference {html.escape(str(key))}</th><td>{html.escape(_fmt(value))}</td></tr>")
    parts.append(f"<tr><th>generated at</th><td>{html.escape(str(report.get('generated_at', '')))}</td></tr></table>")

    if checks:
        parts.append("<h2>Checks</h2><table><tr>")
        parts += [
            f"<th>{h}</th>"
            for h in (
                "check",
                "group",
                "statistic",
                "reference",
                "current",
                "value",
                "threshold",
                "p",
                "p (corrected)",
                "result",
                "note",
            )
        ]
        parts.append("</tr>")
        parts += [_row(c) for c in checks]
        parts.append("</table>")
        params = report.get("params", {})
        parts.append(
            f'<p class="note">A check fires when its effect reaches its threshold <i>and</i> its p-value, '
            f"corrected with {html.escape(str(params.get('correction', '?')))} over all tests, is below alpha = "
            f"{html.escape(_fmt(params.get('alpha')))}. Reference and current columns show means (descriptors, "
            "scores) or rates.</p>"
        )
    figures = [
        ("Overview", overview_figure(checks)),
        ("Text descriptors", descriptor_figure(checks)),
        ("Prediction drift", score_figure(by_name.get("score_distribution"))),
        ("Vocabulary drift", vocabulary_figure(by_name.get("vocabulary"))),
        ("Quality decay", quality_figure(checks)),
    ]
    for title, figure in figures:
        if figure is not None:
            parts.append(f"<h2>{title}</h2><img alt='{title}' src='data:image/png;base64,{_png(figure)}'>")
    vocabulary = by_name.get("vocabulary")
    if vocabulary and vocabulary.get("details", {}).get("unseen_terms"):
        parts.append(
            "<h3>Most frequent terms never seen in training</h3><table><tr><th>term</th><th>share of messages</th></tr>"
        )
        parts += [
            f"<tr><td>{html.escape(u['term'])}</td><td class='num'>{_fmt(u['current_share'])}</td></tr>"
            for u in vocabulary["details"]["unseen_terms"]
        ]
        parts.append("</table>")
    domain = by_name.get("domain_classifier")
    if domain and domain.get("details", {}).get("current_markers"):
        markers = ", ".join(html.escape(m) for m in domain["details"]["current_markers"])
        parts.append(f"<p>Terms the domain classifier uses to recognise current messages: {markers}</p>")
    parts.append("</body></html>\n")
    return "".join(parts)
