"""The promotion gate: pure rules deciding whether a challenger may replace the champion.

`judge` takes the metrics of both models, computed by the caller on the same held-out split, and
`GateParams` (params.yaml `gate:`), and returns a `GateVerdict` with one row per rule: the metric,
both values, the required value and pass or fail. The challenger is promoted only when every rule
passes. With a champion: the primary metric must improve by at least `min_improvement` (strictly:
equal is not better) and no guard metric may get worse beyond its tolerance. Without one: every
floor must be met. Always: the held-out split must have at least `min_test_rows` messages.

`GateReport` is the record of one gate run (`reports/gate.json`): the verdict plus which versions
were judged on which data. Nothing here reads or writes files or the registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from spamfilter.config import GateParams

# Metrics where a smaller value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"blocked_ham_rate"})
# Metrics are rounded to 6 decimals; comparisons allow for float noise below that.
EPSILON = 1e-9

Decision = Literal["promote", "reject"]
ChampionStatus = Literal["present", "absent", "unloadable", "treated_as_absent"]


class RuleResult(BaseModel):
    """One gate rule: what was compared, both values, the required value and the outcome."""

    model_config = ConfigDict(frozen=True)

    rule: str  # min_test_rows | champion_available | primary | guard | floor
    metric: str | None = None
    challenger: float | None = None
    champion: float | None = None
    required: str  # the condition on the challenger's value, for people: ">= 0.962900"
    passed: bool
    note: str = ""


class GateVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: Decision
    reason: str
    primary_metric: str
    rules: list[RuleResult]

    @property
    def promote(self) -> bool:
        return self.decision == "promote"

    @property
    def failed(self) -> list[RuleResult]:
        return [rule for rule in self.rules if not rule.passed]


class JudgedVersion(BaseModel):
    """A model version the gate scored: which one, and its metrics on the gate's held-out split."""

    version: str
    run_id: str
    alias: str | None = None
    metrics: dict[str, float | None] = {}


class HeldOutSet(BaseModel):
    path: str
    rows: int
    sha256: str


class GateReport(BaseModel):
    """What `spamfilter gate` writes to `reports/gate.json` and `spamfilter promote` acts on."""

    model_config = ConfigDict(extra="forbid")

    registered_model: str
    decision: Decision
    deploy_needed: bool
    reason: str
    challenger: JudgedVersion
    champion: JudgedVersion | None = None
    champion_status: ChampionStatus
    champion_problem: str | None = None
    test_set: HeldOutSet
    primary_metric: str
    rules: list[RuleResult]
    params: GateParams
    evaluated_at: str


def _value(metrics: Mapping[str, float], name: str, whose: str) -> float:
    try:
        return float(metrics[name])
    except KeyError:
        raise ValueError(f"{whose} metrics have no {name!r} (have: {', '.join(sorted(metrics))})") from None


def _usable(*values: float) -> bool:
    return all(not math.isnan(v) for v in values)


def _primary_rule(metric: str, challenger: float, champion: float, margin: float) -> RuleResult:
    required = champion + margin
    passed = _usable(challenger, champion) and challenger - champion > EPSILON and challenger >= required - EPSILON
    note = "" if _usable(challenger, champion) else "not a number"
    if _usable(challenger, champion) and abs(challenger - champion) <= EPSILON:
        note = "equal is not better"
    return RuleResult(
        rule="primary",
        metric=metric,
        challenger=challenger,
        champion=champion,
        required=f">= {required:.6f}" if margin > 0 else f"> {champion:.6f}",
        passed=passed,
        note=note,
    )


def _guard_rule(metric: str, challenger: float, champion: float, tolerance: float) -> RuleResult:
    if metric in LOWER_IS_BETTER:
        limit = champion + tolerance
        passed = challenger <= limit + EPSILON
        required = f"<= {limit:.6f}"
    else:
        limit = champion - tolerance
        passed = challenger >= limit - EPSILON
        required = f">= {limit:.6f}"
    usable = _usable(challenger, champion)
    return RuleResult(
        rule="guard",
        metric=metric,
        challenger=challenger,
        champion=champion,
        required=required,
        passed=usable and passed,
        note="" if usable else "not a number",
    )


def _floor_rule(metric: str, challenger: float, floor: float) -> RuleResult:
    if metric in LOWER_IS_BETTER:
        passed, required = challenger <= floor + EPSILON, f"<= {floor:.6f}"
    else:
        passed, required = challenger >= floor - EPSILON, f">= {floor:.6f}"
    usable = _usable(challenger)
    return RuleResult(
        rule="floor",
        metric=metric,
        challenger=challenger,
        required=required,
        passed=usable and passed,
        note="" if usable else "not a number",
    )


def _describe(rule: RuleResult) -> str:
    if rule.rule == "min_test_rows":
        return f"held-out split has {rule.challenger:.0f} messages, needs {rule.required.removeprefix('>= ')}"
    if rule.rule == "champion_available":
        return f"champion unavailable: {rule.note}"
    values = f"{rule.challenger:.4f}" if rule.challenger is not None else "?"
    if rule.champion is not None:
        values += f" vs champion {rule.champion:.4f}"
    return f"{rule.rule} {rule.metric} {values} (required {rule.required}{'; ' + rule.note if rule.note else ''})"


def judge(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    test_rows: int,
    params: GateParams,
    champion_problem: str | None = None,
) -> GateVerdict:
    """Apply the gate rules. `champion` is None when there is no champion (floors apply instead);
    `champion_problem` says why a champion that exists could not be scored (the gate then rejects)."""
    rules = [
        RuleResult(
            rule="min_test_rows",
            challenger=float(test_rows),
            champion=float(test_rows) if champion is not None else None,
            required=f">= {params.min_test_rows}",
            passed=test_rows >= params.min_test_rows,
        )
    ]
    metric = params.primary_metric
    if champion_problem is not None:
        rules.append(
            RuleResult(
                rule="champion_available",
                required="champion loads (or --treat-missing-champion-as-absent)",
                passed=False,
                note=champion_problem,
            )
        )
    elif champion is not None:
        rules.append(
            _primary_rule(
                metric,
                _value(challenger, metric, "challenger"),
                _value(champion, metric, "champion"),
                params.min_improvement,
            )
        )
        for name, tolerance in params.guards.items():
            rules.append(
                _guard_rule(name, _value(challenger, name, "challenger"), _value(champion, name, "champion"), tolerance)
            )
    else:
        for name, floor in params.floors.items():
            rules.append(_floor_rule(name, _value(challenger, name, "challenger"), floor))

    failed = [rule for rule in rules if not rule.passed]
    if failed:
        reason = "rejected: " + "; ".join(_describe(rule) for rule in failed)
    elif champion is None:
        reason = "no champion yet; the challenger meets every floor"
    else:
        primary = rules[1]
        delta = (primary.challenger or 0.0) - (primary.champion or 0.0)
        reason = (
            f"{metric} {primary.challenger:.4f} beats the champion's {primary.champion:.4f} by {delta:+.4f}; "
            "no guard metric got worse beyond its tolerance"
        )
    return GateVerdict(decision="reject" if failed else "promote", reason=reason, primary_metric=metric, rules=rules)


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    return f"{value:.0f}" if value.is_integer() and value > 1 else f"{value:.4f}"


def render_report(report: GateReport) -> str:
    """The gate verdict as a plain-text table, for the terminal and CI logs."""
    if report.champion is None:
        champion = "no champion"
    elif report.champion_status == "present":
        champion = f"v{report.champion.version} (champion)"
    else:
        champion = f"champion v{report.champion.version} ({report.champion_status.replace('_', ' ')})"
    header = (
        f"gate: {report.registered_model} v{report.challenger.version} (challenger) vs {champion}, "
        f"on {report.test_set.rows} held-out messages ({report.test_set.path})"
    )
    rows = [("rule", "metric", "challenger", "champion", "required", "result")]
    for rule in report.rules:
        rows.append(
            (
                rule.rule,
                rule.metric or "-",
                _cell(rule.challenger),
                _cell(rule.champion),
                rule.required,
                ("pass" if rule.passed else "FAIL") + (f" ({rule.note})" if rule.note else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [header, ""]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    if report.champion_problem and report.champion_status == "treated_as_absent":
        lines.append(f"note: champion could not be loaded ({report.champion_problem}); treated as absent")
    lines += ["", f"decision: {report.decision.upper()} — {report.reason}"]
    return "\n".join(lines)
