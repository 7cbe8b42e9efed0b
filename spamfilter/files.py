"""File I/O at the edges: atomic writes, so a failed step never leaves a half-written output
and never clobbers the previous one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import joblib


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as handle:
        yield handle


def write_text(path: str | Path, content: str) -> None:
    with atomic_open(path) as handle:
        handle.write(content)


def append_text(path: str | Path, content: str) -> None:
    """Append to a file others append to as well (a GitHub Actions `GITHUB_OUTPUT` file)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(content)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def dump_joblib(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        joblib.dump(obj, tmp)


def load_joblib(path: str | Path) -> Any:
    return joblib.load(path)


def md5_file(path: str | Path) -> str:
    """The md5 of a file's bytes: what DVC records for a file output (`dvc.lock`)."""
    return _file_digest(path, "md5")


def sha256_file(path: str | Path) -> str:
    return _file_digest(path, "sha256")


def _file_digest(path: str | Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
