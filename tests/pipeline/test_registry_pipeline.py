"""End to end in an isolated copy of the repo: data → `dvc repro` → gate → promote → export.
(A retrain on identical data and params is judged equal, so not promoted: tests/model/test_gate_registry.py.)"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass

import mlflow
import pandas as pd
import pytest
import yaml

from spamfilter import cli
from spamfilter.config import Settings
from spamfilter.registry import bundle, loading, tracking
from tests.conftest import Project, make_messages, make_project, write_tsv

pytestmark = pytest.mark.slow


@dataclass
class Released:
    project: Project
    settings: Settings
    first_gate: dict
    outputs: dict[str, str]


def run_cli(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(argv))
    assert code == 0, f"spamfilter {' '.join(argv)} exited {code}"
    return out.getvalue()


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    root = tmp_path_factory.mktemp("release")
    corpus = write_tsv(root / "corpus.tsv", make_messages(n_ham=240, n_spam=60))
    project = make_project(root / "repo", {"SPAM_DATA": str(corpus)})
    params_file = project.root / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["channels"]["sms"]["gate"]["min_test_rows"] = 50  # the fixture corpus's held-out split has 60 messages
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    project.run("git", "commit", "-q", "-m", "gate params for the fixture corpus", "--", "params.yaml")

    outputs = {}
    project.spamfilter("data")
    project.dvc("repro")
    outputs["gate"] = project.spamfilter("gate").stdout  # the console command, as CI and `make run` call it
    first_gate = json.loads((project.root / "reports/sms/gate.json").read_text())
    # The rest in-process (each command is a few seconds of imports as a process), in the copy's env.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project.root)
        for key, value in project.env.items():
            patch.setenv(key, value)
        outputs["promote"] = run_cli("promote", "--if-passed")
        outputs["export"] = run_cli("export")
        outputs["summary"] = run_cli("summary")
        outputs["again"] = run_cli("gate") + run_cli("promote", "--if-passed")
    settings = Settings(
        MLFLOW_TRACKING_URI=project.env["MLFLOW_TRACKING_URI"],
        SPAM_MLFLOW_ARTIFACT_ROOT=project.env["SPAM_MLFLOW_ARTIFACT_ROOT"],
    )
    return Released(project, settings, first_gate, outputs)


def test_evaluate_makes_the_new_version_challenger_with_lineage_tags(released: Released) -> None:
    root = released.project.root
    challenger = tracking.get_version(released.settings, "challenger")
    assert challenger.version == "1"
    tags = challenger.tags
    head = released.project.run("git", "rev-parse", "HEAD").stdout.strip()
    assert tags["git_commit"].startswith(head)
    assert tags["data_raw_md5"] == yaml.safe_load((root / "data/raw/sms.dvc").read_text())["outs"][0]["md5"]
    assert tags["data_sha256"] == json.loads((root / "data/processed/sms/manifest.json").read_text())["dataset_sha256"]
    assert len(tags["dvc_lock_md5"]) == 32 and len(tags["params_sha256"]) == 64
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    (model_out,) = [out for out in lock["stages"]["train@sms"]["outs"] if out["path"].endswith("model.joblib")]
    assert tags["dvc_model_md5"] == model_out["md5"]
    assert float(tags["metric.f1"]) == pytest.approx(released.first_gate["challenger"]["metrics"]["f1"])
    assert tags["gate.decision"] == "promote"


def test_first_run_promotes_by_the_floors_and_exports_the_champion(released: Released) -> None:
    gate = released.first_gate
    assert (gate["decision"], gate["champion_status"], gate["challenger"]["version"]) == ("promote", "absent", "1")
    assert gate["test_set"]["rows"] == 60
    # The gate scored on the same split with the same functions as the evaluate stage.
    metrics = json.loads((released.project.root / "reports/sms/metrics.json").read_text())
    assert gate["challenger"]["metrics"] == {k: metrics[k] for k in gate["challenger"]["metrics"]}
    assert "decision: PROMOTE" in released.outputs["gate"]
    assert "@champion: none → v1" in released.outputs["promote"]

    (record,) = tracking.promotion_history(released.settings)
    assert (record.version, record.previous, record.action) == ("1", None, "promote")
    meta = bundle.read_bundle_metadata(released.project.root / "bundle/sms")
    assert (meta.version, meta.alias, meta.channel) == ("1", "champion", "sms")
    assert meta.metrics["f1"] == metrics["f1"]
    assert meta.data_fingerprint.test_rows == 60

    summary = released.outputs["summary"]
    assert "metrics (60 held-out messages): f1" in summary
    assert "gate: PROMOTE v1" in summary and "bundle: bundle/sms = spam-classifier v1 (champion)" in summary


def test_champion_loads_by_alias_and_matches_the_bundle(released: Released) -> None:
    mlflow.set_tracking_uri(released.settings.mlflow_tracking_uri)
    champion = mlflow.pyfunc.load_model("models:/spam-classifier@champion")
    served = loading.load_pipeline(released.project.root / "bundle/sms" / bundle.MODEL_DIR)
    texts = [json.loads(line)["text"] for line in (released.project.root / "data/processed/sms/test.jsonl").open()]
    assert list(champion.predict(pd.DataFrame({"text": texts}))) == list(served.predict(texts))


def test_gate_again_on_the_champion_changes_nothing(released: Released) -> None:
    """After promotion the challenger is the champion: judged equal to itself, so no second promotion."""
    assert "decision: REJECT — v1 is already the champion" in released.outputs["again"]
    assert "not promoting" in released.outputs["again"]
    assert tracking.get_version(released.settings, "champion").version == "1"
    assert len(tracking.promotion_history(released.settings)) == 1
