"""The codebase stays ruff-clean (lint and format), as `make lint` checks."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO_ROOT, VENV_BIN


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff(command: list[str]) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "ruff"), *command], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
