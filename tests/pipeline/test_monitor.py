"""`spamfilter feed` and `spamfilter monitor` in an isolated copy of the repo after a real `dvc repro`:
the reference profile as a DVC output, batches that the next repro merges, the prediction log
(with corrupt rows), the reports and GITHUB_OUTPUT."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from spamfilter import cli
from spamfilter.monitoring import monitor as monitor_io
from spamfilter.monitoring import predlog
from tests.conftest import Project, make_messages, project_with_pipeline

pytestmark = pytest.mark.slow
MESSAGES = make_messages(n_ham=400, n_spam=100, seed=3)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return project_with_pipeline(tmp_path_factory.mktemp("monitor"), MESSAGES)


def monitor(
    project: Project, *args: str, check: bool = True, github_output: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(project.env)
    if github_output is not None:
        env["GITHUB_OUTPUT"] = str(github_output)
    saved, project.env = project.env, env
    try:
        return project.spamfilter("monitor", *args, check=check)
    finally:
        project.env = saved


def test_reference_profile_is_an_output_of_evaluate(built: Project) -> None:
    lock = yaml.safe_load((built.root / "dvc.lock").read_text())
    outs = {out["path"] for out in lock["stages"]["evaluate@sms"]["outs"]}
    assert "models/sms/reference_profile.json" in outs
    deps = {dep["path"] for dep in lock["stages"]["evaluate@sms"]["deps"]}
    assert {"data/processed/sms/train.jsonl", "spamfilter/monitoring"} <= deps
    profile = built.json("models/sms/reference_profile.json")
    stats = built.json("reports/sms/data_stats.json")
    metrics = built.json("reports/sms/metrics.json")
    assert profile["texts"]["messages"] == stats["train_rows"]
    assert len(profile["descriptors"]["length"]["values"]) == stats["train_rows"]
    assert len(profile["scores"]["values"]) == stats["test_rows"]
    assert profile["metrics"]["f1"] == metrics["f1"]
    lock = yaml.safe_load((built.root / "dvc.lock").read_text())
    (model_out,) = [o for o in lock["stages"]["train@sms"]["outs"] if o["path"].endswith("model.joblib")]
    assert profile["model"] == {"md5": model_out["md5"]}  # no run id: the profile is reproducible


def test_empty_log_is_insufficient_data_not_an_error(
    built: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process (the command's own code, without another interpreter start-up).
    output = tmp_path / "github_output"
    output.write_text("earlier=kept\n")
    monkeypatch.chdir(built.root)
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.delenv("PREDICTION_LOG_URL", raising=False)
    assert cli.main(["monitor"]) == 0
    stdout = capsys.readouterr().out
    assert "insufficient data: 0 messages in the window" in stdout
    assert "retrain_needed=false" in stdout
    assert (
        output.read_text() == "earlier=kept\nretrain_needed=false\nmonitor_status=insufficient_data\nretrain_reasons=\n"
    )
    assert not (built.root / "predictions.db").exists()  # looking did not create an empty log
    report = built.json("reports/sms/monitor.json")
    assert report["status"] == "insufficient_data" and report["retrain_needed"] is False
    assert "insufficient data" in (built.root / "reports/sms/monitor.html").read_text()


def test_missing_profile_names_the_stage_that_makes_it(
    built: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(built.root)
    assert cli.main(["monitor", "--profile", "models/missing_profile.json"]) == 1
    stderr = capsys.readouterr().err
    assert "models/missing_profile.json: reference profile not found" in stderr
    assert "`evaluate` stage" in stderr and "dvc repro" in stderr
    assert not (built.root / "predictions.db").exists()


def write_log(built: Project, name: str, missed_spam: int = 0) -> str:
    """A prediction log of the first 200 messages as the pipeline's model scored them, true labels fed
    back for 120, plus two corrupt rows; the first `missed_spam` spam are logged as the model missing them."""
    from spamfilter import files
    from spamfilter.modeling.pipeline import model_threshold, spam_probability

    model = files.load_joblib(built.root / "models/sms/model.joblib")
    rows = MESSAGES[:200]
    scores = spam_probability(model, [message for _, message in rows]).tolist()
    spam_rows = [i for i, (label, _) in enumerate(rows) if label == "spam"][:missed_spam]
    for i in spam_rows:
        scores[i] = 0.01
    url = f"sqlite:///{built.root / name}"
    engine = predlog.connect(url)
    start = datetime.now(UTC) - timedelta(hours=2)
    records = [
        predlog.PredictionRecord(
            str(uuid.uuid4()),
            start + timedelta(seconds=i),
            "1",
            len(message),
            predlog.text_sha256(message),
            score,
            "spam" if score >= model_threshold(model) else "ham",
            message,
        )
        for i, ((_, message), score) in enumerate(zip(rows, scores, strict=True))
    ]
    predlog.insert_predictions(engine, records)
    for record, (label, _) in zip(records[:120], rows[:120], strict=True):
        predlog.insert_feedback(engine, record.id, label)
    with engine.begin() as connection:
        columns = "(id, created_at, model_version, text_length, text_sha256, spam_probability, label, text)"
        connection.execute(
            text(f"INSERT INTO predictions {columns} VALUES ('x1', 'yesterday', '1', 4, 'h', 0.5, 'spam', NULL)")
        )
        connection.execute(
            text(
                f"INSERT INTO predictions {columns} "
                "VALUES ('x2', '2999-01-01 00:00:00', '1', 4, 'h', 'high', 'spam', NULL)"
            )
        )
    engine.dispose()
    return url


def test_prediction_log_window_skips_corrupt_rows_and_clean_traffic_needs_no_retraining(
    built: Project, tmp_path: Path
) -> None:
    output = tmp_path / "github_output"
    result = monitor(built, "--log-url", write_log(built, "clean.db"), "--last", "500", github_output=output)
    report = built.json("reports/sms/monitor.json")
    assert report["window"]["size"] == 200
    assert report["window"]["labelled"] == 120
    assert report["window"]["skipped_rows"] == 2
    assert "2 corrupt rows skipped" in result.stdout
    ran = {c["name"] for c in report["checks"] if c["skipped"] is None}
    assert ran >= {"vocabulary", "domain_classifier", "quality:precision", "quality:recall", "quality:f1"}
    assert [c["name"] for c in report["checks"] if c["drifted"]] == []
    assert (report["status"], report["retrain_needed"]) == ("ok", False)
    assert output.read_text().startswith("retrain_needed=false\n")
    assert "retrain_needed=false" in result.stdout


def test_prediction_log_window_with_missed_spam_asks_for_retraining(built: Project, tmp_path: Path) -> None:
    output = tmp_path / "github_output"
    url = write_log(built, "missed.db", missed_spam=20)
    result = monitor(
        built, "--log-url", url, "--last", "500", "--json", "reports/sms/missed.json", github_output=output
    )
    report = built.json("reports/sms/missed.json")
    fired = {c["name"] for c in report["checks"] if c["drifted"]}
    assert "quality:recall" in fired and "quality:precision" not in fired
    assert report["retrain_needed"] is True
    assert any(reason.startswith("quality:recall") for reason in report["reasons"])
    assert output.read_text().startswith("retrain_needed=true\n")
    assert "retrain_needed=true" in result.stdout


def test_feed_batches_and_monitor_them(built: Project, tmp_path: Path) -> None:
    result = built.spamfilter("feed", "--n", "150", "--drift", "new_campaign", "--strength", "0.5", "--seed", "7")
    assert "150 messages" in result.stdout
    (batch,) = (built.root / "data/new/sms").glob("batch-*-new_campaign.tsv")
    output = tmp_path / "github_output"
    result = monitor(built, "--batch", "data/new/sms", "--json", "reports/sms/batch.json", github_output=output)
    report = built.json("reports/sms/batch.json")
    assert report["window"]["size"] == 150 and report["window"]["labelled"] == 150
    assert str(batch.relative_to(built.root)) in report["window"]["source"]
    assert report["retrain_needed"] is True
    fired = {c["name"] for c in report["checks"] if c["drifted"]}
    assert {"label_spam_rate", "vocabulary"} <= fired
    lines = output.read_text().splitlines()
    assert lines[0] == "retrain_needed=true" and lines[1] == "monitor_status=drift"
    assert "vocabulary" in lines[2]
    assert "<figure><svg" in (built.root / "reports/sms/monitor.html").read_text()


def test_monitor_scores_batches_with_an_mlflow_model_directory(built: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from spamfilter import files
    from spamfilter.registry import tracking

    monkeypatch.chdir(built.root)
    model_dir = Path("bundle/sms/model")  # where an exported bundle of the channel keeps its MLflow model
    tracking.save_model(files.load_joblib("models/sms/model.joblib"), model_dir, ["free prize", "hi"])
    assert (
        cli.main(["monitor", "--batch", "data/new/sms", "--model", "bundle/sms", "--json", "reports/sms/bundle.json"])
        == 0
    )
    scores = {
        name: next(c for c in built.json(f"reports/sms/{name}.json")["checks"] if c["name"] == "score_distribution")
        for name in ("batch", "bundle")  # batch.json: the same batches scored with models/sms/model.joblib
    }
    assert scores["bundle"]["details"]["current_hist"] == scores["batch"]["details"]["current_hist"]


def test_ingest_merges_the_batches(built: Project) -> None:
    """What the next `dvc repro` does first (the ingest stage's own command, without retraining)."""
    before = built.json("reports/sms/data_stats.json")
    built.python("stages/ingest.py")
    after = built.json("reports/sms/data_stats.json")
    assert after["new_batch_rows"] == 150
    assert after["bad_rows"] == 0
    # The campaign's messages are new; the rest were sampled from the corpus and are duplicates.
    assert after["rows"] == before["rows"] + 75
    assert after["duplicates_dropped"] == 75


def test_log_window_by_time_compares_in_utc(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = predlog.connect(url)
    start = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    predlog.insert_predictions(
        engine,
        [
            predlog.PredictionRecord(f"id{i}", start + timedelta(minutes=i), "1", 5, "h", 0.1, "ham", "hello")
            for i in range(10)
        ],
    )
    engine.dispose()
    since_utc = datetime(2025, 6, 1, 12, 6, tzinfo=UTC)
    since_paris = datetime.fromisoformat("2025-06-01T14:06:00+02:00")  # the same instant
    for since in (since_utc, since_paris):
        rows = monitor_io.WindowRows()
        monitor_io.read_log_window(url, None, since, rows)
        assert len(rows.lengths) == 4
    rows = monitor_io.WindowRows()
    monitor_io.read_log_window(url, 3, None, rows)
    assert rows.first_at.startswith("2025-06-01T12:07") and rows.last_at.startswith("2025-06-01T12:09")
