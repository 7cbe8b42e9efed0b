"""The automation end to end in an isolated copy of the repo, with real DVC, MLflow and API processes:
`make ci-local` (per channel: monitor → retrain → gate → record → export → deploy.sh against a local API
→ promote) on both channels through its decisions and failure paths, then `spamfilter report` on two
pipeline runs with different params. One project is shared by the scenarios, in order: each starts from
the registry, remote and deployed image the one before left."""

from __future__ import annotations

import email.utils
import json
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml

from spamfilter.config import Channel, Settings, load_params_file
from spamfilter.registry import tracking
from tests.conftest import REPO_ROOT, Project, free_port, make_messages, make_project, write_tsv

pytestmark = pytest.mark.slow

# The channels the project configures (params.yaml: channels.sms, channels.email), each with a generated corpus.
CHANNELS: tuple[Channel, ...] = tuple(load_params_file(REPO_ROOT / "params.yaml").channels.configured())
# The gate for the small generated corpora: held-out splits of 60 messages, SMS labels 8% noise.
GATE = {"min_test_rows": 50, "floors": {"f1": 0.5, "mcc": 0.4, "blocked_ham_rate": 0.3}}
# A deliberately weak SMS model for the first champion (three word features: f1 ≈ 0.67 on the noisy
# corpus, above the floors), so the full model later beats it by far and its gate passes.
WEAK_SMS_FEATURES = {"max_features": 3, "char_ngrams": False}


@dataclass
class Chain:
    project: Project
    settings: Settings
    runs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    champion_after: dict[str, dict[str, str | None]] = field(default_factory=dict)
    audit_count_after: dict[str, dict[str, int]] = field(default_factory=dict)
    report: str = ""
    report_stdout: str = ""
    metrics: tuple[dict[str, Any], dict[str, Any]] = ({}, {})


def noisy_corpus(path: Path) -> Path:
    """The generated corpus with every 13th label flipped, so different models score differently."""
    rows = make_messages(n_ham=240, n_spam=60)
    flipped = [
        (("spam" if label == "ham" else "ham") if i % 13 == 0 else label, text) for i, (label, text) in enumerate(rows)
    ]
    return write_tsv(path, flipped)


def email_corpus(root: Path, n_ham: int = 240, n_spam: int = 60, seed: int = 11) -> Path:
    """Generated e-mails as a folder tree the e-mail ingest reads: spam/*.eml and ham/*.eml."""
    start = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    for i, (label, text) in enumerate(make_messages(n_ham=n_ham, n_spam=n_spam, seed=seed)):
        message = EmailMessage()
        message["From"] = f"offers{i % 7}@win-prizes.example" if label == "spam" else f"friend{i % 9}@example.org"
        message["To"] = "someone@example.net"
        message["Subject"] = " ".join(text.split()[:5])
        message["Date"] = email.utils.format_datetime(start + timedelta(minutes=37 * i))
        message["Message-ID"] = f"<{i}.{label}@generated.example>"
        message.set_content(f"{text}\n\n-- \n{'Unsubscribe at any time' if label == 'spam' else 'Sent from home'}\n")
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04d}.eml").write_bytes(bytes(message))
    return root


def link_venv(project: Project) -> None:
    """Give the copy this checkout's venv (its Makefile runs .venv/bin/…) without letting make reinstall it."""
    venv = project.root / ".venv"
    venv.mkdir()
    for entry in (REPO_ROOT / ".venv").iterdir():
        if not entry.name.startswith("."):
            (venv / entry.name).symlink_to(entry)
    for stamp in (".runtime", ".dev"):
        (venv / stamp).touch()  # newer than requirements*.txt: `make setup` has nothing to do


def champion(settings: Settings, channel: Channel) -> str | None:
    found = tracking.find_alias(settings.for_channel(channel), tracking.CHAMPION)
    return found.version if found else None


def audit_count(settings: Settings, channel: Channel) -> int:
    return len(tracking.promotion_history(settings.for_channel(channel)))


def write_params(project: Project, params: dict[str, Any], message: str) -> None:
    (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    project.run("git", "commit", "-q", "-m", message, "--", "params.yaml")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    root = tmp_path_factory.mktemp("chain")
    project = make_project(
        root / "repo",
        {"SPAM_DATA": str(noisy_corpus(root / "corpus.tsv")), "SPAM_EMAIL_DATA": str(email_corpus(root / "mail"))},
        channels=CHANNELS,
    )
    link_venv(project)
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    for channel in CHANNELS:
        params["channels"][channel]["gate"].update(GATE)
    good = json.loads(json.dumps(params))
    params["channels"]["sms"]["featurize"].update(WEAK_SMS_FEATURES)
    write_params(project, params, "gate params for the generated corpora; a weak first SMS model")
    settings = Settings(
        MLFLOW_TRACKING_URI=project.env["MLFLOW_TRACKING_URI"],
        SPAM_MLFLOW_ARTIFACT_ROOT=project.env["SPAM_MLFLOW_ARTIFACT_ROOT"],
    )
    result = Chain(project, settings)

    def ci_local(name: str, **env: str) -> None:
        saved = dict(project.env)
        project.env.update(env)
        try:
            result.runs[name] = project.run("make", "--no-print-directory", "ci-local", check=False, timeout=1200)
        finally:
            project.env.clear()
            project.env.update(saved)
        run = result.runs[name]
        (root / f"ci-local-{name}.log").write_text(f"{run.stdout}\n--- stderr\n{run.stderr}")  # for a failure's reader
        result.champion_after[name] = {channel: champion(settings, channel) for channel in CHANNELS}
        result.audit_count_after[name] = {channel: audit_count(settings, channel) for channel in CHANNELS}

    project.env["API_PORT"] = str(free_port())
    params_file = project.root / "params.yaml"
    # 1. The first scheduled run against an empty DVC remote: no reference profile, so each monitor says
    #    train; v1 of each channel passes its gate, is recorded on a branch, but the deploy fails.
    ci_local("first_run", LOCAL_DOCKER_FAIL_HEALTH="1", READY_TIMEOUT="5", RECORD_BRANCH="ci-local/first")
    # 2. workflow_dispatch with force_retrain: nothing changed, v1 of each is deployed, then promoted.
    ci_local("deployed", FORCE_RETRAIN="true", RECORD_BRANCH="ci-local/deployed")
    # 3. The daily run: data/new/<channel> holds no batch yet, so there is nothing new to judge: no retrain.
    ci_local("monitor_quiet")
    # 4. The full SMS model beats the weak champion; the other channels' v1 are already champions, so
    #    their gates reject: SMS deploys and is promoted, the others keep their champions, in the same image.
    write_params(project, good, "the full SMS model")
    good_text = params_file.read_text()
    ci_local("one_rejects", FORCE_RETRAIN="true", RECORD_BRANCH="ci-local/one-rejects")
    # 5. A gate that cannot run (the SMS challenger is not in the registry it names) stops SMS; the others
    #    are rejected: nothing deploys.
    ci_local("gate_fails", FORCE_RETRAIN="true", SPAM_REGISTERED_MODEL="spam-classifier-gone")
    # 6. A params.yaml that does not validate stops every channel at the first step.
    params_file.write_text(good_text.replace("primary_metric: f1", "primary_metric: bogus", 1))
    ci_local("bad_params", FORCE_RETRAIN="true")
    params_file.write_text(good_text)
    # 7. A monitor that cannot run (an SMS reference profile of an unknown schema) stops SMS; the others'
    #    monitors go on. The batch is outside data/new, so no later `dvc repro` trains on it.
    profile = project.root / "models" / "sms" / "reference_profile.json"
    kept = profile.read_bytes()
    profile.write_text('{"schema_version": 0}')
    (root / "quiet" / "sms").mkdir(parents=True)
    write_tsv(root / "quiet" / "sms" / "batch.tsv", make_messages(n_ham=16, n_spam=4, seed=3))
    email_corpus(root / "quiet" / "email", n_ham=16, n_spam=4, seed=3)  # too few to judge: no retrain
    ci_local("monitor_fails", MONITOR_PULL="false", MONITOR_ARGS=f"--batch {root / 'quiet'}/{{channel}}")
    profile.write_bytes(kept)

    # The report: commit this run, change a param, rerun, compare with the commit.
    result.metrics = (json.loads((project.root / "reports/sms/metrics.json").read_text()), {})
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "pipeline run: linear_svm")
    params_file.write_text(params_file.read_text().replace("model: linear_svm", "model: mnb", 1))
    project.dvc("repro")
    result.metrics = (result.metrics[0], json.loads((project.root / "reports/sms/metrics.json").read_text()))
    result.report_stdout = project.spamfilter(
        "report", "--base", "HEAD", "--champion-dir", "bundle", "--head", "mnb"
    ).stdout
    result.report = (project.root / "report.md").read_text()
    return result


def output(run: subprocess.CompletedProcess[str]) -> str:
    return run.stdout + run.stderr


def in_order(text: str, marks: list[str]) -> bool:
    positions = [text.find(mark) for mark in marks]
    return -1 not in positions and positions == sorted(positions)


def expected(versions: dict[str, str]) -> str:
    return " ".join(f"{channel}={versions[channel]}" for channel in CHANNELS)


def test_the_first_run_trains_every_channel_without_a_reference_profile(chain: Chain) -> None:
    run = chain.runs["first_run"]
    assert "force_retrain" not in run.stdout, "the monitors decided, not force_retrain"
    for channel in CHANNELS:
        assert f"pipeline: {channel}: could not pull its reference profile and model (a first run?)" in run.stderr
        assert f"reason: no reference profile at models/{channel}/reference_profile.json" in run.stdout
        assert f"pipeline: {channel}: deploy_needed=true challenger_version=1" in run.stdout
    assert f"retrain_channels={' '.join(CHANNELS)}" in run.stdout
    monitor = chain.project.json("reports/sms/monitor.json")
    assert (monitor["status"], monitor["retrain_needed"]) == ("no_reference", True)


def test_a_failed_deploy_is_not_promoted(chain: Chain) -> None:
    run = chain.runs["first_run"]
    assert run.returncode != 0, output(run)
    assert "no previous tag to roll back to" in run.stderr
    assert "the deploy failed (rolled back); not promoting, champions unchanged" in run.stderr
    assert chain.champion_after["first_run"] == dict.fromkeys(CHANNELS)
    assert chain.audit_count_after["first_run"] == dict.fromkeys(CHANNELS, 0)


def test_the_retrain_is_recorded_on_a_branch_as_its_pull_request_would_be(chain: Chain) -> None:
    project = chain.project
    changed = project.run("git", "diff", "--name-only", "ci-local/first~1", "ci-local/first").stdout.split()
    assert "dvc.lock" in changed
    for channel in CHANNELS:
        assert f"reports/{channel}/metrics.json" in changed and f"reports/{channel}/plots/roc.json" in changed
    assert not any(name.startswith(("models/", "data/processed/")) for name in changed), "outputs stay in DVC"
    lock = yaml.safe_load(project.run("git", "show", "ci-local/first:dvc.lock").stdout)
    (model,) = lock["stages"]["train@sms"]["outs"]
    assert model["path"] == "models/sms/model.joblib"
    # The branch records the model that was trained and pushed: the remote holds its object.
    assert (project.root / ".dvc-storage" / "files" / "md5" / model["md5"][:2] / model["md5"][2:]).is_file()
    # The recording commit sits on the commit the run was on, and only on its branch: the checkout stays.
    assert project.run("git", "merge-base", "--is-ancestor", "ci-local/first~1", "HEAD", check=False).returncode == 0
    assert project.run("git", "merge-base", "--is-ancestor", "ci-local/first", "HEAD", check=False).returncode == 1
    # A forced retrain on unchanged data trains nothing new: it records the same lock.
    assert project.run("git", "diff", "ci-local/first", "ci-local/deployed", "--", "dvc.lock").stdout == ""


def test_the_chain_deploys_every_channel_and_then_promotes_them(chain: Chain) -> None:
    run = chain.runs["deployed"]
    assert run.returncode == 0, output(run)
    versions = expected(dict.fromkeys(CHANNELS, "1"))
    marks = [
        "pipeline: sms: deploy_needed=true challenger_version=1",
        "bundle/sms: spam-classifier v1 (by version)",
        f"pipeline: image bundles: {versions}",
        "is ready and serves sms=1",
        "spam-classifier@champion: none → v1",
        "ci-local: deployed local/spamfilter-api:",
    ]
    assert in_order(run.stdout, marks), run.stdout
    assert f"serving {versions}; promoted: {' '.join(CHANNELS)}" in run.stdout
    assert chain.champion_after["deployed"] == dict.fromkeys(CHANNELS, "1")
    for channel in CHANNELS:
        first = tracking.promotion_history(chain.settings.for_channel(channel))[0]
        assert (first.version, first.previous) == ("1", None) and "(ci-local) after the gate passed" in first.reason
    images = chain.project.root / ".ci-local" / "docker" / "images"
    pushed = re.search(r"pushed local/spamfilter-api:(\S+) \(", run.stdout)
    assert pushed and pushed[1].endswith("-" + ".".join(f"{channel}-v1" for channel in CHANNELS))
    assert sorted(p.name for p in (images / pushed[1] / "bundle").iterdir()) == sorted(CHANNELS), (
        "the image has every channel"
    )


def test_the_monitors_deciding_no_retrain_end_the_chain(chain: Chain) -> None:
    run = chain.runs["monitor_quiet"]
    assert run.returncode == 0, output(run)
    assert "retrain_needed=false retrain_channels=" in run.stdout
    assert "no retrain needed; the chain ends here" in run.stdout and "== retrain" not in run.stdout
    for channel in CHANNELS:
        assert f"pipeline: {channel}: no labelled batch in data/new/{channel} yet: nothing new to monitor" in run.stdout


def test_one_channels_rejection_does_not_stop_the_others_deploy(chain: Chain) -> None:
    run = chain.runs["one_rejects"]
    assert run.returncode == 0, output(run)
    assert "pipeline: sms: deploy_needed=true challenger_version=2" in run.stdout
    others = [channel for channel in CHANNELS if channel != "sms"]
    for channel in others:
        assert f"ci-local: the gate rejected {channel}'s challenger; {channel} keeps its champion" in run.stdout
        # The image carries the rejected channel's current champion, exported by alias.
        assert f"bundle/{channel}: spam-classifier-{channel} v1 (champion)" in run.stdout
    versions = expected({"sms": "2", **dict.fromkeys(others, "1")})
    assert f"pipeline: image bundles: {versions}" in run.stdout
    assert f"serving {versions}; promoted: sms\n" in run.stdout
    assert chain.champion_after["one_rejects"] == {"sms": "2", **dict.fromkeys(others, "1")}
    assert chain.audit_count_after["one_rejects"] == {"sms": 2, **dict.fromkeys(others, 1)}
    # Its pull request records the new SMS training; the others' training is the one recorded before.
    changed = chain.project.run("git", "diff", "--name-only", "ci-local/deployed", "ci-local/one-rejects").stdout
    assert "reports/sms/metrics.json" in changed.split()
    assert not [name for name in changed.split() if name.startswith(tuple(f"reports/{c}/" for c in others))]


def test_a_failing_gate_stops_its_channel_with_its_error(chain: Chain) -> None:
    run = chain.runs["gate_fails"]
    assert run.returncode != 0
    assert "spam-classifier-gone" in run.stderr and "pipeline: sms: the gate failed" in run.stderr
    assert "retraining or the gate failed for: sms" in run.stderr
    assert "no challenger passed its gate; nothing to deploy, champions unchanged" in run.stdout
    assert chain.champion_after["gate_fails"] == chain.champion_after["one_rejects"]
    assert chain.audit_count_after["gate_fails"] == chain.audit_count_after["one_rejects"]


def test_params_that_do_not_validate_stop_every_channel_at_the_first_step(chain: Chain) -> None:
    run = chain.runs["bad_params"]
    assert run.returncode != 0
    assert "gate.primary_metric" in run.stderr and "the monitor step failed (see above); the chain stops" in run.stderr
    assert "== retrain" not in run.stdout
    assert chain.champion_after["bad_params"] == chain.champion_after["one_rejects"]


def test_a_failing_monitor_stops_its_channel_with_its_error(chain: Chain) -> None:
    run = chain.runs["monitor_fails"]
    assert run.returncode != 0
    assert "reference_profile.json: schema_version 0" in run.stderr
    assert "the monitor failed for: sms; those channels stop" in run.stderr
    assert "== retrain" not in run.stdout
    assert chain.champion_after["monitor_fails"] == chain.champion_after["one_rejects"]


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
    assert "| params.yaml | channels.sms.train.model | linear_svm | mnb |" in report


def test_report_embeds_the_plots_and_judges_every_channel_against_its_champion(chain: Chain) -> None:
    report = chain.report
    for channel in CHANNELS:
        for name in ("roc", "pr", "confusion"):
            assert f"reports/{channel}/plots/{name}.png)" in report
    assert re.search(r"\*\*(PROMOTE|REJECT)\*\* against spam-classifier v2 \(", report)
    for channel in CHANNELS[1:]:
        assert re.search(rf"\*\*(PROMOTE|REJECT)\*\* against spam-classifier-{channel} v1 \(", report)
    assert "| primary | f1 |" in report and "| guard | blocked_ham_rate |" in report


def test_report_with_a_bad_base_revision_fails_naming_it(chain: Chain) -> None:
    result = chain.project.spamfilter("report", "--base", "no-such-rev", "--out", "other.md", check=False)
    assert result.returncode == 1
    assert "error: dvc metrics diff no-such-rev" in result.stderr
    assert not (chain.project.root / "other.md").exists()
