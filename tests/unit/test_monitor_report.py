"""Rendering the monitor report: HTML with readable figures, the stdout table, GITHUB_OUTPUT lines."""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest

from spamfilter.config import MonitorParams
from spamfilter.monitoring import checks, decision, rendering

PARAMS = MonitorParams()


def report_of(result: decision.MonitorResult) -> dict[str, Any]:
    return {**result.as_dict(), "params": PARAMS.model_dump(mode="json"), "reference": {"profile": "p.json"}}


@pytest.fixture
def drift_report() -> dict[str, Any]:
    rng = np.random.default_rng(1)
    results = [
        checks.descriptor_check("length", rng.normal(60, 20, 2000), rng.normal(90, 20, 500), 0.1),
        checks.descriptor_check("tokens", rng.normal(12, 4, 2000), rng.normal(12, 4, 500), 0.1),
        checks.score_distribution_check(rng.beta(0.3, 2, 1000), rng.beta(0.6, 1.5, 500), 0.1),
        checks.spam_rate_check("label_spam_rate", "label", 130, 1000, 150, 500, 0.05),
        checks.skipped("domain_classifier", "domain", "roc_auc", "40 distinct texts per side < 50"),
    ]
    results += checks.quality_checks(
        {"caught_spam": 120, "blocked_ham": 3, "missed_spam": 10, "true_ham": 867},
        {"precision": 0.976, "recall": 0.923, "f1": 0.949},
        ["spam"] * 100 + ["ham"] * 400,
        ["spam"] * 60 + ["ham"] * 40 + ["ham"] * 400,
        PARAMS,
    )
    vocabulary = checks.CheckResult(
        "vocabulary",
        "vocabulary",
        "js_excess",
        statistic=0.03,
        threshold=0.01,
        p_value=1e-9,
        effect_exceeded=True,
        details={
            "moved_terms": [
                {"term": "parcel", "reference_share": 0.0, "current_share": 0.08, "z": 9.0, "new": True},
                {"term": "<script>", "reference_share": 0.02, "current_share": 0.01, "z": -2.0, "new": False},
            ],
            "unseen_terms": [{"term": "evri", "current_share": 0.05}],
        },
    )
    result = decision.decide(
        [*results, vocabulary], {"size": 500, "with_text": 500, "labelled": 500, "source": "x"}, PARAMS
    )
    return report_of(result)


def test_html_report_renders_every_check_and_its_figures(drift_report: dict[str, Any]) -> None:
    page = rendering.render_html(drift_report)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "retrain_needed = true" in page
    for check in drift_report["checks"]:
        assert f"<td>{check['name']}</td>" in page
    figures = re.findall(r"<figure>(.*?)</figure>", page, flags=re.DOTALL)
    assert len(figures) == 5  # overview, descriptors, scores, vocabulary, quality
    for figure in figures:
        assert figure.startswith("<svg xmlns='http://www.w3.org/2000/svg'")
        assert figure.count("<rect") >= 2  # bars drawn, not an empty frame
        ElementTree.fromstring(re.sub(r"<p class='note'>.*</p>", "", figure))  # well-formed SVG
    assert "<script>" not in page  # a term from traffic is escaped, never markup
    assert "evri" in page


def test_insufficient_data_report_renders_without_figures() -> None:
    result = decision.MonitorResult("insufficient_data", False, [], [], {"size": 3}, "insufficient data: 3 messages")
    page = rendering.render_html(report_of(result))
    assert "insufficient data: 3 messages" in page
    assert "retrain_needed = false" in page
    assert "<figure>" not in page


def test_summary_table(drift_report: dict[str, Any]) -> None:
    table = rendering.summary_table(drift_report)
    lines = table.splitlines()
    assert lines[0].startswith("window: 500 messages (500 with text, 500 labelled)")
    for check in drift_report["checks"]:
        assert any(line.startswith(check["name"]) for line in lines)
    length_row = next(line for line in lines if line.startswith("descriptor:length"))
    assert length_row.endswith("DRIFT")
    assert next(line for line in lines if line.startswith("descriptor:tokens")).endswith("ok")
    assert "skipped: 40 distinct texts" in table
    assert "retrain_needed=true" in lines
    assert sum(line.startswith("  reason: ") for line in lines) == len(drift_report["reasons"]) > 0


def test_github_output_lines(drift_report: dict[str, Any]) -> None:
    drift_report["reasons"].append("a reason\nwith a newline")
    content = rendering.github_output(drift_report)
    lines = content.splitlines()
    assert content.endswith("\n")
    assert lines[0] == "retrain_needed=true"
    assert lines[1] == "monitor_status=drift"
    assert lines[2].startswith("retrain_reasons=descriptor:length")
    assert lines[2].endswith("a reason with a newline")
    assert len(lines) == 3
    quiet = {"retrain_needed": False, "status": "insufficient_data", "reasons": []}
    assert rendering.github_output(quiet) == (
        "retrain_needed=false\nmonitor_status=insufficient_data\nretrain_reasons=\n"
    )


def test_reasons_name_what_moved(drift_report: dict[str, Any]) -> None:
    reasons = drift_report["reasons"]
    assert any(r.startswith("quality:recall: 0.600 vs reference 0.923") for r in reasons)
    assert any("new terms: evri" in r for r in reasons)
