"""Obtaining the raw corpus: a file the user names, `dvc pull`, or the public UCI download.

The UCI archive's `SMSSpamCollection` member is checked against a pinned sha256; whatever the
source, the corpus is validated before it replaces what `data/raw/` holds, and written atomically.
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from spamfilter import files
from spamfilter.data.corpus import parse_corpus
from spamfilter.errors import DataError

log = logging.getLogger(__name__)

UCI_MEMBER = "SMSSpamCollection"
UCI_MEMBER_SHA256 = "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"
HEADER = b"label\ttext\n"
CANONICAL_NAME = "sms_spam_collection.tsv"
CANONICAL_SHA256 = "76405a0d457e7fcae7d9d688a1db78d4c7666ace301e18a4f0d9f628764344df"
ZIP_MAGIC = b"PK\x03\x04"


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def extract_uci_member(archive: bytes, source: str, expected_sha256: str = UCI_MEMBER_SHA256) -> bytes:
    """The verified `SMSSpamCollection` bytes from the UCI zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            names = bundle.namelist()
            member = next((n for n in names if Path(n).name == UCI_MEMBER), None)
            if member is None:
                raise DataError(
                    f"{source}: archive has no {UCI_MEMBER} member (found: {', '.join(names) or 'nothing'})"
                )
            content = bundle.read(member)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise DataError(f"{source}: not a readable zip archive, truncated or corrupt ({exc})") from None
    digest = sha256(content)
    if digest != expected_sha256:
        raise DataError(f"{source}: {UCI_MEMBER} has sha256 {digest}, expected the pinned {expected_sha256}")
    return content


@dataclass(frozen=True)
class Corpus:
    """Raw corpus bytes ready to store, and the file name to store them under."""

    name: str
    content: bytes


def corpus_from_bytes(content: bytes, source: str, name: str) -> Corpus:
    """Recognise the UCI corpus in any of its forms and store it canonically (header + UCI bytes);
    keep anything else verbatim under its own name, after checking it parses."""
    if content.startswith(ZIP_MAGIC):
        content = extract_uci_member(content, source)
    digest = sha256(content)
    if digest == UCI_MEMBER_SHA256:
        return Corpus(CANONICAL_NAME, HEADER + content)
    if digest == CANONICAL_SHA256:
        return Corpus(CANONICAL_NAME, content)
    parsed = parse_corpus(content, source)
    if not parsed.messages:
        first = parsed.bad_rows[0] if parsed.bad_rows else f"{source}: no rows"
        raise DataError(f"{source}: no valid labelled rows (first problem: {first})")
    return Corpus(name, content)


def store(corpus: Corpus, raw_dir: Path) -> Path:
    """Write the corpus into `raw_dir` atomically, then remove any other corpus file there."""
    target = raw_dir / corpus.name
    with files.atomic_open(target, "wb") as handle:
        handle.write(corpus.content)
    for other in raw_dir.iterdir():
        if other != target and other.is_file() and not other.name.startswith("."):
            other.unlink()
    return target


def download(url: str, timeout: float = 60.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bytes(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataError(f"{url}: download failed ({exc})") from None


def _dvc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=False)


def dvc_pull(dvc_file: Path) -> bool:
    """Try `dvc pull` of the raw data from the default remote; False when no remote has it."""
    result = _dvc("pull", "--quiet", str(dvc_file))
    if result.returncode != 0:
        log.info(
            "dvc pull %s did not succeed: %s", dvc_file, (result.stderr or result.stdout).strip().splitlines()[-1:]
        )
        return False
    return True


def dvc_commit(dvc_file: Path) -> None:
    """Record the raw data in DVC's cache and in `data.dvc` (a new md5 if the content changed)."""
    result = _dvc("commit", "--force", "--quiet", str(dvc_file))
    if result.returncode != 0:
        raise DataError(f"{dvc_file}: dvc commit failed: {(result.stderr or result.stdout).strip()}")


def has_corpus(raw_dir: Path) -> bool:
    return raw_dir.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in raw_dir.iterdir())


def obtain(raw_dir: Path, dvc_file: Path, local_file: Path | None, url: str, force: bool = False) -> str:
    """Make sure `raw_dir` holds the corpus; return a sentence saying where it came from.

    Order: the file named by SPAM_DATA; what `raw_dir` already holds; `dvc pull`; the download.
    `force` goes straight to the download.
    """
    if local_file is not None:
        if not local_file.is_file():
            raise DataError(f"{local_file}: file not found (named by SPAM_DATA)")
        corpus = corpus_from_bytes(local_file.read_bytes(), str(local_file), local_file.name)
        path = store(corpus, raw_dir)
        dvc_commit(dvc_file)
        return f"{path}: from SPAM_DATA={local_file}"
    if not force:
        if has_corpus(raw_dir):
            return f"{raw_dir}: already present"
        if dvc_file.is_file() and dvc_pull(dvc_file) and has_corpus(raw_dir):
            return f"{raw_dir}: pulled from the DVC remote"
    log.info("downloading %s", url)
    corpus = corpus_from_bytes(download(url), url, CANONICAL_NAME)
    path = store(corpus, raw_dir)
    dvc_commit(dvc_file)
    return f"{path}: downloaded from {url} (sha256 verified)"
