"""Reading a corpus to score, in chunks of bounded size, whatever its format.

* SMS: the ingest formats (the UCI `label<TAB>text` file, the Kaggle CSV, a folder of them: `corpus_files`),
  parsed and validated by `spamfilter.data.corpus` itself, a chunk of lines (or CSV records) at a time, so
  a row is good or bad here exactly when it is at ingest (labels are checked, then ignored).
* E-mail: folder trees, `.eml` files, mbox files, Maildir folders and tar archives, read by
  `spamfilter.data.mail_corpus.read_mail_corpus`. That reader returns a whole corpus at once (it sorts
  every message by source before returning), so e-mail corpora in these formats are held in memory whole
  (each message at most `max_bytes`) and only scored in chunks; Parquet and JSONL stream.
* Both channels: Parquet (`pyarrow`'s `iter_batches`) and JSON Lines (line by line) with a column or field
  named after the channel's model input (`text` for SMS; `message` for e-mail, or `raw_b64` as in the
  e-mail ingest's processed splits) and, optionally, `id`.

A message is (input, source, id): the model's input (`str` for SMS, `bytes` for e-mail), where it came from
(`file:line`, `file:row`, `archive:member`) and the input's own id (always a string; None without one).
A row that cannot be scored is a `BadRow`: with `on_bad_row="fail"` the first one stops the read as a
DataError naming it; with `"skip"` it is counted and the rest is read. A missing file or column stops the
read at once, before anything is scored.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import csv
import io
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from spamfilter.config import Channel, MailLimitsParams
from spamfilter.data import corpus
from spamfilter.data.corpus import BadRow
from spamfilter.errors import DataError
from spamfilter.labels import HAM
from spamfilter.mail.parse import looks_like_email

OnBadRow = Literal["fail", "skip"]
ModelInput = str | bytes

PARQUET_SUFFIXES: Final = frozenset({".parquet", ".pq"})
JSONL_SUFFIXES: Final = frozenset({".jsonl", ".ndjson"})
ID_COLUMN: Final = "id"
RAW_B64_FIELD: Final = "raw_b64"  # the e-mail ingest's processed splits keep raw bytes so
DEFAULT_CHUNK_ROWS: Final = 10_000
DEFAULT_CHUNK_BYTES: Final = 64 << 20
DEFAULT_MAIL_MAX_BYTES: Final = MailLimitsParams().max_bytes
_BOM: Final = b"\xef\xbb\xbf"
# A header line put before each later chunk of a TSV file: parse_tsv skips a header only on its first line, so a
# chunk parses as it would inside the whole file (and its BOM check applies to the file's start only).
_TSV_CHUNK_HEADER: Final = b"label\ttext\n"
_CSV_CHUNK_HEADER: Final = ("v1", "v2")
_BAD_ROWS_KEPT: Final = 10


def input_column(channel: Channel) -> str:
    """The column or field holding the model's input: SMS texts, or raw e-mails."""
    return "message" if channel == "email" else "text"


@dataclass(frozen=True)
class Chunk:
    """Consecutive messages of the input: model inputs, their sources and ids (None: the input has none)."""

    inputs: list[ModelInput]
    sources: list[str]
    ids: list[str | None] | None

    def __len__(self) -> int:
        return len(self.inputs)

    def without(self, rows: Collection[int]) -> Chunk:
        """This chunk less the messages at `rows`."""
        kept = [index for index in range(len(self.inputs)) if index not in rows]
        return Chunk(
            [self.inputs[i] for i in kept],
            [self.sources[i] for i in kept],
            None if self.ids is None else [self.ids[i] for i in kept],
        )


@dataclass
class BadRows:
    """The rows skipped so far: how many, and the first few (for the summary)."""

    count: int = 0
    first: list[BadRow] = field(default_factory=list)

    def add(self, row: BadRow) -> None:
        self.count += 1
        if len(self.first) < _BAD_ROWS_KEPT:
            self.first.append(row)


class _AnyFolder(Mapping[str, str]):
    """A label-folder mapping under which every folder labels its messages: scoring reads unlabelled mail
    (an inbox, a Maildir) too, and ignores the labels `read_mail_corpus` gives."""

    def __getitem__(self, name: str) -> str:
        return HAM

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 1  # not empty: read_mail_corpus refuses an empty mapping


@dataclass
class _Batcher:
    """Gathers messages into chunks of at most `rows` messages and about `max_bytes` bytes of input."""

    rows: int
    max_bytes: int
    with_ids: bool
    inputs: list[ModelInput] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    size: int = 0

    def add(self, value: ModelInput, source: str, message_id: str | None = None) -> Chunk | None:
        self.inputs.append(value)
        self.sources.append(source)
        self.ids.append(message_id)
        self.size += len(value)
        return self.take() if len(self.inputs) >= self.rows or self.size >= self.max_bytes else None

    def take(self) -> Chunk | None:
        if not self.inputs:
            return None
        chunk = Chunk(self.inputs, self.sources, self.ids if self.with_ids else None)
        self.inputs, self.sources, self.ids, self.size = [], [], [], 0
        return chunk


class CorpusReader:
    """The messages of one input (a file or folder), read in chunks by `chunks()`.

    `format` names what was found (`tsv`, `csv`, `parquet`, `jsonl`, or the mail reader's `tar.gz+tree`, …);
    `total` is the number of rows when the format says it up front (Parquet), else None; `bad_rows` counts
    what was skipped. Opening checks that the input exists, is readable and has the columns it needs."""

    def __init__(
        self,
        path: Path,
        channel: Channel,
        *,
        on_bad_row: OnBadRow = "fail",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        mail_max_bytes: int = DEFAULT_MAIL_MAX_BYTES,
    ) -> None:
        if chunk_rows < 1 or chunk_bytes < 1:
            raise DataError(f"chunk size must be positive, got {chunk_rows} rows / {chunk_bytes} bytes")
        self.path = path
        self.channel = channel
        self.on_bad_row = on_bad_row
        self.chunk_rows = chunk_rows
        self.chunk_bytes = chunk_bytes
        self.mail_max_bytes = mail_max_bytes
        self.column = input_column(channel)
        self.bad_rows = BadRows()
        self.total: int | None = None
        self.format = ""
        self.has_ids = False
        self._parquet: pq.ParquetFile | None = None
        self._files: list[Path] = []
        self._open()

    # --- opening: everything that can be checked before scoring starts ------------------------------

    def _open(self) -> None:
        path = self.path
        if not path.exists():
            raise DataError(f"{path}: not found")
        suffix = path.suffix.lower()
        if path.is_file() and suffix in PARQUET_SUFFIXES:
            self._open_parquet()
        elif path.is_file() and suffix in JSONL_SUFFIXES:
            self.format = "jsonl"
            self.has_ids = self._jsonl_has_ids()
        elif self.channel == "email":
            self.format = "email"
            _check_readable(path)
        else:
            self._files = corpus.corpus_files(path)
            for file in self._files:
                _check_readable(file)
            self.format = "+".join(sorted({self._sms_format(file) for file in self._files}))

    def _open_parquet(self) -> None:
        self.format = "parquet"
        try:
            parquet = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{self.path}: not a readable Parquet file ({exc})") from None
        schema = parquet.schema_arrow
        if self.column not in schema.names and not (self.channel == "email" and RAW_B64_FIELD in schema.names):
            raise DataError(
                f"{self.path}: no column {self.column!r} (the {self.channel} model's input); "
                f"columns: {', '.join(schema.names) or 'none'}"
            )
        if self.column in schema.names:
            kind = schema.field(self.column).type
            allowed = pa.types.is_string(kind) or pa.types.is_large_string(kind)
            if self.channel == "email":
                allowed = allowed or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
            if not allowed:
                expected = "string or binary" if self.channel == "email" else "string"
                raise DataError(f"{self.path}: column {self.column!r} is {kind}, expected {expected}")
        self.has_ids = ID_COLUMN in schema.names
        self.total = parquet.metadata.num_rows
        self._parquet = parquet

    def _jsonl_has_ids(self) -> bool:
        """Whether the first record has an `id`: the output has an id column when it does."""
        _check_readable(self.path)
        with self.path.open("rb") as handle:
            for raw_line in handle:
                if raw_line.strip():
                    try:
                        record = json.loads(raw_line)
                    except ValueError:
                        return False  # reported with its line when read
                    return isinstance(record, dict) and ID_COLUMN in record
        return False

    @staticmethod
    def _sms_format(file: Path) -> str:
        with file.open("rb") as handle:
            return corpus.detect_format(handle.readline())

    # --- reading ----------------------------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """Every message of the input, in input order, in chunks."""
        batcher = _Batcher(self.chunk_rows, self.chunk_bytes, self.has_ids)
        for value, source, message_id in self._messages():
            chunk = batcher.add(value, source, message_id)
            if chunk is not None:
                yield chunk
        last = batcher.take()
        if last is not None:
            yield last

    def bad_row(self, row: BadRow) -> None:
        """A row that cannot be scored: a DataError naming it (`on_bad_row="fail"`), or counted (`"skip"`)."""
        if self.on_bad_row == "fail":
            raise DataError(f"{row} (or skip bad rows: --on-bad-row skip)")
        self.bad_rows.add(row)

    def _messages(self) -> Iterator[tuple[ModelInput, str, str | None]]:
        try:
            if self.format == "parquet":
                yield from self._parquet_messages()
            elif self.format == "jsonl":
                yield from self._jsonl_messages()
            elif self.format == "email":
                yield from self._mail_messages()
            else:
                for file in self._files:
                    yield from self._sms_file_messages(file)
        except PermissionError as exc:
            raise DataError(f"{exc.filename or self.path}: cannot read (permission denied)") from None
        except OSError as exc:
            raise DataError(f"{exc.filename or self.path}: cannot read ({exc.strerror or exc})") from None

    # SMS corpus files ------------------------------------------------------------------------------------

    def _sms_file_messages(self, file: Path) -> Iterator[tuple[ModelInput, str, str | None]]:
        parse = self._tsv_chunks if self._sms_format(file) == "tsv" else self._csv_chunks
        for parsed, lines in parse(file):
            items: list[corpus.Message | BadRow] = [*parsed.messages, *parsed.bad_rows]
            items.sort(key=lambda item: item.line)
            for item in items:
                line = lines(item.line)
                if isinstance(item, BadRow):
                    self.bad_row(BadRow(str(file), line, item.reason))
                else:
                    yield item.text, f"{file}:{line}", None

    def _tsv_chunks(self, file: Path) -> Iterator[tuple[corpus.ParsedFile, Callable[[int], int]]]:
        """parse_tsv over chunks of lines; each with the map from its line numbers to the file's."""
        with file.open("rb") as handle:
            before = 0  # lines of the file before this chunk
            while True:
                lines = [line for _, line in zip(range(self.chunk_rows), handle, strict=False)]
                if not lines:
                    return
                first = before == 0
                body = b"".join(lines) if first else _TSV_CHUNK_HEADER + b"".join(lines)
                offset = before if first else before - 1
                yield corpus.parse_tsv(body, str(file)), _shifted(offset)
                before += len(lines)

    def _csv_chunks(self, file: Path) -> Iterator[tuple[corpus.ParsedFile, Callable[[int], int]]]:
        """parse_csv over chunks of CSV records, each chunk re-serialised as UTF-8 CSV under a header of its own
        (a record may span lines, so the file cannot be cut at lines). parse_csv gives one message or bad row
        per record, in order, so the k-th of a chunk is its k-th record, whose line in the file is known."""
        encoding = "utf-8" if _is_utf8(file) else "latin-1"  # as parse_csv decides, for the whole file
        with file.open("rb") as binary:
            if binary.read(len(_BOM)) != _BOM:
                binary.seek(0)
            text = io.TextIOWrapper(binary, encoding=encoding, newline="")
            reader = csv.reader(text)
            next(reader, None)  # the file's header
            start = reader.line_num + 1
            while True:
                records: list[list[str]] = []
                starts: list[int] = []
                for record in reader:
                    records.append(record)
                    starts.append(start)
                    start = reader.line_num + 1
                    if len(records) >= self.chunk_rows:
                        break
                if not records:
                    return
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\n")
                writer.writerow(_CSV_CHUNK_HEADER)
                writer.writerows(records)
                parsed = corpus.parse_csv(buffer.getvalue().encode("utf-8"), str(file))
                items: list[corpus.Message | BadRow] = [*parsed.messages, *parsed.bad_rows]
                chunk_lines = sorted(item.line for item in items)
                by_line = dict(zip(chunk_lines, starts, strict=True))
                yield parsed, by_line.__getitem__

    # E-mail corpora --------------------------------------------------------------------------------------

    def _mail_messages(self) -> Iterator[tuple[ModelInput, str, str | None]]:
        from spamfilter.data.mail_corpus import read_mail_corpus  # the mail parser: only for e-mail inputs

        found = read_mail_corpus(self.path, _AnyFolder(), self.mail_max_bytes)
        self.format = found.format
        for row in found.bad_rows:
            self.bad_row(row)
        for mail in found.messages:
            yield mail.raw, mail.source, None

    def _mail_value(self, value: Any, where: str, line: int) -> bytes | None:
        """A raw e-mail from a Parquet or JSON value (bytes, or text as UTF-8), or None after a bad row."""
        raw = value.encode("utf-8") if isinstance(value, str) else value
        if len(raw) > self.mail_max_bytes:
            self.bad_row(
                BadRow(where, line, f"message is {len(raw):,} bytes, over the {self.mail_max_bytes:,}-byte limit")
            )
            return None
        if not looks_like_email(raw):
            self.bad_row(BadRow(where, line, "not an e-mail: no header block" if raw.strip() else "empty message"))
            return None
        return bytes(raw)

    # Parquet ----------------------------------------------------------------------------------------------

    def _parquet_messages(self) -> Iterator[tuple[ModelInput, str, str | None]]:
        assert self._parquet is not None
        names = self._parquet.schema_arrow.names
        column = self.column if self.column in names else RAW_B64_FIELD
        columns = [column, *([ID_COLUMN] if self.has_ids else [])]
        where = str(self.path)
        row = 0
        try:
            for batch in self._parquet.iter_batches(batch_size=self.chunk_rows, columns=columns):
                values = batch.column(0).to_pylist()
                ids = batch.column(1).cast(pa.string()).to_pylist() if self.has_ids else [None] * len(values)
                for value, message_id in zip(values, ids, strict=True):
                    row += 1
                    source = f"{where}:{row}"
                    if value is None:
                        self.bad_row(BadRow(where, row, f"{column} is null"))
                        continue
                    checked = self._checked(value, column, where, row)
                    if checked is not None:
                        yield checked, source, message_id
        except pa.ArrowException as exc:
            raise DataError(f"{where}: unreadable after row {row:,} ({exc})") from None

    def _checked(self, value: Any, column: str, where: str, line: int) -> ModelInput | None:
        """The model input a field holds, or None after a bad row."""
        if self.channel == "email":
            if column == RAW_B64_FIELD:
                try:
                    value = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError, TypeError):
                    self.bad_row(BadRow(where, line, f"{RAW_B64_FIELD} is not valid base64"))
                    return None
            if not isinstance(value, str | bytes):
                self.bad_row(BadRow(where, line, f"{column} is {type(value).__name__}, expected a string"))
                return None
            return self._mail_value(value, where, line)
        if not isinstance(value, str):
            self.bad_row(BadRow(where, line, f"{column} is {type(value).__name__}, expected a string"))
            return None
        if not value.strip():
            self.bad_row(BadRow(where, line, "empty text"))
            return None
        return value

    # JSON Lines -------------------------------------------------------------------------------------------

    def _jsonl_messages(self) -> Iterator[tuple[ModelInput, str, str | None]]:
        where = str(self.path)
        with self.path.open("rb") as handle:
            for number, raw_line in enumerate(handle, start=1):
                if not raw_line.strip():
                    continue
                record = self._jsonl_record(raw_line, where, number)
                if record is None:
                    continue
                column = self.column
                if column not in record and self.channel == "email" and RAW_B64_FIELD in record:
                    column = RAW_B64_FIELD
                if column not in record:
                    wanted = f"{self.column!r} or {RAW_B64_FIELD!r}" if self.channel == "email" else repr(self.column)
                    self.bad_row(BadRow(where, number, f"no field {wanted} (the {self.channel} model's input)"))
                    continue
                checked = self._checked(record[column], column, where, number)
                if checked is None:
                    continue
                message_id = _id_text(record.get(ID_COLUMN)) if self.has_ids else None
                yield checked, f"{where}:{number}", message_id

    def _jsonl_record(self, raw_line: bytes, where: str, number: int) -> dict[str, Any] | None:
        try:
            record = json.loads(raw_line)
        except UnicodeDecodeError as exc:
            self.bad_row(BadRow(where, number, f"not valid UTF-8 (byte 0x{raw_line[exc.start]:02x})"))
            return None
        except ValueError as exc:
            self.bad_row(BadRow(where, number, f"not JSON ({exc})"))
            return None
        if not isinstance(record, dict):
            self.bad_row(BadRow(where, number, f"a JSON {type(record).__name__}, expected an object"))
            return None
        return record


def _shifted(offset: int) -> Callable[[int], int]:
    return lambda number: number + offset


def _id_text(value: Any) -> str | None:
    """An id as the output keeps it: a string (JSON numbers and strings alike), None when absent."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _check_readable(path: Path) -> None:
    """A DataError naming `path` when it cannot be opened (a folder must be listable)."""
    try:
        if path.is_dir():
            next(path.iterdir(), None)
        else:
            with path.open("rb") as handle:
                handle.read(1)
    except PermissionError:
        raise DataError(f"{path}: cannot read (permission denied)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _is_utf8(file: Path) -> bool:
    """Whether the whole file decodes as UTF-8, checked in blocks (parse_csv falls back to latin-1 otherwise)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with file.open("rb") as handle:
        try:
            while block := handle.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True
