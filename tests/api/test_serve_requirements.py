"""The image's dependency set: the API run from a venv built from requirements-serve.txt alone (what the
Dockerfile installs: mlflow-skinny, no scikit-learn extras of the train set, no test tools), serving the
session bundle end to end. The other API tests run in the full development environment, where a module
missing from requirements-serve.txt would go unnoticed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spamfilter.modeling.pipeline import spam_probability
from tests.api.conftest import Server, free_port, image_command_and_env
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

SPAM_TEXT = "WINNER!! You have won a £1000 prize. Call 09061234567 now to claim"


@pytest.fixture(scope="module")
def serve_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with requirements-serve.txt and the package (without its dependencies), as the image has."""
    venv = tmp_path_factory.mktemp("serve-venv") / "venv"
    python = venv / "bin" / "python"
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    # uv (a dev dependency) builds the venv in seconds where pip takes minutes; pip when uv is absent.
    if uv is not None:
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
        install = [uv, "pip", "install", "--quiet", "--python", str(python)]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(
        [*install, "-r", str(REPO_ROOT / "requirements-serve.txt")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed = (
        subprocess.run(
            [
                str(python),
                "-c",
                "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.lower()
        .split()
    )
    assert "mlflow-skinny" in listed and "mlflow" not in listed, "the serve set must not pull in full mlflow"
    return python


@pytest.fixture(scope="module")
def serve_only_server(serve_venv: Path, tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path) -> Iterator[Server]:
    """The image's CMD and ENV, run by the serve-only venv's interpreter, the repo on PYTHONPATH (as the image
    installs the package with --no-deps)."""
    workdir = tmp_path_factory.mktemp("serve-only")
    shutil.copytree(bundle_dir, workdir / "bundle" / "sms")  # the image's default MODEL_URI
    command, image_env = image_command_and_env()
    assert command[0] == "python", command
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "SPAM_", "API_"))}
    env.update({key: value for key, value in image_env.items() if key not in ("PATH", "PYTHONPATH")})
    port = free_port()
    env.update(
        {
            "PATH": f"{serve_venv.parent}:/usr/bin:/bin",
            "VIRTUAL_ENV": str(serve_venv.parent.parent),
            "PYTHONPATH": str(REPO_ROOT),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PREDICTION_LOG_URL": f"sqlite:///{workdir / 'predictions.db'}",
        }
    )
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(serve_venv), *command[1:]], cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path, env, workdir)
    try:
        server.wait_ready(timeout=180)
        yield server
    finally:
        server.stop()


def test_the_serve_only_environment_serves_the_bundle_end_to_end(serve_only_server: Server, default_model: Any) -> None:
    with serve_only_server.client() as client:
        assert client.get("/ready").status_code == 200
        assert client.get("/model").json()["version"] == "1"
        answer = client.post("/predict", json={"text": SPAM_TEXT}).json()
        assert (answer["label"], answer["model_version"]) == ("spam", "1")
        assert answer["spam_probability"] == pytest.approx(
            float(spam_probability(default_model, [SPAM_TEXT])[0]), abs=1e-12
        )
        batch = client.post("/predict/batch", json={"texts": [SPAM_TEXT, "see you at lunch"]}).json()
        assert [item["label"] for item in batch["predictions"]] == ["spam", "ham"]
        feedback = client.post("/feedback", json={"prediction_id": answer["prediction_id"], "label": "spam"})
        assert feedback.status_code == 201, feedback.text
        assert "spam_api_requests_total" in httpx.get(f"{serve_only_server.url}/metrics", timeout=30).text
    assert "Traceback" not in serve_only_server.log_text()
