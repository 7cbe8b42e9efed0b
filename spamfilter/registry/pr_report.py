"""The pull-request report: what a change does to the model, in Markdown for a PR comment.

`build_report` renders the output of `dvc metrics diff --all --json` and `dvc params diff --json`
against the base branch, the evaluation plots (image paths, which CML uploads) and the gate's
verdict of this branch's model against the base's champion. Pure: the `spamfilter report`
command runs DVC, scores the champion and writes the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spamfilter.registry.gate import GateVerdict


@dataclass(frozen=True)
class MetricChange:
    path: str
    name: str
    old: Any
    new: Any
    diff: float | None

    @property
    def changed(self) -> bool:
        if self.old is None or self.new is None:
            return bool(self.old != self.new)
        return self.diff is not None and not math.isclose(float(self.diff), 0.0, abs_tol=1e-12)


@dataclass(frozen=True)
class ParamChange:
    path: str
    name: str
    old: Any
    new: Any


@dataclass(frozen=True)
class GateSection:
    """The gate's verdict of this branch's model (`verdict`), or why there is none (`unavailable`)."""

    champion: str  # "v3 (champion of spam-classifier)", for people
    verdict: GateVerdict | None = None
    unavailable: str | None = None


@dataclass(frozen=True)
class ChannelSection:
    """One channel's part of the report: its plot images and its gate verdict."""

    channel: str
    plots: Sequence[str]  # image paths relative to where the report is written
    gate: GateSection | None


def metric_changes(metrics_diff: Mapping[str, Any]) -> list[MetricChange]:
    """Rows of `dvc metrics diff --json` ({path: {metric: {old, new, diff}}}), in file order."""
    rows = []
    for path, metrics in metrics_diff.items():
        for name, given in (metrics or {}).items():
            values = given or {}
            diff = values.get("diff")
            rows.append(
                MetricChange(
                    path=path,
                    name=name,
                    old=values.get("old"),
                    new=values.get("new"),
                    diff=float(diff) if isinstance(diff, int | float) else None,
                )
            )
    return rows


def changed_metrics(metrics_diff: Mapping[str, Any]) -> list[str]:
    """Names of the metrics whose value differs from the base."""
    return [row.name for row in metric_changes(metrics_diff) if row.changed]


def param_changes(params_diff: Mapping[str, Any]) -> list[ParamChange]:
    """Rows of `dvc params diff --json` ({path: {param: {old, new}}}): only changed params."""
    return [
        ParamChange(path=path, name=name, old=(values or {}).get("old"), new=(values or {}).get("new"))
        for path, params in params_diff.items()
        for name, values in (params or {}).items()
    ]


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def _signed(diff: float | None) -> str:
    return "—" if diff is None else f"{diff:+.4f}"


def _metrics_section(metrics_diff: Mapping[str, Any], base: str) -> list[str]:
    rows = metric_changes(metrics_diff)
    if not rows:
        return ["### Metrics", "", f"No metrics to compare with `{base}`.", ""]
    changed = [row.name for row in rows if row.changed]
    summary = (
        f"Changed against `{base}`: {', '.join(f'**{name}**' for name in changed)}."
        if changed
        else f"No metric changed against `{base}`."
    )
    lines = [
        "### Metrics",
        "",
        summary,
        "",
        f"| file | metric | `{base}` | this branch | change |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        name = f"**{row.name}**" if row.changed else row.name
        lines.append(f"| {row.path} | {name} | {_value(row.old)} | {_value(row.new)} | {_signed(row.diff)} |")
    return [*lines, ""]


def _params_section(params_diff: Mapping[str, Any], base: str) -> list[str]:
    rows = param_changes(params_diff)
    if not rows:
        return ["### Params", "", f"No param changed against `{base}`.", ""]
    lines = ["### Params", "", f"| file | param | `{base}` | this branch |", "|---|---|---|---|"]
    lines += [f"| {row.path} | {row.name} | {_value(row.old)} | {_value(row.new)} |" for row in rows]
    return [*lines, ""]


def _gate_section(gate: GateSection | None, channel: str) -> list[str]:
    lines = [f"### Gate: {channel}", ""]
    if gate is None:
        return [*lines, "Not judged: no champion was given (`spamfilter report --champion-dir DIR`).", ""]
    if gate.verdict is None:
        return [*lines, f"Not judged against {gate.champion}: {gate.unavailable or 'unknown reason'}.", ""]
    verdict = gate.verdict
    lines += [
        f"**{verdict.decision.upper()}** against {gate.champion}: {verdict.reason}",
        "",
        "| rule | metric | this branch | champion | required | result |",
        "|---|---|---|---|---|---|",
    ]
    for rule in verdict.rules:
        result = ("pass" if rule.passed else "**FAIL**") + (f" ({rule.note})" if rule.note else "")
        lines.append(
            f"| {rule.rule} | {rule.metric or '—'} | {_value(rule.challenger)} | {_value(rule.champion)} "
            f"| {_value(rule.required)} | {result} |"
        )
    return [*lines, ""]


def _plots_section(section: ChannelSection) -> list[str]:
    lines = [f"### Plots: {section.channel} (this branch, held-out split)", ""]
    if section.plots:
        lines += [f"![{section.channel} {path.rsplit('/', 1)[-1].rsplit('.', 1)[0]}]({path})" for path in section.plots]
    else:
        lines.append("No plot images found; run `dvc repro`.")
    return [*lines, ""]


def build_report(
    metrics_diff: Mapping[str, Any],
    params_diff: Mapping[str, Any],
    channels: Sequence[ChannelSection],
    base: str,
    head: str = "",
) -> str:
    """The whole report: each channel's gate verdict, the metrics and params diff of every channel,
    then each channel's plots."""
    title = f"## spamfilter: this branch{f' ({head})' if head else ''} against `{base}`"
    lines = [title, ""]
    for section in channels:
        lines += _gate_section(section.gate, section.channel)
    lines += _metrics_section(metrics_diff, base)
    lines += _params_section(params_diff, base)
    for section in channels:
        lines += _plots_section(section)
    return "\n".join(lines).rstrip() + "\n"
