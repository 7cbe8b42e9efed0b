"""The automation end to end in an isolated copy of the repo, with real DVC, MLflow and API processes:
`make ci-local` (monitor → retrain → gate → export → deploy.sh against a local API → promote) through
its failure paths, then `spamfilter report` on two pipeline runs with different params."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from spamfilter.config import Settings
from spamfilter.registry import tracking
from tests.conftest import REPO_ROOT, Project, free_port, make_messages, make_project, write_tsv

pytestmark = pytest.mark.slow


@dataclass
class Chain:
    project: Project
    settings: Settings
    runs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    champion_after: dict[str, str | None] = field(default_factory=dict)
    audit_count_after: dict[str, int] = field(default_factory=dict)
    report: str = ""
    report_stdout: str = ""
    metrics: tuple[dict, dict] = ({}, {})


def noisy_corpus(path: Path) -> Path:
    """The generated corpus with every 13th label flipped, so different models score differently."""
    rows = make_messages(n_ham=240, n_spam=60)
    flipped = [
        (("spam" if label == "ham" else "ham") if i % 13 == 0 else label, text) for i, (label, text) in enumerate(rows)
    ]
    return write_tsv(path, flipped)


def link_venv(project: Project) -> None:
    """Give the copy this checkout's venv (its Makefile runs .venv/bin/…) without letting make reinstall it."""
    venv = project.root / ".venv"
    venv.mkdir()
    for entry in (REPO_ROOT / ".venv").iterdir():
        if not entry.name.startswith("."):
            (venv / entry.name).symlink_to(entry)
    for stamp in (".runtime", ".dev"):
        (venv / stamp).touch()  # newer than requirements*.txt: `make setup` has nothing to do


def champion(settings: Settings) -> str | None:
    found = tracking.find_alias(settings, tracking.CHAMPION)
    return found.version if found else None


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    root = tmp_path_factory.mktemp("chain")
    project = make_project(root / "repo", {"SPAM_DATA": str(noisy_corpus(root / "corpus.tsv"))})
    link_venv(project)
    params_file = project.root / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["gate"]["min_test_rows"] = 50  # the held-out split has 60 messages
    params["gate"]["floors"] = {"f1": 0.5, "mcc": 0.4, "blocked_ham_rate": 0.3}  # labels are 8% noise
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    project.run("git", "commit", "-q", "-m", "gate params for the noisy fixture corpus", "--", "params.yaml")
    settings = Settings(
        MLFLOW_TRACKING_URI=project.env["MLFLOW_TRACKING_URI"],
        SPAM_MLFLOW_ARTIFACT_ROOT=project.env["SPAM_MLFLOW_ARTIFACT_ROOT"],
    )
    result = Chain(project, settings)
    api_port = str(free_port())

    def ci_local(name: str, **env: str) -> None:
        saved = dict(project.env)
        project.env.update(env)
        try:
            result.runs[name] = project.run("make", "--no-print-directory", "ci-local", check=False, timeout=400)
        finally:
            project.env.clear()
            project.env.update(saved)
        result.champion_after[name] = champion(settings)
        result.audit_count_after[name] = len(tracking.promotion_history(settings))

    project.env["API_PORT"] = api_port
    # 1. Bootstrap (workflow_dispatch force_retrain): trains v1, the gate passes it, but its deploy fails.
    ci_local("failed_deploy", FORCE_RETRAIN="true", LOCAL_DOCKER_FAIL_HEALTH="1", READY_TIMEOUT="5")
    # 2. The same again with a healthy deploy: v1 is deployed, then promoted.
    ci_local("deployed", FORCE_RETRAIN="true")
    # 3. The daily run: data/new/sms holds no batch, so the monitor sees too little data to retrain.
    ci_local("monitor_quiet")
    # 4. Forced retrain on unchanged data and params: v1 is already the champion, the gate rejects.
    ci_local("gate_rejects", FORCE_RETRAIN="true")
    # 5. A gate that cannot run (bad gate params) stops the chain.
    good_params = params_file.read_text()
    params_file.write_text(good_params.replace("primary_metric: f1", "primary_metric: bogus"))
    ci_local("gate_fails", FORCE_RETRAIN="true")
    params_file.write_text(good_params)
    # 6. A monitor that cannot run (no reference profile) stops the chain.
    profile = project.root / "models" / "reference_profile.json"
    shutil.move(profile, root / "profile.json")
    ci_local("monitor_fails")
    shutil.move(root / "profile.json", profile)

    # The report: commit this run, change a param, rerun, compare with the commit.
    result.metrics = (json.loads((project.root / "reports/sms/metrics.json").read_text()), {})
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "pipeline run: linear_svm")
    params_file.write_text(good_params.replace("model: linear_svm", "model: mnb"))
    project.dvc("repro")
    result.metrics = (result.metrics[0], json.loads((project.root / "reports/sms/metrics.json").read_text()))
    result.report_stdout = project.spamfilter(
        "report", "--base", "HEAD", "--champion", "bundle", "--head", "mnb"
    ).stdout
    result.report = (project.root / "report.md").read_text()
    return result


def output(run: subprocess.CompletedProcess[str]) -> str:
    return run.stdout + run.stderr


def test_a_failed_deploy_is_not_promoted(chain: Chain) -> None:
    run = chain.runs["failed_deploy"]
    assert run.returncode != 0, output(run)
    assert "force_retrain: skipping the monitor" in run.stdout
    assert "deploy_needed=true challenger_version=1" in run.stdout
    assert "no previous tag to roll back to" in run.stderr
    assert "the deploy failed (rolled back); not promoting, champion unchanged" in run.stderr
    assert chain.champion_after["failed_deploy"] is None
    assert chain.audit_count_after["failed_deploy"] == 0


def test_the_chain_deploys_the_gated_challenger_and_then_promotes_it(chain: Chain) -> None:
    run = chain.runs["deployed"]
    assert run.returncode == 0, output(run)
    text = run.stdout
    # In order: gate → export of the judged version → deploy.sh's health and version check → promote.
    marks = [
        "deploy_needed=true challenger_version=1",
        "bundle: spam-classifier v1",
        "is ready and serves model version 1",
        "@champion: none → v1",
        "ci-local: v1 is deployed and champion",
    ]
    positions = [text.find(mark) for mark in marks]
    assert -1 not in positions and positions == sorted(positions), text
    assert chain.champion_after["deployed"] == "1"
    (record,) = tracking.promotion_history(chain.settings)
    assert "(ci-local) after the gate passed" in record.reason
    tag_dir = chain.project.root / ".ci-local" / "docker" / "images"
    (tag,) = [p.name for p in tag_dir.iterdir() if p.name.endswith("-v1")]
    assert (chain.project.root / ".ci-local" / "host" / ".deployed-tag").read_text().strip() == tag


def test_the_monitor_deciding_no_retrain_ends_the_chain(chain: Chain) -> None:
    run = chain.runs["monitor_quiet"]
    assert run.returncode == 0, output(run)
    assert "retrain_needed=false" in run.stdout and "no retrain needed; the chain ends here" in run.stdout
    assert "== retrain" not in run.stdout


def test_a_rejecting_gate_ends_the_chain_and_moves_no_alias(chain: Chain) -> None:
    run = chain.runs["gate_rejects"]
    assert run.returncode == 0, output(run)
    assert "the gate rejected v1; nothing to deploy, champion unchanged" in run.stdout
    assert "== build-push" not in run.stdout
    assert chain.champion_after["gate_rejects"] == "1" and chain.audit_count_after["gate_rejects"] == 1


def test_a_failing_gate_stops_the_chain_with_its_error(chain: Chain) -> None:
    run = chain.runs["gate_fails"]
    assert run.returncode != 0
    assert "gate.primary_metric" in run.stderr and "the gate failed; the chain stops (no alias moved)" in run.stderr
    assert chain.champion_after["gate_fails"] == "1" and chain.audit_count_after["gate_fails"] == 1


def test_a_failing_monitor_stops_the_chain_with_its_error(chain: Chain) -> None:
    run = chain.runs["monitor_fails"]
    assert run.returncode != 0
    assert "reference_profile.json" in run.stderr and "the monitor failed; the chain stops" in run.stderr
    assert "== retrain" not in run.stdout
    assert chain.champion_after["monitor_fails"] == "1"


def test_report_names_the_changed_metrics_and_params(chain: Chain) -> None:
    before, after = chain.metrics
    changed = [
        key
        for key in ("accuracy", "precision", "recall", "f1", "mcc", "roc_auc", "pr_auc")
        if before[key] != after[key]
    ]
    assert changed, "the two runs should score differently on the noisy corpus"
    report = chain.report
    assert report.startswith("## spamfilter: this branch (mnb) against `HEAD`")
    for key in changed:
        assert f"**{key}**" in report
        assert re.search(
            rf"\| reports/sms/metrics.json \| \*\*{key}\*\* \| {before[key]:.4f} \| {after[key]:.4f} \|", report
        )
    assert "metrics changed against HEAD: " in chain.report_stdout and changed[0] in chain.report_stdout
    assert "| params.yaml | train.model | linear_svm | mnb |" in report


def test_report_embeds_the_plots_and_judges_against_the_champion(chain: Chain) -> None:
    report = chain.report
    for name in ("roc", "pr", "confusion"):
        assert f"![{name}](reports/sms/plots/{name}.png)" in report
        assert (chain.project.root / "reports" / "plots" / f"{name}.png").is_file()
    assert re.search(r"\*\*(PROMOTE|REJECT)\*\* against spam-classifier v1 \(", report)
    assert "| primary | f1 |" in report and "| guard | blocked_ham_rate |" in report


def test_report_with_a_bad_base_revision_fails_naming_it(chain: Chain) -> None:
    result = chain.project.spamfilter("report", "--base", "no-such-rev", "--out", "other.md", check=False)
    assert result.returncode == 1
    assert "error: dvc metrics diff no-such-rev" in result.stderr
    assert not (chain.project.root / "other.md").exists()
