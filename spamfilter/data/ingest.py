"""The ingest stage's work, per channel: read the raw corpus and the labelled batches, validate,
de-duplicate, split, and describe the result (stats and manifest). Reads input files; writes nothing.

* SMS: UCI/Kaggle text corpora (`corpus`), exact duplicates of the text dropped.
* E-mail: raw RFC 822 messages in trees, mbox, Maildir or tar archives (`mail_corpus`), parsed with
  the serving parser, exact duplicates of (subject, body) dropped (`mail_dataset`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spamfilter.config import EmailIngestParams, IngestParams
from spamfilter.data import corpus, mail_corpus, mail_dataset
from spamfilter.data.corpus import BadRow
from spamfilter.errors import DataError

MAX_SHOWN_BAD_ROWS = 50

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """The split as JSON Lines, what it was made from, and the rows left out."""

    train_jsonl: str
    test_jsonl: str
    stats: dict[str, Any]
    manifest: dict[str, Any]
    bad_rows: list[BadRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line per source read, for the log


def raw_dvc_md5(dvc_file: Path) -> str:
    """The md5 DVC recorded for the raw data (the data fingerprint), or '' if not tracked."""
    if not dvc_file.is_file():
        return ""
    content = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
    outs = content.get("outs") or [{}]
    return str(outs[0].get("md5", ""))


def refuse_bad_rows(bad_rows: Sequence[BadRow], on_bad_row: str, key: str = "ingest.on_bad_row") -> None:
    """`<key>: fail` (the channel's `ingest.on_bad_row`): any bad row stops the stage, naming the first."""
    if bad_rows and on_bad_row == "fail":
        raise DataError(
            f"{len(bad_rows)} bad rows (first: {bad_rows[0]}); fix them, or set {key}: drop to drop them with a report"
        )


def refuse_before_split(bad_rows: Sequence[BadRow], on_bad_row: str, channel: str) -> None:
    """With `on_bad_row: fail`, refuse bad rows before the split: what is left of a corpus with bad rows may
    be too little to split, and that error would hide the bad row (file:line, archive member) behind it.
    Every bad row is logged at once (up to MAX_SHOWN_BAD_ROWS), not one fix-and-rerun each."""
    if not bad_rows or on_bad_row != "fail":
        return
    for bad in bad_rows[:MAX_SHOWN_BAD_ROWS]:
        log.error("bad row: %s", bad)
    if len(bad_rows) > MAX_SHOWN_BAD_ROWS:
        log.error("... and %d more bad rows", len(bad_rows) - MAX_SHOWN_BAD_ROWS)
    refuse_bad_rows(bad_rows, on_bad_row, key=f"channels.{channel}.ingest.on_bad_row")


def _manifest(
    raw_md5: str, train_jsonl: str, test_jsonl: str, sources: list[dict[str, Any]], stats: dict[str, Any]
) -> dict[str, Any]:
    return {
        "raw_dvc_md5": raw_md5,
        "dataset_sha256": hashlib.sha256((train_jsonl + test_jsonl).encode()).hexdigest(),
        "sources": sources,
        **stats,
    }


def ingest_sms(
    raw_paths: Sequence[Path], new_paths: Sequence[Path], params: IngestParams, raw_md5: str
) -> IngestResult:
    """SMS corpora (the raw corpus first, then the labelled batches) → a validated, de-duplicated split.
    Bad rows are left out and listed. `channels.sms.ingest.on_bad_row: fail` refuses them here (each logged,
    the first in the DataError), before the split: what is left of a corpus with bad rows may be too little
    to split, and that error would hide the bad row (a file:line) that caused it."""
    parsed: list[corpus.ParsedFile] = []
    sources: list[dict[str, Any]] = []
    notes: list[str] = []
    for path in [*raw_paths, *new_paths]:
        content = path.read_bytes()
        result = corpus.parse_corpus(content, str(path))
        parsed.append(result)
        sources.append(
            {
                "path": str(path),
                "format": result.format,
                "rows": len(result.messages),
                "bad_rows": len(result.bad_rows),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )
        notes.append(f"{path}: {len(result.messages)} rows ({result.format}), {len(result.bad_rows)} bad")
    dataset = corpus.deduplicate(parsed)
    refuse_before_split(dataset.bad_rows, params.on_bad_row, "sms")
    train, test = corpus.split(dataset.messages, params.test_size, params.seed)
    new_rows = sum(int(s["rows"]) for s in sources[len(raw_paths) :])
    stats: dict[str, Any] = dict(corpus.dataset_stats(dataset, train, test, new_rows))
    train_jsonl, test_jsonl = corpus.to_jsonl(train), corpus.to_jsonl(test)
    return IngestResult(
        train_jsonl,
        test_jsonl,
        stats,
        _manifest(raw_md5, train_jsonl, test_jsonl, sources, stats),
        dataset.bad_rows,
        notes,
    )


def ingest_email(
    raw_paths: Sequence[Path], new_paths: Sequence[Path], params: EmailIngestParams, raw_md5: str
) -> IngestResult:
    """E-mail corpora (the raw corpus first, then the labelled batches) → parsed within the limits,
    de-duplicated on (subject, body), split. Bad messages are left out and listed; `on_bad_row: fail`
    refuses them before the split."""
    limits = mail_dataset.limits_of(params.limits)
    corpora: list[mail_corpus.MailCorpus] = []
    sources: list[dict[str, Any]] = []
    notes: list[str] = []
    for path in [*raw_paths, *new_paths]:
        read = mail_corpus.read_mail_corpus(path, params.label_folders, limits.max_bytes)
        corpora.append(read)
        sources.append(
            {
                "path": str(path),
                "format": read.format,
                "rows": len(read.messages),
                "bad_rows": len(read.bad_rows),
                "checksum_mismatches": list(read.checksum_mismatches),
            }
        )
        notes.append(f"{path}: {len(read.messages)} messages ({read.format}), {len(read.bad_rows)} bad")
        notes.extend(f"{mismatch}: content does not match the MD5 in its name" for mismatch in read.checksum_mismatches)
    dataset = mail_dataset.deduplicate_mail(corpora, limits)
    refuse_before_split(dataset.bad_rows, params.on_bad_row, "email")
    train, test = corpus.split(dataset.messages, params.test_size, params.seed)
    new_rows = sum(int(s["rows"]) for s in sources[len(raw_paths) :])
    stats: dict[str, Any] = dict(mail_dataset.mail_dataset_stats(dataset, train, test, new_rows))
    train_jsonl, test_jsonl = mail_dataset.to_jsonl(train), mail_dataset.to_jsonl(test)
    return IngestResult(
        train_jsonl,
        test_jsonl,
        stats,
        _manifest(raw_md5, train_jsonl, test_jsonl, sources, stats),
        dataset.bad_rows,
        notes,
    )


def mail_sources(directory: Path, required: bool, hint: str = "") -> list[Path]:
    """The e-mail inputs in a directory: each archive, mbox or `.eml` file and each sub-folder, read
    separately in name order (hidden entries skipped). `required`: an absent or empty directory is an error."""
    suffix = f"; {hint}" if hint else ""
    if not directory.is_dir():
        if required:
            raise DataError(f"{directory}: not found{suffix}")
        return []
    found = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    if required and not found:
        raise DataError(f"{directory}: no e-mail corpus found{suffix}")
    return found
