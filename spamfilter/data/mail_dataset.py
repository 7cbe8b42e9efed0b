"""The e-mail channel's dataset: raw messages read from corpora (`mail_corpus`) → parsed, checked against
the limits, de-duplicated on (subject, body), split, and written as JSON Lines.

A processed e-mail keeps its raw bytes (base64 in JSON), so training, evaluation and serving all parse
the same bytes with the same parser (`spamfilter.mail`). Pure: reading corpora and writing files are
the caller's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spamfilter.config import MailLimitsParams
from spamfilter.data.corpus import BadRow
from spamfilter.data.mail_corpus import MailCorpus
from spamfilter.errors import DataError
from spamfilter.labels import LABELS, SPAM
from spamfilter.mail.limits import MailError, MailLimits
from spamfilter.mail.parse import parse_message


@dataclass(frozen=True)
class MailMessage:
    """One labelled raw e-mail: its bytes as received, where it came from and its corpus group."""

    label: str
    raw: bytes
    source: str
    group: str = ""

    @property
    def is_spam(self) -> bool:
        return self.label == SPAM


@dataclass
class MailDataset:
    """De-duplicated messages and what was removed on the way."""

    messages: list[MailMessage]
    rows_read: int
    duplicates_dropped: int
    bad_rows: list[BadRow]
    checksum_mismatches: list[str] = field(default_factory=list)


def limits_of(params: MailLimitsParams) -> MailLimits:
    return MailLimits(**params.model_dump())


def deduplicate_mail(corpora: Iterable[MailCorpus], limits: MailLimits) -> MailDataset:
    """Merge corpora in order: parse every message (a message the parser refuses is a bad row), drop
    exact duplicates of (subject, body), and flag a (subject, body) seen under both labels.

    The first occurrence wins; a later copy with the same label is a duplicate, with the other label
    a bad row (which label is right cannot be decided here)."""
    first_seen: dict[tuple[str, str], MailMessage] = {}
    bad_rows: list[BadRow] = []
    mismatches: list[str] = []
    rows_read = duplicates = 0
    for corpus in corpora:
        bad_rows.extend(corpus.bad_rows)
        mismatches.extend(corpus.checksum_mismatches)
        rows_read += len(corpus.messages) + len(corpus.bad_rows)
        for raw in corpus.messages:
            try:
                record = parse_message(raw.raw, limits)
            except MailError as exc:
                bad_rows.append(BadRow(raw.source, 0, str(exc)))
                continue
            key = (record.subject, record.body_text)
            message = MailMessage(raw.label, raw.raw, raw.source, raw.group)
            earlier = first_seen.get(key)
            if earlier is None:
                first_seen[key] = message
            elif earlier.label == message.label:
                duplicates += 1
            else:
                bad_rows.append(
                    BadRow(
                        raw.source, 0, f"same subject and body already labelled {earlier.label!r} at {earlier.source}"
                    )
                )
    return MailDataset(list(first_seen.values()), rows_read, duplicates, bad_rows, mismatches)


def mail_dataset_stats(
    dataset: MailDataset, train: Sequence[MailMessage], test: Sequence[MailMessage], new_rows: int
) -> dict[str, float | int]:
    """Numbers for the DVC metrics file of the e-mail ingest stage."""
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
        "checksum_mismatches": len(dataset.checksum_mismatches),
        "new_batch_rows": new_rows,
        "bytes": sum(len(m.raw) for m in dataset.messages),
    }


def to_jsonl(messages: Iterable[MailMessage]) -> str:
    """JSON Lines, one message per line, the raw bytes in base64 (exact whatever their encoding)."""
    return "".join(
        json.dumps(
            {
                "label": m.label,
                "raw_b64": base64.b64encode(m.raw).decode("ascii"),
                "source": m.source,
                "group": m.group,
            },
            ensure_ascii=False,
        )
        + "\n"
        for m in messages
    )


def from_jsonl(content: str, source: str) -> list[MailMessage]:
    """Parse JSON Lines written by `to_jsonl`, naming the line of any malformed record."""
    messages = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            message = MailMessage(
                str(record["label"]),
                base64.b64decode(record["raw_b64"], validate=True),
                str(record.get("source", "")),
                str(record.get("group", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{source}:{number}: malformed record ({exc})") from None
        if message.label not in LABELS:
            raise DataError(f"{source}:{number}: unknown label {message.label!r}")
        messages.append(message)
    return messages


def read_jsonl(path: Path) -> list[MailMessage]:
    """Read a processed e-mail split written by the ingest stage."""
    return from_jsonl(path.read_text(encoding="utf-8"), str(path))


def raws_and_labels(messages: Sequence[MailMessage]) -> tuple[list[bytes], list[str]]:
    return [m.raw for m in messages], [m.label for m in messages]
