"""The promotion audit trail: pure helpers over the records `spamfilter.registry` keeps in the
model registry (one registered-model tag per promotion or rollback, holding a `PromotionRecord` as
JSON), so everyone using the registry sees the same history."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Action = Literal["promote", "rollback"]


class PromotionRecord(BaseModel):
    """One change of the `champion` alias: to which version, from which, by whom, when and why."""

    model_config = ConfigDict(extra="allow")

    seq: int
    action: Action
    version: str
    previous: str | None
    at: str
    actor: str
    reason: str
    # For promotions: the gate's decision, primary metric and both values, the rules that ran.
    gate: dict[str, Any] | None = None


def actor_from_env(env: Mapping[str, str]) -> str:
    """Who is acting: the CI actor and run when in GitHub Actions, else user@host."""
    if env.get("GITHUB_ACTOR"):
        run = env.get("GITHUB_RUN_ID", "")
        repo = env.get("GITHUB_REPOSITORY", "")
        where = f" ({repo} run {run})" if run else ""
        return f"github:{env['GITHUB_ACTOR']}{where}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = env.get("USER", "unknown")
    return f"{user}@{socket.gethostname()}"


def gate_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a gate report worth keeping with a promotion: decision, versions, rule outcomes."""
    champion = report.get("champion") or {}
    return {
        "decision": report.get("decision"),
        "evaluated_at": report.get("evaluated_at"),
        "challenger": (report.get("challenger") or {}).get("version"),
        "champion": champion.get("version"),
        "champion_status": report.get("champion_status"),
        "test_rows": (report.get("test_set") or {}).get("rows"),
        "test_sha256": (report.get("test_set") or {}).get("sha256"),
        "rules": [
            {
                "rule": rule.get("rule"),
                "metric": rule.get("metric"),
                "challenger": rule.get("challenger"),
                "champion": rule.get("champion"),
                "passed": rule.get("passed"),
            }
            for rule in report.get("rules", [])
        ],
    }


def champion_lineage(records: Sequence[PromotionRecord]) -> list[str]:
    """The stack of champions the records describe, oldest first: a promotion pushes its version;
    a rollback pops back to its version (or pushes it, if it was never champion before)."""
    stack: list[str] = []
    for record in sorted(records, key=lambda r: r.seq):
        if record.action == "promote":
            stack.append(record.version)
        elif record.version in stack:
            del stack[len(stack) - 1 - stack[::-1].index(record.version) + 1 :]
        else:
            stack.append(record.version)
    return stack


def rollback_target(records: Sequence[PromotionRecord], current: str | None) -> str | None:
    """The champion before the current one, by the audit trail; None when there is none."""
    stack = champion_lineage(records)
    if current is not None and current in stack:
        stack = stack[: len(stack) - stack[::-1].index(current)]
        return stack[-2] if len(stack) >= 2 else None
    return stack[-1] if stack else None


def render_history(records: Sequence[PromotionRecord], name: str) -> str:
    if not records:
        return f"{name}: no promotions recorded"
    rows = [("#", "when", "action", "champion", "previous", "by", "why")]
    for record in sorted(records, key=lambda r: r.seq):
        rows.append(
            (
                str(record.seq),
                record.at,
                record.action,
                f"v{record.version}",
                f"v{record.previous}" if record.previous else "-",
                record.actor,
                record.reason,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"{name}: champion history (oldest first)"]
    for row in rows:
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        )
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def history_markdown(records: Sequence[PromotionRecord]) -> str:
    """The champion history as a Markdown table (newest first), for the registered model's description
    in the MLflow UI; the machine-readable records stay in the `audit.*` tags."""
    if not records:
        return "No promotions yet."
    lines = ["| # | when (UTC) | action | champion | previous | by | why |", "|---|---|---|---|---|---|---|"]
    for record in sorted(records, key=lambda r: r.seq, reverse=True):
        previous = f"v{record.previous}" if record.previous else "—"
        lines.append(
            f"| {record.seq} | {record.at} | {record.action} | v{record.version} | {previous} "
            f"| {_cell(record.actor)} | {_cell(record.reason)} |"
        )
    return "\n".join(lines)
