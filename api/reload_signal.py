"""Telling every worker process of one server to reload.

POST /admin/reload reaches one worker. It reloads there and writes a new token, with the channels
to reload, to a file in the server's run directory (API_RUN_DIR, made by `python -m api` and shared
by its workers); each worker checks the file about twice a second and reloads those channels when the
token changes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

SIGNAL_FILE = "reload-request"


class ReloadSignal:
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / SIGNAL_FILE
        self.seen = self._read()[0]

    def _read(self) -> tuple[str | None, tuple[str, ...]]:
        """The token in the file and the channels it names (one line: `<token> <channel>,<channel>`)."""
        try:
            token, _, channels = self.path.read_text(encoding="utf-8").strip().partition(" ")
        except FileNotFoundError:
            return None, ()
        return token or None, tuple(name for name in channels.split(",") if name)

    def announce(self, channels: Sequence[str]) -> None:
        """Ask the other workers to reload `channels` (this one has already)."""
        token = uuid.uuid4().hex
        temporary = self.path.with_name(f".{SIGNAL_FILE}.{os.getpid()}")
        temporary.write_text(f"{token} {','.join(channels)}", encoding="utf-8")
        temporary.replace(self.path)  # atomic: a reader sees the old token or the new, never half
        self.seen = token

    def requested(self) -> tuple[str, ...] | None:
        """The channels another worker asked to reload since the last call (once per request), else None."""
        token, channels = self._read()
        if token is not None and token != self.seen:
            self.seen = token
            return channels
        return None
