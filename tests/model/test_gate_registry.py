"""The gate, promotion, rollback and audit trail against a real MLflow SQLite store in tmp.

Each test registers its own model name (from models logged once per module), so aliases and
audit trails do not leak between tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spamfilter import cli
from spamfilter.config import Settings
from spamfilter.registry import tracking
from tests.model.registry_helpers import Store, artifact_file, build_store

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    built = build_store(tmp_path_factory.mktemp("registry"), extra=("doomed",))
    # Preconditions of the cases below, on the held-out split the gate scores.
    good, weak, trigger_happy = (built.held_out[m] for m in ("good", "weak", "trigger_happy"))
    assert good["f1"] > weak["f1"] and good["blocked_ham_rate"] <= weak["blocked_ham_rate"]
    assert trigger_happy["f1"] > weak["f1"] + 0.1
    assert trigger_happy["blocked_ham_rate"] > weak["blocked_ham_rate"] + 0.0012
    assert built.held_out["good_again"] == good
    # What the runs logged differs from the held-out scores, so reading it would not pass the tests below.
    assert built.metrics["weak"]["f1"] != pytest.approx(weak["f1"], abs=1e-3)
    assert built.metrics["trigger_happy"]["blocked_ham_rate"] != pytest.approx(
        trigger_happy["blocked_ham_rate"], abs=1e-3
    )
    return built


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with params.yaml as in the repo except min_test_rows (the fixture split is small)."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["channels"]["sms"]["gate"]["min_test_rows"] = 20
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for key in ("GITHUB_OUTPUT", "GITHUB_ACTOR", "GITHUB_RUN_ID", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def use(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Point the CLI (which reads the environment) at the test store and model."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("SPAM_MLFLOW_ARTIFACT_ROOT", settings.mlflow_artifact_root)
    monkeypatch.setenv("SPAM_REGISTERED_MODEL", settings.registered_model)


def setup_aliases(settings: Settings, challenger: str | None, champion: str | None) -> None:
    for alias, version in (("challenger", challenger), ("champion", champion)):
        if version is None:
            tracking.delete_alias(settings, alias)
        else:
            tracking.set_alias(settings, alias, version)


def champion_of(settings: Settings) -> str | None:
    found = tracking.find_alias(settings, "champion")
    return found.version if found else None


def gate(store: Store, *extra: str) -> tuple[int, dict]:
    code = cli.main(["gate", "--test", str(store.test_path), "--report", "reports/sms/gate.json", *extra])
    report = json.loads(Path("reports/sms/gate.json").read_text()) if Path("reports/sms/gate.json").exists() else {}
    return code, report


def rule(report: dict, name: str, metric: str | None = None) -> dict:
    (found,) = [r for r in report["rules"] if r["rule"] == name and (metric is None or r["metric"] == metric)]
    return found


def test_better_challenger_passes_and_promotion_is_audited(
    store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = store.register("better", "weak", "good")
    setup_aliases(settings, challenger="2", champion="1")
    use(monkeypatch, settings)
    monkeypatch.setenv("GITHUB_OUTPUT", str(workdir / "github_output"))

    code, report = gate(store)
    assert code == 0
    assert report["decision"] == "promote" and report["deploy_needed"] is True
    assert (report["challenger"]["version"], report["champion"]["version"]) == ("2", "1")
    primary = rule(report, "primary", "f1")
    # Both scored now, on the gate's held-out split, with the evaluate stage's metric functions.
    assert primary["challenger"] == pytest.approx(store.held_out["good"]["f1"], abs=1e-6)
    assert primary["champion"] == pytest.approx(store.held_out["weak"]["f1"], abs=1e-6)
    assert primary["passed"] is True
    assert rule(report, "guard", "blocked_ham_rate")["passed"] is True
    assert report["test_set"]["rows"] == len(store.texts)
    assert (workdir / "github_output").read_text() == "deploy_needed=true\nchallenger_version=2\nchampion_version=1\n"
    table = capsys.readouterr().out
    assert "v2 (challenger) vs v1 (champion)" in table and "decision: PROMOTE" in table
    assert champion_of(settings) == "1", "the gate itself never moves the champion"

    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    assert cli.main(["promote", "--report", "reports/sms/gate.json"]) == 0
    assert champion_of(settings) == "2"
    (record,) = tracking.promotion_history(settings)
    assert (record.action, record.version, record.previous, record.seq) == ("promote", "2", "1", 1)
    assert record.actor.startswith("github:octocat") and "run 77" in record.actor
    assert record.reason.startswith("gate: f1 ")
    assert record.gate is not None and record.gate["decision"] == "promote"
    assert record.gate["champion"] == "1" and record.gate["test_sha256"] == report["test_set"]["sha256"]
    assert tracking.get_version(settings, "2").tags["gate.decision"] == "promote"


def test_worse_challenger_is_rejected_and_champion_untouched(
    store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = store.register("worse", "good", "weak")
    setup_aliases(settings, challenger="2", champion="1")
    use(monkeypatch, settings)
    monkeypatch.setenv("GITHUB_OUTPUT", str(workdir / "github_output"))
    (workdir / "github_output").write_text("earlier=1\n")

    code, report = gate(store)
    assert code == 0, "a rejection is a decision, not an error"
    assert report["decision"] == "reject" and report["deploy_needed"] is False
    assert rule(report, "primary")["passed"] is False
    assert (workdir / "github_output").read_text() == (
        "earlier=1\ndeploy_needed=false\nchallenger_version=2\nchampion_version=1\n"
    )

    assert cli.main(["promote", "--if-passed"]) == 0
    assert "not promoting" in capsys.readouterr().out
    assert cli.main(["promote"]) == 1
    assert "the gate rejected v2" in capsys.readouterr().err
    assert champion_of(settings) == "1"
    assert tracking.promotion_history(settings) == []


def test_equal_challenger_is_not_better(store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = store.register("equal", "good", "good_again")
    setup_aliases(settings, challenger="2", champion="1")
    use(monkeypatch, settings)

    code, report = gate(store)
    assert code == 0
    assert report["decision"] == "reject"
    primary = rule(report, "primary")
    assert primary["challenger"] == primary["champion"]
    assert primary["note"] == "equal is not better"
    assert [r["rule"] for r in report["rules"] if not r["passed"]] == ["primary"]


def test_guard_violation_rejects_a_better_primary_metric(
    store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = store.register("guarded", "weak", "trigger_happy")
    setup_aliases(settings, challenger="2", champion="1")
    use(monkeypatch, settings)

    code, report = gate(store)
    assert code == 0
    assert report["decision"] == "reject"
    assert rule(report, "primary")["passed"] is True
    guard = rule(report, "guard", "blocked_ham_rate")
    assert guard["passed"] is False
    assert guard["challenger"] == pytest.approx(store.held_out["trigger_happy"]["blocked_ham_rate"], abs=1e-6)
    assert guard["champion"] == pytest.approx(store.held_out["weak"]["blocked_ham_rate"], abs=1e-6)
    assert "guard blocked_ham_rate" in report["reason"]


def test_first_model_is_judged_by_floors_and_promoted(
    store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = store.register("first", "good")
    setup_aliases(settings, challenger="1", champion=None)
    use(monkeypatch, settings)

    code, report = gate(store)
    assert code == 0
    assert report["decision"] == "promote"
    assert report["champion"] is None and report["champion_status"] == "absent"
    assert {r["metric"] for r in report["rules"] if r["rule"] == "floor"} == {"f1", "mcc", "blocked_ham_rate"}
    assert cli.main(["promote"]) == 0
    assert champion_of(settings) == "1"
    assert tracking.promotion_history(settings)[0].previous is None


def test_small_held_out_split_gets_no_verdict_to_promote(
    store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = store.register("small", "good")
    setup_aliases(settings, challenger="1", champion=None)
    use(monkeypatch, settings)
    code, report = gate(store, "--params", str(REPO_ROOT / "params.yaml"))  # min_test_rows 200
    assert code == 0
    assert report["decision"] == "reject"
    assert rule(report, "min_test_rows")["passed"] is False


def test_unloadable_champion_blocks_promotion_unless_treated_as_absent(
    store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = store.register("broken", "doomed", "good")
    artifact_file(store, "doomed").write_bytes(b"not a pickle")
    setup_aliases(settings, challenger="2", champion="1")
    use(monkeypatch, settings)

    code, report = gate(store)
    assert code == 0
    assert report["decision"] == "reject"
    assert report["champion_status"] == "unloadable"
    available = rule(report, "champion_available")
    assert available["passed"] is False and "version 1 cannot be loaded" in available["note"]
    assert cli.main(["promote", "--if-passed"]) == 0
    assert champion_of(settings) == "1"

    code, report = gate(store, "--treat-missing-champion-as-absent")
    assert code == 0
    assert report["decision"] == "promote"
    assert report["champion_status"] == "treated_as_absent"
    assert report["champion"]["version"] == "1"
    assert any(r["rule"] == "floor" for r in report["rules"])
    assert cli.main(["promote"]) == 0
    assert champion_of(settings) == "2"
    assert tracking.promotion_history(settings)[-1].previous == "1"


def test_no_challenger_and_unknown_metric_are_errors(
    store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = store.register("errors", "good")
    setup_aliases(settings, challenger=None, champion=None)
    use(monkeypatch, settings)
    assert cli.main(["gate", "--test", str(store.test_path)]) == 1
    assert "no version of errors has the alias 'challenger'" in capsys.readouterr().err

    tracking.set_alias(settings, "challenger", "1")
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["channels"]["sms"]["gate"]["guards"]["blocked_ham"] = 0.001
    Path("params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["gate", "--test", str(store.test_path)]) == 1
    assert "gate.guards: Value error, unknown metric 'blocked_ham'" in capsys.readouterr().err
    assert not Path("reports/sms/gate.json").exists()


def test_unreachable_store_is_a_clear_error(
    store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("GITHUB_OUTPUT", str(workdir / "github_output"))
    for command in (["gate", "--test", str(store.test_path)], ["rollback"], ["history"]):
        assert cli.main(command) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "'http://127.0.0.1:9'" in err, err
        assert "Traceback" not in err
    assert not (workdir / "reports/sms/gate.json").exists()
    assert not (workdir / "github_output").exists()


def test_rollback_walks_back_and_history_lists_every_change(
    store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = store.register("lineage", "weak", "good", "good_again")
    use(monkeypatch, settings)
    for version, previous in (("1", None), ("2", "1"), ("3", "2")):
        tracking.promote(settings, version, previous, actor="tester", reason=f"to v{version}", gate={})
    assert champion_of(settings) == "3"

    assert cli.main(["rollback", "--reason", "v3 misbehaves"]) == 0
    assert champion_of(settings) == "2"
    assert cli.main(["rollback"]) == 0
    assert champion_of(settings) == "1"
    capsys.readouterr()
    assert cli.main(["rollback"]) == 1
    assert "no earlier champion to roll back to" in capsys.readouterr().err
    assert champion_of(settings) == "1"
    assert cli.main(["rollback", "--to", "3"]) == 0
    assert champion_of(settings) == "3"

    records = tracking.promotion_history(settings)
    assert [(r.seq, r.action, r.version, r.previous) for r in records] == [
        (1, "promote", "1", None),
        (2, "promote", "2", "1"),
        (3, "promote", "3", "2"),
        (4, "rollback", "2", "3"),
        (5, "rollback", "1", "2"),
        (6, "rollback", "3", "1"),
    ]
    assert records[3].reason == "v3 misbehaves"
    capsys.readouterr()
    assert cli.main(["history"]) == 0
    table = capsys.readouterr().out
    assert "lineage: champion history" in table and table.count("  rollback  v") == 3
    assert cli.main(["history", "--json", "--last", "2"]) == 0
    assert [r["seq"] for r in json.loads(capsys.readouterr().out)] == [5, 6]


def test_promotion_is_compare_and_set(store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A verdict judged against a champion that has since changed must not be applied."""
    settings = store.register("stale", "weak", "good", "good_again")
    setup_aliases(settings, challenger="2", champion="1")
    use(monkeypatch, settings)
    code, report = gate(store)
    assert code == 0 and report["decision"] == "promote"
    tracking.promote(settings, "3", "1", actor="someone else", reason="meanwhile", gate={})

    assert cli.main(["promote"]) == 1
    assert champion_of(settings) == "3"
    assert [r.version for r in tracking.promotion_history(settings)] == ["3"]


def race(barrier: Path, commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Run each racer's command in its own process, meeting the other inside the critical section
    (tests/model/promotion_race.py); returns racer → (exit code, stderr)."""
    names = list(commands)
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "tests.model.promotion_race", str(barrier), name, other, "--", *commands[name]],
            env={**env, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, other in zip(names, reversed(names), strict=True)
    }
    outcomes = {}
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=300)
        outcomes[name] = (process.returncode, stderr)
    return outcomes


def test_two_promotions_meeting_inside_the_critical_section_leave_one_champion(
    store: Store, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real processes act on verdicts both judged against v1 and are made to meet after comparing
    the champion and before moving it: the promotion lock must hold the second outside, so it compares
    against the winner and is refused."""
    settings = store.register("race", "weak", "good", "good_again")
    use(monkeypatch, settings)
    reports = {}
    for challenger in ("2", "3"):
        setup_aliases(settings, challenger=challenger, champion="1")
        code, report = gate(store, "--challenger", challenger)
        assert code == 0 and report["decision"] == "promote" and report["champion"]["version"] == "1"
        reports[challenger] = workdir / f"gate-{challenger}.json"
        Path("reports/sms/gate.json").rename(reports[challenger])
    barrier = workdir / "barrier"
    barrier.mkdir()

    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    commands = {f"v{c}": ["spamfilter", "promote", "--report", str(path)] for c, path in reports.items()}
    outcomes = race(barrier, commands, env)
    assert {path.name for path in barrier.iterdir()} >= {"v2.at-lock", "v3.at-lock"}, "both reached the lock"
    winners = [name for name, (code, _) in outcomes.items() if code == 0]
    assert len(winners) == 1, outcomes
    (loser,) = set(outcomes) - set(winners)
    assert "but the gate judged" in outcomes[loser][1] and "Champion unchanged" in outcomes[loser][1]
    assert champion_of(settings) == winners[0].removeprefix("v")
    records = tracking.promotion_history(settings)
    assert [(r.version, r.previous) for r in records] == [(winners[0].removeprefix("v"), "1")]
