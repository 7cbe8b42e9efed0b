"""Telling every worker process of one server to reload.

POST /admin/reload reaches one worker. It reloads there and writes a new token to a file in
the server's run directory (API_RUN_DIR, made by `python -m api` and shared by its workers);
each worker checks the file's token about once a second and reloads when it changes.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

SIGNAL_FILE = "reload-request"


class ReloadSignal:
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / SIGNAL_FILE
        self.seen = self.read()

    def read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def announce(self) -> None:
        """Ask the other workers to reload (this one has already)."""
        token = uuid.uuid4().hex
        temporary = self.path.with_name(f".{SIGNAL_FILE}.{os.getpid()}")
        temporary.write_text(token, encoding="utf-8")
        temporary.replace(self.path)  # atomic: a reader sees the old token or the new, never half
        self.seen = token

    def requested(self) -> bool:
        """True once for each token announced by another worker since the last call."""
        token = self.read()
        if token is not None and token != self.seen:
            self.seen = token
            return True
        return False
