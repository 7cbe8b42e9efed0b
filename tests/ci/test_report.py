"""spamfilter.report: the pull-request report built from DVC's JSON diffs (pure, no DVC run)."""

from __future__ import annotations

from spamfilter.config import GateParams
from spamfilter.registry import gate, pr_report

METRICS_DIFF = {
    "reports/sms/metrics.json": {
        "f1": {"old": 0.95, "new": 0.97, "diff": 0.02},
        "mcc": {"old": 0.9, "new": 0.9, "diff": 0.0},
        "new_metric": {"old": None, "new": 0.5},
    }
}
PARAMS_DIFF = {
    "params.yaml": {
        "train.model": {"old": "linear_svm", "new": "mnb"},
        "featurize.stop_words": {"old": False, "new": True},
    }
}


def test_changed_metrics_are_those_that_differ_including_new_ones() -> None:
    assert pr_report.changed_metrics(METRICS_DIFF) == ["f1", "new_metric"]
    assert pr_report.changed_metrics({}) == []


def test_report_names_changes_params_and_plots() -> None:
    text = pr_report.build_report(
        METRICS_DIFF,
        PARAMS_DIFF,
        [pr_report.ChannelSection("sms", ["reports/sms/plots/roc.png"], None)],
        "origin/main",
        "abc123",
    )
    assert text.startswith("## spamfilter: this branch (abc123) against `origin/main`")
    assert "Changed against `origin/main`: **f1**, **new_metric**." in text
    assert "| reports/sms/metrics.json | **f1** | 0.9500 | 0.9700 | +0.0200 |" in text
    assert "| reports/sms/metrics.json | mcc | 0.9000 | 0.9000 | +0.0000 |" in text
    assert "| reports/sms/metrics.json | **new_metric** | — | 0.5000 | — |" in text
    assert "| params.yaml | train.model | linear_svm | mnb |" in text
    assert "| params.yaml | featurize.stop_words | false | true |" in text
    assert "![sms roc](reports/sms/plots/roc.png)" in text
    assert "Not judged: no champion was given" in text


def test_report_without_changes_says_so() -> None:
    text = pr_report.build_report({}, {}, [pr_report.ChannelSection("sms", [], None)], "main")
    assert "No metrics to compare with `main`." in text and "No param changed against `main`." in text
    assert "No plot images found" in text


def test_report_shows_the_gate_verdict_rule_by_rule() -> None:
    params = GateParams()
    challenger = {"f1": 0.95, "mcc": 0.94, "blocked_ham_rate": 0.01, "spam_caught_rate": 0.9}
    champion = {"f1": 0.96, "mcc": 0.95, "blocked_ham_rate": 0.002, "spam_caught_rate": 0.95}
    verdict = gate.judge(challenger, champion, 1000, params)
    section = pr_report.GateSection(champion="spam-classifier v3 (champion)", verdict=verdict)
    text = pr_report.build_report({}, {}, [pr_report.ChannelSection("sms", [], section)], "main")
    assert "**REJECT** against spam-classifier v3 (champion): rejected:" in text
    assert "| primary | f1 | 0.9500 | 0.9600 |" in text and "**FAIL**" in text
    unavailable = pr_report.GateSection(champion="champion-bundle", unavailable="no serving bundle at champion-bundle")
    assert "Not judged against champion-bundle: no serving bundle at champion-bundle." in pr_report.build_report(
        {}, {}, [pr_report.ChannelSection("sms", [], unavailable)], "main"
    )
