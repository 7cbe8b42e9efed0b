"""Shared behaviour of command-line entry points: logging set-up and clean failure on bad input."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable

from spamfilter.errors import SpamfilterError

log = logging.getLogger("spamfilter")

# Errors that describe bad input or environment: reported as one clear message, no traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (SpamfilterError, FileNotFoundError, PermissionError)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "mlflow", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run an entry point: configure logging, turn expected errors into `error: …` and exit 1."""
    configure_logging()
    try:
        return int(main(argv) or 0)
    except EXPECTED_ERRORS as exc:
        message = str(exc)
        if isinstance(exc, FileNotFoundError) and exc.filename:
            message = f"{exc.filename}: file not found"
        print(f"error: {message}", file=sys.stderr)
        return 1


def git_commit() -> str:
    """The checked-out commit, with `-dirty` when tracked files have uncommitted changes ("unknown"
    outside a git checkout)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty.strip() else commit
