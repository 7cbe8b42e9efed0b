"""The batch-scoring output (spamfilter.batch.output): its columns and types, one row per message across
chunks, and no partial file: a run that fails leaves nothing new, and an older output untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spamfilter.batch.inputs import Chunk
from spamfilter.batch.output import ScoredBy, open_sink

MODEL = ScoredBy("spam-classifier", "3")


def test_columns_types_and_rows_across_chunks(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    chunks = [
        Chunk(["héllo", "win £100"], ["f:1", "f:2"], ["a", None]),
        Chunk([b"Subject: x\r\n\r\nbody"], ["f:3"], ["c"]),
    ]
    with open_sink(out, MODEL, with_ids=True) as sink:
        sink.write(chunks[0], np.array([0.1, 0.9]), ["ham", "spam"])
        sink.write(chunks[1], np.array([0.75]), ["spam"])
    assert (sink.rows, sink.spam) == (3, 2)
    table = pq.read_table(out)
    assert table.schema.names == [
        "id",
        "message_sha256",
        "source",
        "label",
        "spam_probability",
        "model_name",
        "model_version",
    ]
    assert table.schema.field("spam_probability").type == pa.float64()
    assert all(
        table.schema.field(name).type == pa.string() for name in table.schema.names if name != "spam_probability"
    )
    assert table.column("id").to_pylist() == ["a", None, "c"]
    assert table.column("message_sha256").to_pylist() == [
        hashlib.sha256("héllo".encode()).hexdigest(),
        hashlib.sha256("win £100".encode()).hexdigest(),
        hashlib.sha256(b"Subject: x\r\n\r\nbody").hexdigest(),
    ]
    assert table.column("spam_probability").to_pylist() == [0.1, 0.9, 0.75]
    assert table.column("label").to_pylist() == ["ham", "spam", "spam"]
    assert set(table.column("model_name").to_pylist()) == {"spam-classifier"}
    assert set(table.column("model_version").to_pylist()) == {"3"}
    assert pq.ParquetFile(out).metadata.num_row_groups == 2  # one per chunk: memory stays per chunk


def test_no_id_column_without_ids(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    with open_sink(out, MODEL, with_ids=False) as sink:
        sink.write(Chunk(["x"], ["f:1"], None), np.array([0.2]), ["ham"])
    assert "id" not in pq.read_table(out).schema.names


def test_a_failed_run_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError), open_sink(out, MODEL, with_ids=False) as sink:
        sink.write(Chunk(["x"], ["f:1"], None), np.array([0.2]), ["ham"])
        raise RuntimeError("reading failed half-way")
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"the previous output")
    with pytest.raises(RuntimeError), open_sink(out, MODEL, with_ids=False) as sink:
        sink.write(Chunk(["x"], ["f:1"], None), np.array([0.2]), ["ham"])
        raise RuntimeError("scoring failed half-way")
    assert out.read_bytes() == b"the previous output"
    assert list(tmp_path.iterdir()) == [out]


def test_counts_must_match(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="2 messages but 1 probabilities"),
        open_sink(tmp_path / "o.parquet", MODEL, with_ids=False) as sink,
    ):
        sink.write(Chunk(["a", "b"], ["f:1", "f:2"], None), np.array([0.5]), ["spam", "ham"])
