"""The MLflow UI reads well: each registered model and version carries a Markdown description (channel,
held-out metrics, the gate's verdict, lineage), and the champion history is a table there rather than
JSON in tag values. Against a real SQLite store, through the same commands as `make run`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from spamfilter import cli
from spamfilter.registry import tracking
from tests.model.registry_helpers import Store, build_store

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_store(tmp_path_factory.mktemp("descriptions"), only=("good", "weak"))


def test_versions_and_the_model_describe_themselves_in_markdown(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    gate = params["channels"]["sms"]["gate"]
    gate["min_test_rows"] = 20
    gate["floors"] = {"f1": 0.3, "mcc": 0.3, "blocked_ham_rate": 0.5}  # so the weak model becomes the first champion
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    settings = store.register("described", "weak", "good")
    for key, value in (
        ("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri),
        ("SPAM_MLFLOW_ARTIFACT_ROOT", settings.mlflow_artifact_root),
        ("SPAM_REGISTERED_MODEL", settings.registered_model),
    ):
        monkeypatch.setenv(key, value)
    client = MlflowClient(settings.mlflow_tracking_uri)
    for version in ("1", "2"):
        run_id = client.get_model_version("described", version).run_id
        tracking.mark_challenger(settings, version, run_id, {"channel": "sms"})
        assert cli.main(["gate", "--channel", "sms", "--test", str(store.test_path)]) == 0
        assert cli.main(["promote", "--channel", "sms", "--if-passed"]) == 0

    first, second = (client.get_model_version("described", v).description for v in ("1", "2"))
    assert first.startswith("# Version 1 (sms)") and second.startswith("# Version 2 (sms)")
    # Each version's own held-out F1 as the run logged it, and the gate's decision on it.
    for text, model in ((first, "weak"), (second, "good")):
        assert f"| f1 | {store.metrics[model]['f1']:.4f} |" in text
    assert "**PROMOTE**" in first and "**PROMOTE**" in second and "against v1" in second
    described = client.get_registered_model("described").description
    assert described.startswith("# described\n\nChannel: **sms**.")
    assert "`champion` is **v2**." in described
    table = described.split("## Champion history", 1)[1]
    assert table.index("| 2 | ") < table.index("| 1 | ")  # newest first
    assert "| promote | v2 | v1 |" in table and "| promote | v1 | — |" in table
