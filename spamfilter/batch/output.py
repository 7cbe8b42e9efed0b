"""The scored output: its columns, and the Parquet file written one row group per chunk.

Columns, in order: `id` (the input's own id, as a string; only when the input has an id column),
`message_sha256` (of the SMS text's UTF-8 bytes, or of the raw e-mail: the prediction log's `text_sha256`
of an SMS), `source` (`file:line`, `file:row`, `archive:member`), `label` (`ham`/`spam` under the model's
threshold), `spam_probability`, `model_name`, `model_version`.

The file is written under a temporary name beside the destination and renamed over it only when every
chunk is written: a failed or interrupted run leaves no partial output and keeps an older file intact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spamfilter import files
from spamfilter.batch.inputs import Chunk, ModelInput
from spamfilter.labels import SPAM

OUTPUT_COLUMNS: Final = (
    "id",
    "message_sha256",
    "source",
    "label",
    "spam_probability",
    "model_name",
    "model_version",
)


def output_schema(with_ids: bool) -> pa.Schema:
    fields: list[pa.Field[Any]] = [
        pa.field("message_sha256", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("spam_probability", pa.float64(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
    ]
    if with_ids:
        fields.insert(0, pa.field("id", pa.string()))
    return pa.schema(fields)


def message_sha256(value: ModelInput) -> str:
    """The sha256 of a model input: an SMS text's UTF-8 bytes, or a raw e-mail's bytes."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class ScoredBy:
    """The model version that scored the output."""

    name: str
    version: str


class ParquetSink:
    """Writes scored chunks to one Parquet file (use `open_sink`)."""

    def __init__(self, path: Path, model: ScoredBy, with_ids: bool) -> None:
        self.schema = output_schema(with_ids)
        self.with_ids = with_ids
        self.model = model
        self.rows = 0
        self.spam = 0
        self._writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")

    def write(self, chunk: Chunk, probabilities: np.ndarray, labels: Sequence[str]) -> None:
        count = len(chunk)
        if len(probabilities) != count or len(labels) != count:
            raise ValueError(f"{count} messages but {len(probabilities)} probabilities and {len(labels)} labels")
        columns: list[pa.Array[Any]] = [
            pa.array([message_sha256(value) for value in chunk.inputs], pa.string()),
            pa.array(chunk.sources, pa.string()),
            pa.array(labels, pa.string()),
            pa.array(np.asarray(probabilities, dtype=np.float64), pa.float64()),
            pa.repeat(pa.scalar(self.model.name, pa.string()), count),
            pa.repeat(pa.scalar(self.model.version, pa.string()), count),
        ]
        if self.with_ids:
            ids = chunk.ids if chunk.ids is not None else [None] * count
            columns.insert(0, pa.array(ids, pa.string()))
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
        self.rows += count
        self.spam += sum(1 for label in labels if label == SPAM)

    def close(self) -> None:
        self._writer.close()


@contextmanager
def open_sink(path: Path, model: ScoredBy, with_ids: bool) -> Iterator[ParquetSink]:
    """A sink writing `path` atomically: renamed into place when the block ends without an exception."""
    with files.atomic_path(path) as tmp, ExitStack() as stack:
        sink = ParquetSink(tmp, model, with_ids)
        stack.callback(sink.close)
        yield sink
