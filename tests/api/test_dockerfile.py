"""The serving image's definition: hadolint-clean, multi-stage, non-root, serving deps only."""

from __future__ import annotations

import re
import subprocess

from api.settings import ApiSettings
from tests.api.conftest import DOCKERFILE, dockerfile_instructions, image_command_and_env
from tests.conftest import REPO_ROOT, VENV_BIN


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_slim_non_root_with_healthcheck() -> None:
    instructions = dockerfile_instructions()
    froms = [args for name, args in instructions if name == "FROM"]
    assert len(froms) >= 2 and all("slim" in base for base in froms)
    final = instructions[max(i for i, (name, _) in enumerate(instructions) if name == "FROM") :]
    users = [args for name, args in final if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    healthchecks = [args for name, args in final if name == "HEALTHCHECK"]
    assert healthchecks and "/health" in healthchecks[0]
    copies = " ".join(args for name, args in final if name == "COPY")
    assert "bundle" in copies and "api" in copies and "--from=build" in copies


def test_image_command_and_environment_are_valid_settings() -> None:
    command, env = image_command_and_env()
    assert command == ["python", "-m", "api"]
    settings = ApiSettings(_env_file=None, **{k: v for k, v in env.items() if k != "PATH"})  # type: ignore[arg-type]
    assert settings.model_uri == "bundle/sms"
    assert settings.spamd_port is None  # the spamd listener is off unless asked for
    assert settings.workers >= 1 and settings.host == "0.0.0.0"


def test_the_image_installs_no_training_or_test_tools() -> None:
    # That the serving pins equal the full set's is checked in tests/ci/test_requirements.py.
    serve = (REPO_ROOT / "requirements-serve.txt").read_text(encoding="utf-8")
    assert not re.findall(r"^(dvc|matplotlib|pytest)\b", serve, flags=re.M)
    ignored = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8")
    assert "!bundle/" in ignored and "!api/" in ignored
