"""Reading corpora to score in chunks (spamfilter.batch.inputs): every format, chunking that changes nothing
(the same messages, sources and line numbers whatever the chunk size), the ingest's own row rules, ids, and
bad rows failing or skipped. Inputs are generated here, in tmp_path."""

from __future__ import annotations

import base64
import io
import json
import mailbox
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spamfilter.batch.inputs import Chunk, CorpusReader
from spamfilter.batch.spark import java_executable, java_major
from spamfilter.data import corpus
from spamfilter.errors import DataError
from tests.conftest import make_messages, write_tsv
from tests.generated_mail import make_corpus


def read(reader: CorpusReader) -> tuple[list[object], list[str], list[str | None] | None]:
    chunks: list[Chunk] = list(reader.chunks())
    ids = None if chunks and chunks[0].ids is None else [i for c in chunks for i in (c.ids or [])]
    return [v for c in chunks for v in c.inputs], [s for c in chunks for s in c.sources], ids


@pytest.fixture
def rows() -> list[tuple[str, str]]:
    return make_messages(n_ham=30, n_spam=10, seed=5)


# --- SMS corpus files: the ingest's parsing, chunk by chunk -------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 1000])
def test_tsv_in_chunks_reads_what_ingest_reads(tmp_path: Path, rows: list[tuple[str, str]], chunk_rows: int) -> None:
    path = write_tsv(tmp_path / "corpus.tsv", [*rows, ("ham", "Tom &amp; Jerry say hi")])
    parsed = corpus.parse_tsv(path.read_bytes(), str(path))
    texts, sources, ids = read(CorpusReader(path, "sms", chunk_rows=chunk_rows))
    assert texts == [m.text for m in parsed.messages]  # HTML entities undone, as at ingest
    assert texts[-1] == "Tom & Jerry say hi"
    assert sources == [f"{path}:{m.line}" for m in parsed.messages]
    assert sources[0] == f"{path}:2"  # the header is line 1
    assert ids is None


def test_a_later_chunk_starting_with_label_is_not_taken_for_a_header(tmp_path: Path) -> None:
    """parse_tsv skips a `label` line only as line 1 of the file: a chunk boundary must not make another."""
    path = tmp_path / "c.tsv"
    path.write_text("ham\tfirst\nham\tsecond\nlabel\tthird\nspam\tfourth\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"c\.tsv:3: unknown label 'label'"):
        read(CorpusReader(path, "sms", chunk_rows=2))
    reader = CorpusReader(path, "sms", chunk_rows=2, on_bad_row="skip")
    texts, sources, _ = read(reader)
    assert texts == ["first", "second", "fourth"]
    assert sources[-1] == f"{path}:4"
    assert reader.bad_rows.count == 1


def test_tsv_bad_rows_fail_naming_file_and_line_or_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"ham\tfine\nno tab here\nspam\t\xff\xfe broken\nbogus\tlabel\nham\talso fine\n")
    with pytest.raises(DataError, match=r"bad\.tsv:2: no tab between label and text"):
        read(CorpusReader(path, "sms", chunk_rows=2))
    reader = CorpusReader(path, "sms", chunk_rows=2, on_bad_row="skip")
    texts, sources, _ = read(reader)
    assert texts == ["fine", "also fine"]
    assert sources == [f"{path}:1", f"{path}:5"]
    assert reader.bad_rows.count == 3
    assert [row.line for row in reader.bad_rows.first] == [2, 3, 4]


@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_kaggle_csv_latin1_with_multiline_records(tmp_path: Path, chunk_rows: int) -> None:
    content = (
        'v1,v2,,,\nham,"Go until jurong point, crazy",,,\nspam,"FREE entry\nover two lines £5",,,\n'
        "ham,Caf\xe9 at 5?,,,\n,,,,\nspam,Call now,,,\n"
    )
    path = tmp_path / "spam.csv"
    path.write_bytes(content.encode("latin-1"))
    parsed = corpus.parse_csv(path.read_bytes(), str(path))
    reader = CorpusReader(path, "sms", chunk_rows=chunk_rows, on_bad_row="skip")
    texts, sources, _ = read(reader)
    assert texts == [m.text for m in parsed.messages]
    assert "Café at 5?" in texts and "FREE entry\nover two lines £5" in texts
    assert sources == [f"{path}:{m.line}" for m in parsed.messages]
    assert sources == [f"{path}:2", f"{path}:3", f"{path}:5", f"{path}:7"]
    assert [str(row) for row in reader.bad_rows.first] == [str(row) for row in parsed.bad_rows]


def test_a_folder_reads_its_corpus_files_in_name_order(tmp_path: Path, rows: list[tuple[str, str]]) -> None:
    write_tsv(tmp_path / "b.tsv", rows[:5])
    write_tsv(tmp_path / "a.tsv", rows[5:8], header=False)
    (tmp_path / "README.md").write_text("not a corpus")
    reader = CorpusReader(tmp_path, "sms", chunk_rows=2)
    texts, sources, _ = read(reader)
    assert texts == [text for _, text in rows[5:8] + rows[:5]]
    assert sources[0] == f"{tmp_path / 'a.tsv'}:1"
    assert reader.format == "tsv"


# --- Parquet and JSON Lines -----------------------------------------------------------------------------------


def test_parquet_with_ids_in_batches(tmp_path: Path, rows: list[tuple[str, str]]) -> None:
    path = tmp_path / "in.parquet"
    texts = [text for _, text in rows]
    pq.write_table(pa.table({"id": list(range(100, 100 + len(texts))), "text": texts, "other": [1] * len(texts)}), path)
    reader = CorpusReader(path, "sms", chunk_rows=7)
    assert reader.total == len(texts) and reader.has_ids
    got, sources, ids = read(reader)
    assert got == texts
    assert ids == [str(n) for n in range(100, 100 + len(texts))]
    assert sources[:2] == [f"{path}:1", f"{path}:2"]


def test_parquet_missing_or_mistyped_column_is_refused_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(DataError, match=r"in\.parquet: no column 'text' .*columns: body"):
        CorpusReader(path, "sms")
    pq.write_table(pa.table({"text": [1, 2]}), path)
    with pytest.raises(DataError, match=r"column 'text' is int64, expected string"):
        CorpusReader(path, "sms")
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"in\.parquet: not a readable Parquet file"):
        CorpusReader(path, "sms")


def test_parquet_null_and_empty_texts_are_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["one", None, "  ", "four"]}), path)
    with pytest.raises(DataError, match=r"in\.parquet:2: text is null"):
        read(CorpusReader(path, "sms"))
    reader = CorpusReader(path, "sms", on_bad_row="skip")
    assert read(reader)[0] == ["one", "four"]
    assert [str(row) for row in reader.bad_rows.first] == [f"{path}:2: text is null", f"{path}:3: empty text"]


def test_jsonl_ids_from_the_first_record_and_row_problems_named(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    records = [{"id": "a", "text": "one"}, {"id": 7, "text": "two"}, {"text": "three"}]
    lines = [json.dumps(r) for r in records] + ["", "{not json", json.dumps({"body": "x"}), json.dumps(["x"])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"in\.jsonl:5: not JSON"):
        read(CorpusReader(path, "sms"))
    reader = CorpusReader(path, "sms", on_bad_row="skip", chunk_rows=2)
    texts, sources, ids = read(reader)
    assert texts == ["one", "two", "three"]
    assert ids == ["a", "7", None]
    assert sources == [f"{path}:1", f"{path}:2", f"{path}:3"]
    reasons = [row.reason for row in reader.bad_rows.first]
    assert reasons[1:] == ["no field 'text' (the sms model's input)", "a JSON list, expected an object"]


def test_the_ingest_processed_split_reads_as_jsonl(tmp_path: Path, rows: list[tuple[str, str]]) -> None:
    path = tmp_path / "test.jsonl"
    path.write_text(corpus.to_jsonl(corpus.Message(label, text) for label, text in rows), encoding="utf-8")
    texts, _, ids = read(CorpusReader(path, "sms"))
    assert texts == [text for _, text in rows] and ids is None


def test_missing_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.tsv: not found"):
        CorpusReader(tmp_path / "nowhere.tsv", "sms")


# --- E-mail -----------------------------------------------------------------------------------------------------


@pytest.fixture
def mails() -> list[bytes]:
    return [raw for _, raw in make_corpus(n_ham=4, n_spam=3, seed=2)]


def test_email_tree_with_unlabelled_folders_maildir_and_mbox(tmp_path: Path, mails: list[bytes]) -> None:
    root = tmp_path / "mail"
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "1.eml").write_bytes(mails[0])
    for sub in ("cur", "new", "tmp"):
        (root / "Maildir" / sub).mkdir(parents=True)
    (root / "Maildir" / "cur" / "m1").write_bytes(mails[1])
    (root / "Maildir" / "new" / "m2").write_bytes(mails[2])
    (root / "Maildir" / "tmp" / "m3").write_bytes(mails[3])  # a delivery in progress: not read
    box = mailbox.mbox(str(root / "archive.mbox"))
    for raw in mails[4:6]:
        box.add(raw)
    box.flush()
    reader = CorpusReader(root, "email", chunk_rows=2, on_bad_row="skip")
    raws, sources, ids = read(reader)
    assert ids is None
    assert len(raws) == 5
    assert all(isinstance(raw, bytes) for raw in raws)
    assert mails[0] in raws and mails[1] in raws and mails[2] in raws and mails[3] not in raws
    assert str(root / "inbox" / "1.eml") in sources
    assert any(source.startswith(f"{root / 'archive.mbox'}:") for source in sources)
    assert "maildir" in reader.format and "mbox" in reader.format


def test_email_tar_archive_members(tmp_path: Path, mails: list[bytes]) -> None:
    path = tmp_path / "corpus.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for number, raw in enumerate(mails):
            info = tarfile.TarInfo(f"any/folder/{number:03d}.eml")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    raws, sources, _ = read(CorpusReader(path, "email", chunk_rows=3))
    assert raws == mails
    assert sources[0] == f"{path}:any/folder/000.eml"


def test_email_parquet_binary_and_jsonl_raw_b64_or_text(tmp_path: Path, mails: list[bytes]) -> None:
    parquet = tmp_path / "mail.parquet"
    pq.write_table(
        pa.table({"message": pa.array(mails, pa.binary()), "id": [f"m{i}" for i in range(len(mails))]}), parquet
    )
    raws, _, ids = read(CorpusReader(parquet, "email", chunk_rows=2))
    assert raws == mails and ids == [f"m{i}" for i in range(len(mails))]

    jsonl = tmp_path / "mail.jsonl"
    lines = [json.dumps({"raw_b64": base64.b64encode(raw).decode()}) for raw in mails[:3]]
    lines.append(json.dumps({"message": mails[3].decode("utf-8")}))
    lines.append(json.dumps({"message": "no headers at all, just words"}))
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mail\.jsonl:5: not an e-mail: no header block"):
        read(CorpusReader(jsonl, "email"))
    raws, _, _ = read(CorpusReader(jsonl, "email", on_bad_row="skip"))
    assert raws == mails[:4]


def test_email_over_the_size_limit_is_a_bad_row(tmp_path: Path, mails: list[bytes]) -> None:
    path = tmp_path / "mail.parquet"
    pq.write_table(pa.table({"message": pa.array(mails[:2], pa.binary())}), path)
    limit = min(len(mails[0]), len(mails[1])) - 1
    with pytest.raises(DataError, match=rf"mail\.parquet:1: message is .* over the {limit:,}-byte limit"):
        read(CorpusReader(path, "email", mail_max_bytes=limit))


# --- The Spark engine's Java check ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no version here", None),
    ],
)
def test_java_major(output: str, major: int | None) -> None:
    assert java_major(output) == major


def test_java_executable_follows_java_home_then_path(tmp_path: Path) -> None:
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    assert java_executable({"JAVA_HOME": str(tmp_path / "jdk"), "PATH": ""}) == str(java)
    assert java_executable({"JAVA_HOME": str(tmp_path / "nojdk"), "PATH": str(java.parent)}) is None
    assert java_executable({"PATH": str(java.parent)}) == str(java)
    assert java_executable({"PATH": str(tmp_path)}) is None
