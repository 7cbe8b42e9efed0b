"""Rendering a monitor report (the JSON-ready mapping of `spamfilter.monitoring.monitor`): a
self-contained HTML page with figures inline as SVG, the summary table for stdout, and the
`GITHUB_OUTPUT` lines. Each names the channel the report judged (`report["channel"]`).

Pure: every function takes the report mapping and returns text; the caller writes it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spamfilter.monitoring import svgchart

REFERENCE_COLOUR = "#4c72b0"
CURRENT_COLOUR = "#dd8452"
FIRED_COLOUR = "#c44e52"
QUIET_COLOUR = "#55a868"
SKIPPED_COLOUR = "#b0b0b0"
CHANNEL_NAMES = {"sms": "SMS", "email": "e-mail"}
# The channel whose step outputs keep their plain names only (`retrain_needed`, ...): it predates
# channels, and workflows read those names. Every other channel adds `<name>_<channel>` lines.
UNSUFFIXED_CHANNEL = "sms"


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


def channel_name(report: Mapping[str, Any]) -> str | None:
    """The judged channel as people write it (SMS, e-mail); None for a report that names none."""
    channel = report.get("channel")
    return None if channel is None else CHANNEL_NAMES.get(str(channel), str(channel))


def summary_table(report: Mapping[str, Any]) -> str:
    """A fixed-width table of every check, then the decision and its reasons."""
    lines = []
    if report.get("channel") is not None:
        lines.append(f"channel: {report['channel']}")
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
    """Lines for the `GITHUB_OUTPUT` file: the decision, the status and the reasons on one line.

    The plain names (`retrain_needed`, `monitor_status`, `retrain_reasons`) carry this run's decision,
    whichever channel it judged, so a workflow step that monitors one channel reads them as before.
    A channel other than `UNSUFFIXED_CHANNEL` repeats them with its name (`retrain_needed_email`, ...),
    so a step that monitors several channels one after another keeps each one's decision."""
    reasons = "; ".join(" ".join(str(r).split()) for r in report.get("reasons", []))
    values = (
        ("retrain_needed", "true" if report.get("retrain_needed") else "false"),
        ("monitor_status", str(report.get("status", "unknown"))),
        ("retrain_reasons", reasons),
    )
    lines = [f"{name}={value}\n" for name, value in values]
    channel = report.get("channel")
    if channel is not None and channel != UNSUFFIXED_CHANNEL:
        lines += [f"{name}_{channel}={value}\n" for name, value in values]
    return "".join(lines)


# --------------------------------------------------------------------------- figures


def overview_figure(checks: Sequence[Mapping[str, Any]]) -> str | None:
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
    return svgchart.hbar_chart(
        [c["name"] for c in shown],
        [svgchart.Series("effect / threshold", QUIET_COLOUR, ratios)],
        "Checks (red: fired; a check fires past 1 if its corrected p-value < alpha)",
        "effect as a multiple of its threshold",
        marker=1.0,
        bar_colours=[FIRED_COLOUR if c.get("drifted") else QUIET_COLOUR for c in shown],
    )


def descriptor_figure(checks: Sequence[Mapping[str, Any]]) -> str | None:
    shown = [c for c in checks if c["name"].startswith("descriptor:") and c.get("details", {}).get("edges")]
    if not shown:
        return None
    panels = []
    for check in shown:
        details = check["details"]
        name = check["name"].removeprefix("descriptor:")
        if details.get("scale"):
            name = f"{name} ({details['scale']})"
        panels.append(
            svgchart.histogram(
                details["edges"],
                details["reference_hist"],
                details["current_hist"],
                f"{name}{'  (DRIFT)' if check.get('drifted') else ''}",
            )
        )
    legend = (
        "<p class='note'>Share of messages per bin: reference filled (blue), current outlined (orange); "
        "the last bin holds the top 1% too.</p>"
    )
    return svgchart.grid(panels, columns=min(3, len(panels))) + legend


def score_figure(check: Mapping[str, Any] | None) -> str | None:
    if not check or check.get("skipped"):
        return None
    details = check["details"]
    edges = details["edges"]
    ref = np.asarray(details["reference_hist"], dtype=float)
    cur = np.asarray(details["current_hist"], dtype=float)
    return svgchart.vbar_chart(
        [f"{edges[i]:.3g}" for i in range(len(ref))],
        [
            svgchart.Series("reference", REFERENCE_COLOUR, (ref / max(ref.sum(), 1.0)).tolist()),
            svgchart.Series("current", CURRENT_COLOUR, (cur / max(cur.sum(), 1.0)).tolist()),
        ],
        f"Score distribution: PSI {_fmt(check.get('statistic'))} (bins by lower edge of P(spam))",
        "share",
        width=720,
    )


def vocabulary_figure(check: Mapping[str, Any] | None) -> str | None:
    if not check or check.get("skipped") or not check.get("details", {}).get("moved_terms"):
        return None
    moved = check["details"]["moved_terms"]
    return svgchart.hbar_chart(
        [m["term"] + (" (new)" if m.get("new") else "") for m in moved],
        [
            svgchart.Series("reference", REFERENCE_COLOUR, [m["reference_share"] for m in moved]),
            svgchart.Series("current", CURRENT_COLOUR, [m["current_share"] for m in moved]),
        ],
        "Terms that moved most",
        "share of messages containing the term (stemmed)",
    )


def charset_figure(check: Mapping[str, Any] | None) -> str | None:
    """The e-mail charset mix: each category's share of messages, reference against current."""
    if not check or check.get("skipped") or not check.get("details", {}).get("categories"):
        return None
    details = check["details"]
    return svgchart.hbar_chart(
        list(details["categories"]),
        [
            svgchart.Series("reference", REFERENCE_COLOUR, details["reference_shares"]),
            svgchart.Series("current", CURRENT_COLOUR, details["current_shares"]),
        ],
        f"Charset mix: JS distance {_fmt(check.get('statistic'))}",
        "share of messages (main charset: the first text part's)",
    )


def _unseen_domains_table(check: Mapping[str, Any] | None, title: str) -> str | None:
    unseen = (check or {}).get("details", {}).get("unseen")
    if not unseen:
        return None
    rows = "".join(
        f"<tr><td>{html.escape(str(u['domain']))}</td><td class='num'>{_fmt(u['current_share'])}</td></tr>"
        for u in unseen
    )
    return f"<h3>{html.escape(title)}</h3><table><tr><th>domain</th><th>share of messages</th></tr>{rows}</table>"


def quality_figure(checks: Sequence[Mapping[str, Any]]) -> str | None:
    shown = [c for c in checks if c["group"] == "quality" and not c.get("skipped")]
    if not shown:
        return None
    return svgchart.vbar_chart(
        [c["name"].removeprefix("quality:") for c in shown],
        [
            svgchart.Series("champion (held-out)", REFERENCE_COLOUR, [c["reference"] for c in shown]),
            svgchart.Series("current (labelled)", CURRENT_COLOUR, [c["current"] for c in shown]),
        ],
        "Quality on labelled data (whisker: the tolerance below the champion)",
        "value",
        y_max=1.0,
        below=[c["threshold"] for c in shown],
    )


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
    channel = channel_name(report)
    title = "Spam filter monitor report" + (f": {channel} channel" if channel else "")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="banner {banner_class}"><b>retrain_needed = {str(retrain).lower()}</b> · status: '
        f"{html.escape(str(status))} · {html.escape(str(report.get('message', '')))}</p>",
    ]
    if report.get("reasons"):
        parts.append("<h2>Reasons</h2><ul>")
        parts += [f"<li>{html.escape(str(r))}</li>" for r in report["reasons"]]
        parts.append("</ul>")
    parts.append("<h2>Window</h2><table>")
    if report.get("channel") is not None:
        parts.append(f"<tr><th>channel</th><td>{html.escape(str(report['channel']))}</td></tr>")
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
        ("Charset mix", charset_figure(by_name.get("charset_mix"))),
        ("Quality decay", quality_figure(checks)),
    ]
    for title, figure in figures:
        if figure is not None:
            parts.append(f"<h2>{title}</h2><figure>{figure}</figure>")
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
    for name, heading in (
        ("unseen_sender_domain", "Most frequent sender domains never seen in training"),
        ("unseen_url_domain", "Most frequent link domains never seen in training"),
    ):
        table = _unseen_domains_table(by_name.get(name), heading)
        if table is not None:
            parts.append(table)
    domain = by_name.get("domain_classifier")
    if domain and domain.get("details", {}).get("current_markers"):
        markers = ", ".join(html.escape(m) for m in domain["details"]["current_markers"])
        parts.append(f"<p>Terms the domain classifier uses to recognise current messages: {markers}</p>")
    parts.append("</body></html>\n")
    return "".join(parts)
