"""The four DVC stages on a generated fixture corpus, in an isolated copy of the repo, with real
DVC and a real MLflow SQLite store."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import Project, make_messages, make_project, project_with_pipeline

pytestmark = pytest.mark.slow
STAGES = [f"{stage}@sms" for stage in ("ingest", "featurize", "train", "evaluate")]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One project copy in which `spamfilter data` and `dvc repro` have run on the fixture corpus."""
    return project_with_pipeline(tmp_path_factory.mktemp("pipeline"), make_messages(n_ham=240, n_spam=60))


def test_repro_writes_every_stage_to_dvc_lock(built: Project) -> None:
    lock = yaml.safe_load((built.root / "dvc.lock").read_text())
    assert list(lock["stages"]) == STAGES
    assert lock["stages"]["ingest@sms"]["params"]["params.yaml"]["channels.sms.ingest"]["test_size"] == 0.2
    train_deps = {dep["path"] for dep in lock["stages"]["train@sms"]["deps"]}
    assert {"stages/train.py", "data/features/sms/train.npz"} <= train_deps


def test_data_dvc_tracks_the_fixture_corpus(built: Project) -> None:
    dvc_file = yaml.safe_load((built.root / "data/raw/sms.dvc").read_text())
    assert dvc_file["outs"][0]["path"] == "sms"  # relative to data/raw/sms.dvc
    assert (built.root / "data/raw/sms/corpus.tsv").is_file()
    status = built.dvc("status", "data/raw/sms.dvc", "--json")
    assert json.loads(status.stdout) == {}


def test_ingest_stats_and_split(built: Project) -> None:
    stats = built.json("reports/sms/data_stats.json")
    assert stats["rows_read"] == 300
    assert stats["rows"] == 300
    assert stats["duplicates_dropped"] == 0
    assert stats["train_rows"] + stats["test_rows"] == 300
    assert stats["test_rows"] == 60
    assert stats["spam_rate"] == pytest.approx(0.2)


def test_evaluate_writes_all_metric_keys_and_plots(built: Project) -> None:
    metrics = built.json("reports/sms/metrics.json")
    for key in (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "mcc",
        "roc_auc",
        "pr_auc",
        "spam_caught_rate",
        "blocked_ham_rate",
    ):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["f1"] > 0.9
    for name in ("roc.png", "pr.png", "confusion.png", "roc.json", "pr.json", "confusion.json"):
        assert (built.root / "reports/sms/plots" / name).stat().st_size > 0
    assert set(built.json("reports/sms/behavioural.json")) == {
        "case_invariance",
        "whitespace_invariance",
        "obvious_spam",
        "obvious_ham",
    }
    shown = built.dvc("metrics", "show", "--json")
    assert "f1" in shown.stdout
    plots = built.dvc("plots", "show", "--json")
    assert "roc.json" in plots.stdout


def test_rerun_is_a_no_op(built: Project) -> None:
    lock_before = (built.root / "dvc.lock").read_text()
    result = built.dvc("repro")
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in result.stdout
    assert (built.root / "dvc.lock").read_text() == lock_before
    assert "up to date" in built.dvc("status").stdout


def test_mlflow_run_has_params_metrics_tags_and_a_registered_model(built: Project) -> None:
    db = sqlite3.connect(built.root / "mlflow.db")
    ((run_id,),) = db.execute("select run_id from model_versions where name = 'spam-classifier' and version = 1")
    params = dict(db.execute("select key, value from params where run_uuid = ?", (run_id,)))
    assert params["train.model"] == "linear_svm"
    assert params["featurize.stemmer"] == "porter"
    assert params["ingest.test_size"] == "0.2"
    metrics = {key for (key,) in db.execute("select key from latest_metrics where run_uuid = ?", (run_id,))}
    assert {"test_f1", "test_mcc", "test_roc_auc", "test_blocked_ham_rate"} <= metrics
    tags = dict(db.execute("select key, value from tags where run_uuid = ?", (run_id,)))
    # The run is found by the md5 of the model DVC tracks, not by a run id in a DVC output.
    assert tags["model_md5"] == hashlib.md5((built.root / "models/sms/model.joblib").read_bytes()).hexdigest()
    assert len(tags["data_raw_md5"]) > 30
    assert tags["data_rows"] == "300"
    assert len(tags["git_commit"]) >= 40
    artifacts = built.root / "mlartifacts"
    assert any(artifacts.rglob("roc.png"))
    assert any(artifacts.rglob("MLmodel"))


def test_registered_model_loads_through_pyfunc_and_scores_each_row(built: Project) -> None:
    script = (
        "import mlflow, pandas as pd, json\n"
        "m = mlflow.pyfunc.load_model('models:/spam-classifier/1')\n"
        "texts = ['WINNER!! Call 09061701461 to claim your £900 prize', 'see you at the gym', 'ok']\n"
        "print(json.dumps([str(x) for x in m.predict(pd.DataFrame({'text': texts}))]))\n"
        "print(json.dumps(m.metadata.get_input_schema().input_names()))\n"
    )
    out = built.python("-c", script).stdout.strip().splitlines()
    predictions, inputs = json.loads(out[-2]), json.loads(out[-1])
    assert len(predictions) == 3
    assert predictions[0] == "spam"
    assert predictions[1] == "ham"
    assert inputs == ["text"]


def test_changing_a_train_param_reruns_only_train_and_evaluate(built: Project) -> None:
    result = built.dvc("exp", "run", "-S", "channels.sms.train.model=mnb")
    assert "Stage 'ingest@sms' didn't change" in result.stdout
    assert "Stage 'featurize@sms' didn't change" in result.stdout
    assert "Running stage 'train@sms'" in result.stdout
    shown = json.loads(built.dvc("exp", "show", "--json").stdout)
    # `dvc exp show` always lists the workspace and the commit: the experiment must be there as its own
    # run under the commit, with the parameter it changed and the metrics its evaluate wrote.
    committed = [entry for entry in shown if entry["rev"] != "workspace"]
    experiments = [run for entry in committed for run in exp_runs(entry.get("experiments") or [])]
    assert [train_model_of(run) for run in committed] == ["linear_svm"], committed
    assert [train_model_of(run) for run in experiments] == ["mnb"], experiments
    (metrics,) = [m["data"] for path, m in experiments[0]["data"]["metrics"].items() if path.endswith("metrics.json")]
    assert 0 < metrics["f1"] <= 1 and metrics["test_rows"] > 0


def exp_runs(node: Any) -> Iterator[dict[str, Any]]:
    """Every run record (workspace, commit, experiment) in `dvc exp show --json` output."""
    if isinstance(node, dict):
        if "rev" in node and "data" in node:
            yield node
        for value in node.values():
            yield from exp_runs(value)
    elif isinstance(node, list):
        for value in node:
            yield from exp_runs(value)


def train_model_of(run: dict[str, Any]) -> str:
    params = run["data"]["params"]["params.yaml"]["data"]
    return str(params["channels"]["sms"]["train"]["model"] if "channels" in params else params["train"]["model"])


def test_bad_batch_fails_ingest_with_file_and_line_and_keeps_outputs(built: Project) -> None:
    train_before = (built.root / "data/processed/sms/train.jsonl").read_bytes()
    batch = built.root / "data/new/sms/batch-bad.tsv"
    batch.write_text("ham\tfine message\nspam\nmaybe\tunknown label\n", encoding="utf-8")
    try:
        result = built.run("python", "stages/ingest.py", check=False)
        assert result.returncode == 1
        assert "data/new/sms/batch-bad.tsv:2: no tab between label and text" in result.stderr
        assert "data/new/sms/batch-bad.tsv:3: unknown label 'maybe'" in result.stderr
        assert (built.root / "data/processed/sms/train.jsonl").read_bytes() == train_before

        repro = built.dvc("repro", "ingest@sms", check=False)
        assert repro.returncode != 0
        assert "batch-bad.tsv:2" in repro.stderr + repro.stdout
    finally:
        batch.unlink()
        built.dvc("checkout", "--force")


def test_drop_policy_writes_the_bad_rows_report(tmp_path: Path) -> None:
    rows = make_messages(n_ham=40, n_spam=10)
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text(
        "label\ttext\n" + "".join(f"{lab}\t{txt}\n" for lab, txt in rows) + "spam\t   \nhm\thello\n", encoding="utf-8"
    )
    project = make_project(tmp_path / "repo", {"SPAM_DATA": str(corpus)})
    project.spamfilter("data")
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    params["channels"]["sms"]["ingest"]["on_bad_row"] = "drop"
    (project.root / "params.yaml").write_text(yaml.safe_dump(params))
    project.python("stages/ingest.py")
    report = pd.read_csv(project.root / "reports/sms/bad_rows.tsv", sep="\t")
    assert report["line"].tolist() == [52, 53]
    assert report["reason"].tolist() == ["empty text", "unknown label 'hm' (expected ham or spam)"]
    assert json.loads((project.root / "reports/sms/data_stats.json").read_text())["bad_rows"] == 2
