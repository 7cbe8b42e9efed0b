"""A real PostgreSQL server for the tests, from Debian's binaries, on a Unix socket in tmp.

PostgreSQL refuses to run as root, so when the tests run as root (CI does) `initdb` and `pg_ctl` run
as the `postgres` system user that Debian's package creates, through `runuser`. The server listens on
no TCP port at all, only on a socket in its own directory, and runs in a time zone other than UTC
(India's, +05:30, half an hour off so no whole-hour mistake hides) so code that assumes the server's
zone is UTC shows up.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_TIMEZONE = "Asia/Kolkata"
SYSTEM_USER = "postgres"


def missing_reason() -> str | None:
    """Why no server can be started here, or None."""
    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).is_file():
            return f"{PG_BIN / tool} not found: install Debian's postgresql (15) or set PG_BIN"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            return f"running as root and there is no {SYSTEM_USER!r} user to run PostgreSQL as"
    return None


@dataclass
class PostgresServer:
    root: Path

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
                + (log.read_text(errors="replace") if log.exists() else "")
            )
        return result

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"),
            "--pgdata",
            str(self.datadir),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-k {self.socket_dir} -c listen_addresses='' -c timezone={SERVER_TIMEZONE} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(PG_BIN / "pg_ctl"), "--pgdata", str(self.datadir), "--log", str(self.root / "server.log"), "--wait",
            "--options", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "--pgdata", str(self.datadir), "--mode", "fast", "--wait", "stop")

    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3) to `database` over the server's socket."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=str(self.socket_dir), user="postgres", dbname="postgres", autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_server() -> PostgresServer:
    """Initialise and start a server in a new directory (owned by the user it runs as)."""
    # Not under pytest's tmp directory: that is private to root, and the server may run as postgres.
    root = Path(tempfile.mkdtemp(prefix="spamfilter-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, SYSTEM_USER, SYSTEM_USER)
    server = PostgresServer(root)
    try:
        server.init()
        server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def remove_server(server: PostgresServer) -> None:
    if server.running():
        server.stop()
    shutil.rmtree(server.root, ignore_errors=True)
