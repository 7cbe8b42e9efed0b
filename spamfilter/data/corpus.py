"""Parsing, validating, de-duplicating and splitting labelled SMS corpora.

Parsing works on bytes and returns every bad row with its file, line and reason, so callers
choose between failing and dropping with a report. Nothing here writes files.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from sklearn.model_selection import train_test_split

from spamfilter.errors import DataError
from spamfilter.labels import LABELS, SPAM


class Labelled(Protocol):
    @property
    def label(self) -> str: ...


LabelledT = TypeVar("LabelledT", bound=Labelled)

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class BadRow:
    """An input record that cannot be used: where it is and why. `line` is 0 for whole files or
    archive members (one e-mail each), which `source` alone names."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}" if self.line else f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class Message:
    label: str
    text: str
    source: str = ""
    line: int = 0

    @property
    def is_spam(self) -> bool:
        return self.label == SPAM


@dataclass
class ParsedFile:
    """Rows parsed from one file, in file order, and the rows that failed validation."""

    source: str
    format: str
    messages: list[Message] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)


CORPUS_SUFFIXES = frozenset({"", ".tsv", ".csv", ".txt"})
_NOTES = frozenset({"README", "README.TXT", "README.MD"})


def corpus_files(path: Path, required: bool = True, hint: str = "") -> list[Path]:
    """The corpus files `path` names: itself if it is a file, else the data files in the directory, in
    name order (hidden files and notes skipped). The one selection `ingest`, `feed` and `monitor` make.

    With `required`, a missing path or a directory without a corpus file is a DataError (ending in
    `hint`, what to do); otherwise it gives no files."""
    suffix = f"; {hint}" if hint else ""
    if path.is_file():
        return [path]
    if not path.is_dir():
        if required:
            raise DataError(f"{path}: not found{suffix}")
        return []
    found = sorted(
        p
        for p in path.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() in CORPUS_SUFFIXES
        and p.name.upper() not in _NOTES
    )
    if required and not found:
        raise DataError(f"{path}: no corpus file found{suffix}")
    return found


def detect_format(raw: bytes) -> str:
    """`csv` for the Kaggle-style export (`v1,v2,...` or `label,text` header), else `tsv` (UCI)."""
    first_line = raw.removeprefix(_BOM).split(b"\n", 1)[0].strip().lower()
    if b"\t" not in first_line and (first_line.startswith(b"v1,v2") or first_line.startswith(b"label,text")):
        return "csv"
    return "tsv"


def _validated(label: str, text: str, source: str, line: int) -> Message | BadRow:
    normalized_label = label.strip().lower()
    if normalized_label not in LABELS:
        shown = label if len(label) <= 40 else label[:37] + "..."
        return BadRow(source, line, f"unknown label {shown!r} (expected ham or spam)")
    text = html.unescape(text)
    if not text.strip():
        return BadRow(source, line, "empty text")
    return Message(normalized_label, text, source, line)


def parse_tsv(raw: bytes, source: str) -> ParsedFile:
    """Parse the UCI form: `label<TAB>text` per line, UTF-8, optional `label<TAB>text` header.

    Quoting is disabled: a line is split at its first tab only, and quotes are text.
    """
    parsed = ParsedFile(source, "tsv")
    lines = raw.removeprefix(_BOM).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw_line in enumerate(lines, start=1):
        line_bytes = raw_line.removesuffix(b"\r")
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            parsed.bad_rows.append(
                BadRow(
                    source, number, f"not valid UTF-8 (byte 0x{line_bytes[exc.start]:02x} at column {exc.start + 1})"
                )
            )
            continue
        if "\t" not in line:
            reason = "empty line" if not line.strip() else "no tab between label and text"
            parsed.bad_rows.append(BadRow(source, number, reason))
            continue
        label, text = line.split("\t", 1)
        if number == 1 and label.strip().lower() == "label":
            continue  # header line
        result = _validated(label, text, source, number)
        (parsed.messages if isinstance(result, Message) else parsed.bad_rows).append(result)  # type: ignore[arg-type]
    return parsed


def parse_csv(raw: bytes, source: str) -> ParsedFile:
    """Parse the widely circulated CSV export (`v1,v2` plus mostly empty columns, latin-1)."""
    parsed = ParsedFile(source, "csv")
    body = raw.removeprefix(_BOM)
    try:
        content = body.decode("utf-8")
    except UnicodeDecodeError:
        content = body.decode("latin-1")  # the Kaggle export; latin-1 decodes any byte
    reader = csv.reader(io.StringIO(content, newline=""))
    start_line = 1
    for row_index, row in enumerate(reader):
        line = start_line
        start_line = reader.line_num + 1
        if row_index == 0:
            continue  # header
        if not row or not any(cell.strip() for cell in row):
            parsed.bad_rows.append(BadRow(source, line, "empty line"))
            continue
        if len(row) < 2:
            parsed.bad_rows.append(BadRow(source, line, "no text column"))
            continue
        # Some exports split a quoted message over the trailing columns: join them back.
        text = ",".join(row[1:]).rstrip(",")
        result = _validated(row[0], text, source, line)
        (parsed.messages if isinstance(result, Message) else parsed.bad_rows).append(result)  # type: ignore[arg-type]
    return parsed


def parse_corpus(raw: bytes, source: str) -> ParsedFile:
    """Parse a corpus file's bytes in whichever accepted format they are."""
    if not raw.strip():
        return ParsedFile(source, "empty", bad_rows=[BadRow(source, 1, "file is empty")])
    return parse_csv(raw, source) if detect_format(raw) == "csv" else parse_tsv(raw, source)


@dataclass
class Dataset:
    """De-duplicated messages and what was removed on the way."""

    messages: list[Message]
    rows_read: int
    duplicates_dropped: int
    bad_rows: list[BadRow]


def deduplicate(parsed_files: Iterable[ParsedFile]) -> Dataset:
    """Merge files in order, drop exact duplicate texts, and flag texts seen under both labels.

    The first occurrence of a text wins; a later copy with the same label is a duplicate, with
    the other label a bad row (which label is right cannot be decided here).
    """
    first_seen: dict[str, Message] = {}
    bad_rows: list[BadRow] = []
    rows_read = duplicates = 0
    for parsed in parsed_files:
        bad_rows.extend(parsed.bad_rows)
        rows_read += len(parsed.messages) + len(parsed.bad_rows)
        for message in parsed.messages:
            earlier = first_seen.get(message.text)
            if earlier is None:
                first_seen[message.text] = message
            elif earlier.label == message.label:
                duplicates += 1
            else:
                bad_rows.append(
                    BadRow(
                        message.source,
                        message.line,
                        f"text already labelled {earlier.label!r} at {earlier.source}:{earlier.line}",
                    )
                )
    return Dataset(list(first_seen.values()), rows_read, duplicates, bad_rows)


def split(messages: Sequence[LabelledT], test_size: float, seed: int) -> tuple[list[LabelledT], list[LabelledT]]:
    """Stratified, deterministic train/test split (of SMS or e-mail messages: anything with a label)."""
    labels = [m.label for m in messages]
    counts = {label: labels.count(label) for label in LABELS}
    if min(counts.values()) < 2:
        raise DataError(f"need at least 2 messages of each label to split, got {counts}")
    n_test = round(len(messages) * test_size)
    if n_test < len(LABELS) or len(messages) - n_test < len(LABELS):
        raise DataError(f"test_size {test_size} leaves too few rows on one side of the split ({len(messages)} rows)")
    indices = list(range(len(messages)))
    train_idx, test_idx = train_test_split(indices, test_size=test_size, random_state=seed, stratify=labels)
    return [messages[i] for i in sorted(train_idx)], [messages[i] for i in sorted(test_idx)]


def dataset_stats(
    dataset: Dataset, train: Sequence[Message], test: Sequence[Message], new_rows: int
) -> dict[str, float | int]:
    """Numbers for the DVC metrics file of the ingest stage."""
    total = len(dataset.messages)
    spam = sum(m.is_spam for m in dataset.messages)
    return {
        "rows_read": dataset.rows_read,
        "rows": total,
        "train_rows": len(train),
        "test_rows": len(test),
        "spam_rows": spam,
        "spam_rate": round(spam / total, 6) if total else 0.0,
        "duplicates_dropped": dataset.duplicates_dropped,
        "bad_rows": len(dataset.bad_rows),
        "new_batch_rows": new_rows,
    }


def to_jsonl(messages: Iterable[Message]) -> str:
    """Serialise messages as JSON Lines: exact for any text (tabs, quotes, newlines)."""
    return "".join(json.dumps(asdict(m), ensure_ascii=False) + "\n" for m in messages)


def from_jsonl(content: str, source: str) -> list[Message]:
    """Parse JSON Lines written by `to_jsonl`, naming the line of any malformed record."""
    messages = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            message = Message(
                str(record["label"]), str(record["text"]), record.get("source", ""), int(record.get("line", 0))
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source}:{number}: malformed record ({exc})") from None
        if message.label not in LABELS:
            raise DataError(f"{source}:{number}: unknown label {message.label!r}")
        messages.append(message)
    return messages


def read_jsonl(path: Path) -> list[Message]:
    """Read a processed split written by the ingest stage."""
    return from_jsonl(path.read_text(encoding="utf-8"), str(path))


def texts_and_labels(messages: Sequence[Message]) -> tuple[list[str], list[str]]:
    return [m.text for m in messages], [m.label for m in messages]
