"""The gate's pure rules, the gate params' validation, and the audit trail's lineage."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from spamfilter.config import METRIC_NAMES, ConfigError, GateParams, load_params, parse_params
from spamfilter.modeling.metrics import METRIC_KEYS
from spamfilter.registry import audit, gate

REPO_ROOT = Path(__file__).resolve().parents[2]

PARAMS = GateParams(
    primary_metric="f1",
    min_improvement=0.002,
    guards={"blocked_ham_rate": 0.001, "spam_caught_rate": 0.02},
    min_test_rows=100,
    floors={"f1": 0.9, "blocked_ham_rate": 0.01},
)


def metrics(**overrides: float) -> dict[str, float]:
    base = dict.fromkeys(METRIC_KEYS, 0.95)
    base["blocked_ham_rate"] = 0.002
    base.update(overrides)
    return base


def rule(verdict: gate.GateVerdict, name: str, metric: str | None = None) -> gate.RuleResult:
    (found,) = [r for r in verdict.rules if r.rule == name and (metric is None or r.metric == metric)]
    return found


def test_better_challenger_is_promoted_with_both_values_on_record() -> None:
    verdict = gate.judge(metrics(f1=0.96), metrics(f1=0.95), 500, PARAMS)
    assert verdict.decision == "promote" and verdict.promote
    primary = rule(verdict, "primary", "f1")
    assert (primary.challenger, primary.champion, primary.passed) == (0.96, 0.95, True)
    assert {r.metric for r in verdict.rules if r.rule == "guard"} == {"blocked_ham_rate", "spam_caught_rate"}
    assert "beats the champion's 0.9500" in verdict.reason


@pytest.mark.parametrize(
    ("challenger_f1", "why"),
    [(0.95, "equal is not better"), (0.9515, "below the margin"), (0.94, "worse")],
)
def test_not_better_enough_is_rejected(challenger_f1: float, why: str) -> None:
    verdict = gate.judge(metrics(f1=challenger_f1), metrics(f1=0.95), 500, PARAMS)
    assert verdict.decision == "reject", why
    assert not rule(verdict, "primary").passed
    assert [r.rule for r in verdict.failed] == ["primary"]


def test_exactly_the_margin_passes_despite_float_noise() -> None:
    verdict = gate.judge(metrics(f1=0.952), metrics(f1=0.95), 500, PARAMS)
    assert verdict.promote


def test_equal_is_not_better_even_with_zero_margin() -> None:
    params = PARAMS.model_copy(update={"min_improvement": 0.0})
    verdict = gate.judge(metrics(), metrics(), 500, params)
    assert verdict.decision == "reject"
    assert rule(verdict, "primary").note == "equal is not better"


def test_guard_violation_blocks_a_better_primary_metric() -> None:
    verdict = gate.judge(metrics(f1=0.99, blocked_ham_rate=0.01), metrics(f1=0.95, blocked_ham_rate=0.002), 500, PARAMS)
    assert verdict.decision == "reject"
    guard = rule(verdict, "guard", "blocked_ham_rate")
    assert (guard.challenger, guard.champion, guard.passed) == (0.01, 0.002, False)
    assert guard.required == "<= 0.003000"
    assert rule(verdict, "primary").passed
    assert "guard blocked_ham_rate" in verdict.reason


def test_guard_within_tolerance_passes_and_higher_is_better_guard_checks_the_other_way() -> None:
    within = gate.judge(metrics(f1=0.96, blocked_ham_rate=0.0029), metrics(f1=0.95), 500, PARAMS)
    assert within.promote
    fewer_caught = gate.judge(metrics(f1=0.96, spam_caught_rate=0.92), metrics(f1=0.95), 500, PARAMS)
    assert not rule(fewer_caught, "guard", "spam_caught_rate").passed
    assert rule(fewer_caught, "guard", "spam_caught_rate").required == ">= 0.930000"


def test_first_model_is_judged_by_floors_only() -> None:
    verdict = gate.judge(metrics(f1=0.91, blocked_ham_rate=0.005), None, 500, PARAMS)
    assert verdict.promote
    assert [r.rule for r in verdict.rules] == ["min_test_rows", "floor", "floor"]
    assert all(r.champion is None for r in verdict.rules)
    assert "no champion yet" in verdict.reason


@pytest.mark.parametrize(
    ("override", "metric"), [({"f1": 0.8}, "f1"), ({"blocked_ham_rate": 0.05}, "blocked_ham_rate")]
)
def test_first_model_below_a_floor_is_rejected(override: dict[str, float], metric: str) -> None:
    verdict = gate.judge(metrics(**override), None, 500, PARAMS)
    assert verdict.decision == "reject"
    assert [r.metric for r in verdict.failed] == [metric]


def test_small_test_set_is_rejected_whatever_the_metrics() -> None:
    verdict = gate.judge(metrics(f1=0.99), metrics(f1=0.5), 99, PARAMS)
    assert verdict.decision == "reject"
    assert [r.rule for r in verdict.failed] == ["min_test_rows"]
    assert "held-out split has 99 messages, needs 100" in verdict.reason


def test_unloadable_champion_rejects_and_says_why() -> None:
    verdict = gate.judge(metrics(f1=0.99), None, 500, PARAMS, champion_problem="model.pkl: not found")
    assert verdict.decision == "reject"
    assert rule(verdict, "champion_available").note == "model.pkl: not found"
    assert not any(r.rule == "floor" for r in verdict.rules)


def test_nan_metric_fails_its_rule() -> None:
    params = PARAMS.model_copy(update={"guards": {"blocked_ham_rate": 0.001, "roc_auc": 0.01}})
    verdict = gate.judge(metrics(f1=0.99, roc_auc=math.nan), metrics(), 500, params)
    assert not rule(verdict, "guard", "roc_auc").passed
    assert rule(verdict, "guard", "roc_auc").note == "not a number"


def test_missing_metric_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="champion metrics have no 'f1'"):
        gate.judge(metrics(), {"mcc": 0.9}, 500, PARAMS)


def test_report_table_shows_every_rule_and_the_decision() -> None:
    verdict = gate.judge(metrics(f1=0.96), metrics(f1=0.95), 500, PARAMS)
    report = gate.GateReport(
        registered_model="spam-classifier",
        decision=verdict.decision,
        deploy_needed=verdict.promote,
        reason=verdict.reason,
        challenger=gate.JudgedVersion(version="2", run_id="r2", alias="challenger", metrics=metrics(f1=0.96)),
        champion=gate.JudgedVersion(version="1", run_id="r1", alias="champion", metrics=metrics(f1=0.95)),
        champion_status="present",
        test_set=gate.HeldOutSet(path="data/processed/sms/test.jsonl", rows=500, sha256="x"),
        primary_metric="f1",
        rules=verdict.rules,
        params=PARAMS,
        evaluated_at="2025-01-01T00:00:00+00:00",
    )
    table = gate.render_report(report)
    assert "v2 (challenger) vs v1 (champion), on 500 held-out messages" in table
    assert "primary        f1                0.9600      0.9500" in table
    assert table.count("pass") == len(verdict.rules)
    assert table.rstrip().splitlines()[-1].startswith("decision: PROMOTE")
    assert gate.GateReport.model_validate_json(report.model_dump_json()) == report


def test_gate_metric_names_match_the_metrics_module() -> None:
    assert set(METRIC_NAMES) == set(METRIC_KEYS)


def test_repository_gate_params_are_valid() -> None:
    params = load_params(REPO_ROOT / "params.yaml").gate
    assert params.primary_metric in {"f1", "mcc"}
    assert "blocked_ham_rate" in params.guards


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"guards": {"blocked_ham_rate": 0.001, "f1_score": 0.01}},
            "gate.guards: Value error, unknown metric 'f1_score'",
        ),
        ({"floors": {"blocked_hams": 0.01}}, "gate.floors: Value error, unknown metric 'blocked_hams'"),
        ({"primary_metric": "accuracy"}, "gate.primary_metric: Input should be 'f1' or 'mcc'"),
        ({"guards": {"spam_caught_rate": 0.01}}, "guards must include blocked_ham_rate"),
        ({"min_improvement": -0.1}, "gate.min_improvement: Input should be greater than or equal to 0"),
        ({"margin": 0.1}, "gate.margin: Extra inputs are not permitted"),
    ],
)
def test_bad_gate_params_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_params({"channels": {"sms": {"gate": section}}})
    assert message in str(excinfo.value)


def record(seq: int, action: audit.Action, version: str, previous: str | None = None) -> audit.PromotionRecord:
    return audit.PromotionRecord(
        seq=seq, action=action, version=version, previous=previous, at="t", actor="a", reason="r"
    )


def test_rollback_walks_back_through_the_promotions() -> None:
    records = [record(1, "promote", "1"), record(2, "promote", "2", "1"), record(3, "promote", "3", "2")]
    assert audit.champion_lineage(records) == ["1", "2", "3"]
    assert audit.rollback_target(records, "3") == "2"
    records.append(record(4, "rollback", "2", "3"))
    assert audit.champion_lineage(records) == ["1", "2"]
    assert audit.rollback_target(records, "2") == "1"
    records.append(record(5, "rollback", "1", "2"))
    assert audit.rollback_target(records, "1") is None


def test_rollback_to_an_explicit_version_and_records_out_of_order() -> None:
    records = [record(3, "rollback", "7", "2"), record(1, "promote", "1"), record(2, "promote", "2", "1")]
    assert audit.champion_lineage(records) == ["1", "2", "7"]
    assert audit.rollback_target(records, "7") == "2"
    # A champion set by hand outside the audit trail rolls back to the last audited one.
    assert audit.rollback_target(records, "9") == "7"


def test_actor_prefers_the_ci_actor() -> None:
    env = {"GITHUB_ACTOR": "octocat", "GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "o/r"}
    assert audit.actor_from_env(env) == "github:octocat (o/r run 42)"
    assert "@" in audit.actor_from_env({})


def test_history_table_lists_each_change() -> None:
    text = audit.render_history([record(1, "promote", "1"), record(2, "rollback", "1", "2")], "m")
    assert "promote   v1" in text and "rollback  v1        v2" in text
    assert audit.render_history([], "m") == "m: no promotions recorded"
