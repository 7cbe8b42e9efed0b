"""Parsing every accepted input form, validation errors with file and line, dedup and splitting."""

from __future__ import annotations

import pytest

from spamfilter.data.corpus import (
    DataError,
    Message,
    ParsedFile,
    dataset_stats,
    deduplicate,
    detect_format,
    from_jsonl,
    parse_corpus,
    split,
    to_jsonl,
)


def test_uci_form_without_header() -> None:
    parsed = parse_corpus(b"ham\tHello there\nspam\tWIN now\n", "c.tsv")
    assert parsed.format == "tsv"
    assert [(m.label, m.text, m.line) for m in parsed.messages] == [("ham", "Hello there", 1), ("spam", "WIN now", 2)]
    assert parsed.bad_rows == []


def test_uci_form_with_header_and_crlf_and_bom() -> None:
    parsed = parse_corpus(b"\xef\xbb\xbflabel\ttext\r\nHAM\tHi\r\n Spam \tWin\r\n", "c.tsv")
    assert [(m.label, m.text, m.line) for m in parsed.messages] == [("ham", "Hi", 2), ("spam", "Win", 3)]


def test_quotes_are_text_not_quoting() -> None:
    raw = b'ham\t"Divorce Barbie" joke\nham\tsay "hi\nham\tnext row\n'
    parsed = parse_corpus(raw, "c.tsv")
    assert [m.text for m in parsed.messages] == ['"Divorce Barbie" joke', 'say "hi', "next row"]


def test_only_the_first_tab_splits() -> None:
    parsed = parse_corpus(b"ham\tleft\tright\n", "c.tsv")
    assert parsed.messages[0].text == "left\tright"


def test_html_entities_are_unescaped() -> None:
    parsed = parse_corpus(b"ham\tI'll be there at &lt;#&gt; &amp; wait\n", "c.tsv")
    assert parsed.messages[0].text == "I'll be there at <#> & wait"


def test_texts_are_kept_verbatim_otherwise() -> None:
    parsed = parse_corpus("ham\t  £5 ü ‘spaced’  \n".encode(), "c.tsv")
    assert parsed.messages[0].text == "  £5 ü ‘spaced’  "


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"ham no tab here", "no tab between label and text"),
        (b"junk\tsome text", "unknown label 'junk' (expected ham or spam)"),
        (b"spam\t   ", "empty text"),
        (b"", "empty line"),
        (b"ham\tcaf\xe9", "not valid UTF-8 (byte 0xe9 at column 8)"),
    ],
)
def test_bad_rows_name_file_line_and_reason(line: bytes, reason: str) -> None:
    parsed = parse_corpus(b"ham\tfine\n" + line + b"\nspam\talso fine\n", "data/raw/sms/x.tsv")
    assert [str(b) for b in parsed.bad_rows] == [f"data/raw/sms/x.tsv:2: {reason}"]
    assert len(parsed.messages) == 2


def test_empty_file_is_one_bad_row() -> None:
    parsed = parse_corpus(b"  \n", "empty.tsv")
    assert [str(b) for b in parsed.bad_rows] == ["empty.tsv:1: file is empty"]


def test_kaggle_csv_latin1_with_split_columns() -> None:
    raw = (
        b"v1,v2,,,\r\n"
        b"ham,Go until jurong point,,,\r\n"
        b'spam,"Free entry, text WIN",,,\r\n'
        b'ham,"He said ""hi""", and left,,\r\n'
        b"spam,Win \xe5\xa3100 now,,,\r\n"
        b"eggs,bad label,,,\r\n"
    )
    assert detect_format(raw) == "csv"
    parsed = parse_corpus(raw, "spam.csv")
    assert parsed.format == "csv"
    assert [(m.label, m.text, m.line) for m in parsed.messages] == [
        ("ham", "Go until jurong point", 2),
        ("spam", "Free entry, text WIN", 3),
        ("ham", 'He said "hi", and left', 4),
        ("spam", "Win å£100 now", 5),
    ]
    assert [str(b) for b in parsed.bad_rows] == ["spam.csv:6: unknown label 'eggs' (expected ham or spam)"]


def test_csv_multiline_record_reports_its_first_line() -> None:
    raw = b'label,text\nham,"two\nlines"\nspam,\n'
    parsed = parse_corpus(raw, "m.csv")
    assert parsed.messages[0].text == "two\nlines"
    assert [str(b) for b in parsed.bad_rows] == ["m.csv:4: empty text"]


def _file(source: str, rows: list[tuple[str, str]]) -> ParsedFile:
    return ParsedFile(source, "tsv", [Message(lab, txt, source, i) for i, (lab, txt) in enumerate(rows, start=1)])


def test_deduplicate_keeps_first_and_counts_exact_duplicates() -> None:
    dataset = deduplicate([_file("a", [("ham", "x"), ("spam", "y"), ("ham", "x")]), _file("b", [("spam", "y")])])
    assert [(m.text, m.source) for m in dataset.messages] == [("x", "a"), ("y", "a")]
    assert dataset.duplicates_dropped == 2
    assert dataset.rows_read == 4
    assert dataset.bad_rows == []


def test_deduplicate_flags_a_text_under_both_labels() -> None:
    dataset = deduplicate([_file("a", [("ham", "x")]), _file("b", [("spam", "x")])])
    assert [str(b) for b in dataset.bad_rows] == ["b:1: text already labelled 'ham' at a:1"]
    assert len(dataset.messages) == 1


def _messages(n_ham: int, n_spam: int) -> list[Message]:
    return [Message("ham", f"h{i}") for i in range(n_ham)] + [Message("spam", f"s{i}") for i in range(n_spam)]


def test_split_is_stratified_deterministic_and_disjoint() -> None:
    messages = _messages(400, 100)
    train, test = split(messages, test_size=0.2, seed=1)
    assert len(test) == 100
    assert sum(m.is_spam for m in test) == 20
    assert {m.text for m in train}.isdisjoint({m.text for m in test})
    assert split(messages, 0.2, 1) == (train, test)
    assert split(messages, 0.2, 2)[1] != test


def test_split_refuses_too_few_of_a_label() -> None:
    with pytest.raises(DataError, match="at least 2 messages of each label"):
        split(_messages(10, 1), 0.2, 0)


def test_dataset_stats() -> None:
    dataset = deduplicate([_file("a", [("ham", "x"), ("ham", "x"), ("spam", "y"), ("ham", "z")])])
    stats = dataset_stats(dataset, dataset.messages[:2], dataset.messages[2:], new_rows=0)
    assert stats == {
        "rows_read": 4,
        "rows": 3,
        "train_rows": 2,
        "test_rows": 1,
        "spam_rows": 1,
        "spam_rate": pytest.approx(1 / 3, abs=1e-6),
        "duplicates_dropped": 1,
        "bad_rows": 0,
        "new_batch_rows": 0,
    }


def test_jsonl_round_trip_is_exact_for_awkward_text() -> None:
    messages = [Message("ham", 'tab\there "quote"\nnewline £ü', "f.tsv", 3), Message("spam", "x", "g.csv", 9)]
    assert from_jsonl(to_jsonl(messages), "t.jsonl") == messages


def test_jsonl_names_the_malformed_line() -> None:
    content = to_jsonl([Message("ham", "ok")]) + '{"label": "ham"}\n'
    with pytest.raises(DataError, match=r"t.jsonl:2: malformed record"):
        from_jsonl(content, "t.jsonl")
