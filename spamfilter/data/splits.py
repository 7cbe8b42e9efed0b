"""Reading a channel's processed split (what the ingest stage wrote) as model inputs and labels: SMS
texts, or the raw bytes of e-mails."""

from __future__ import annotations

from pathlib import Path

from spamfilter.config import Channel
from spamfilter.data import corpus, mail_dataset

ModelInputs = list[str] | list[bytes]


def read_split(channel: Channel, path: Path) -> tuple[ModelInputs, list[str]]:
    """The inputs a channel's model scores (texts or raw messages) and their labels, in file order."""
    if channel == "email":
        return mail_dataset.raws_and_labels(mail_dataset.read_jsonl(path))
    return corpus.texts_and_labels(corpus.read_jsonl(path))
