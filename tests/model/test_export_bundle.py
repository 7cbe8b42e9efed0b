"""`spamfilter export`: the serving bundle loads and predicts exactly as the registry's champion,
and the champion stays loadable and servable by MLflow itself."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from spamfilter import cli
from spamfilter.config import Settings
from spamfilter.modeling.metrics import METRIC_KEYS, OBVIOUS_HAM, OBVIOUS_SPAM
from spamfilter.modeling.pipeline import spam_probability
from spamfilter.registry import bundle, loading, tracking
from tests.conftest import VENV_BIN
from tests.model.registry_helpers import Store, build_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_store(tmp_path_factory.mktemp("export"), only=("weak", "good"))


@pytest.fixture(scope="module")
def champion(store: Store) -> Settings:
    """`exported` has v1 = weak, v2 = good; the champion is v2."""
    settings = store.register("exported", "weak", "good")
    tracking.set_version_tags(settings, "2", {"data_raw_md5": "abc.dir", "data_sha256": "f" * 64, "data_rows": "260"})
    tracking.promote(settings, "2", None, actor="tester", reason="test", gate={})
    return settings


@pytest.fixture
def env(champion: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.mlflow_tracking_uri)
    monkeypatch.setenv("SPAM_REGISTERED_MODEL", champion.registered_model)
    return tmp_path


def test_export_writes_the_contract(store: Store, champion: Settings, env: Path) -> None:
    assert cli.main(["export"]) == 0
    out = env / "bundle" / "sms"  # the default channel's bundle
    assert [p.name for p in (env / "bundle").iterdir()] == ["sms"]
    assert {p.name for p in out.iterdir()} == {"model", "metadata.json", "model_card.md"}
    meta = bundle.read_bundle_metadata(out)
    version = tracking.get_version(champion, "champion")
    assert (meta.name, meta.version, meta.alias, meta.channel) == ("exported", "2", "champion", "sms")
    assert meta.run_id == version.run_id
    assert meta.model_uri == "models:/exported/2"
    assert set(meta.metrics) == set(METRIC_KEYS)
    assert meta.metrics == pytest.approx(store.metrics["good"])
    assert meta.threshold == 0.5
    assert meta.data_fingerprint.raw_md5 == "abc.dir" and meta.data_fingerprint.rows == 260
    assert meta.params["train.threshold"] == 0.5 and meta.params["train.model"] == "logreg"
    trained, exported = datetime.fromisoformat(meta.trained_at), datetime.fromisoformat(meta.exported_at)
    assert trained.tzinfo is not None and exported.tzinfo is not None
    assert trained - timedelta(seconds=1) <= exported  # exported_at is to the second
    raw = json.loads((out / "metadata.json").read_text())
    assert set(raw) == {
        "name", "channel", "version", "alias", "run_id", "model_uri", "metrics", "threshold",
        "trained_at", "exported_at", "data_fingerprint", "params",
    }  # fmt: skip
    card = (out / "model_card.md").read_text()
    assert card.startswith("# Model card: exported version 2")
    assert f"| f1 | {store.metrics['good']['f1']:.4f} |" in card and "| raw_md5 | abc.dir |" in card


def test_bundle_predicts_exactly_as_the_registry_champion(store: Store, champion: Settings, env: Path) -> None:
    assert cli.main(["export", "--out", "served"]) == 0
    texts = [*store.texts, *OBVIOUS_SPAM, *OBVIOUS_HAM, "", "   ", "ÜNÏCÖDÉ £££ 📱"]
    frame = pd.DataFrame({"text": texts})

    from_bundle = loading.load_pipeline(env / "served" / bundle.MODEL_DIR)
    mlflow.set_tracking_uri(champion.mlflow_tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/exported@champion")
    native = loading.load_pipeline("models:/exported@champion", champion)

    assert list(from_bundle.classes_) == ["ham", "spam"]
    np.testing.assert_array_equal(spam_probability(from_bundle, texts), spam_probability(native, texts))
    assert list(pyfunc.predict(frame)) == list(from_bundle.predict(texts))
    bundle_pyfunc = mlflow.pyfunc.load_model(str(env / "served" / bundle.MODEL_DIR))
    assert list(bundle_pyfunc.predict(frame)) == list(pyfunc.predict(frame))
    downloaded = tracking.download_version(champion, tracking.get_version(champion, "2"), env / "dl")
    assert filecmp.cmp(downloaded / "model.pkl", env / "served" / "model" / "model.pkl", shallow=False)


def test_export_by_version_or_alias_and_failed_export_keeps_the_old_bundle(
    champion: Settings, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = env / "bundle" / "sms"  # the default channel's bundle
    assert cli.main(["export", "--version", "1"]) == 0
    meta = bundle.read_bundle_metadata(out)
    assert (meta.version, meta.alias) == ("1", None)
    assert cli.main(["export", "--alias", "challenger"]) == 1
    assert "no version of exported has the alias 'challenger'" in capsys.readouterr().err
    assert bundle.read_bundle_metadata(out).version == "1"
    assert cli.main(["export"]) == 0
    assert bundle.read_bundle_metadata(out).version == "2"
    # The bundle is staged beside it, in bundle/: nothing may be left there or in the working directory.
    leftovers = [p for folder in (env, env / "bundle") for p in folder.iterdir() if p.name.startswith(".")]
    assert leftovers == [], "no staging leftovers"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mlflow_serves_the_champion(champion: Settings, tmp_path: Path) -> None:
    """`mlflow models serve -m models:/<name>@champion --env-manager local` starts and answers."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": champion.mlflow_tracking_uri,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
    }
    server = subprocess.Popen(
        [
            *(str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/exported@champion"),
            *("--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "w"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "server did not start within 60 s"
                time.sleep(0.3)
        body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[OBVIOUS_SPAM[0]], [OBVIOUS_HAM[0]]]}})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"predictions": ["spam", "ham"]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
