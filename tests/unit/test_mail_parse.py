"""spamfilter.mail: raw messages to MailRecords — encodings, charsets, MIME structure, attachments,
headers, URLs, the limits, input that is not an e-mail, and the real SpamAssassin corpus."""

from __future__ import annotations

import base64
import dataclasses
import json
import pickle
import quopri
import random
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from spamfilter.errors import ConfigError
from spamfilter.mail import DEFAULT_HEADER_FIELDS, MailError, MailLimits, looks_like_email, parse_message
from spamfilter.mail.charsets import decode_text
from spamfilter.mail.headers import decode_encoded_words, parse_addresses
from spamfilter.mail.urls import url_domain, urls_in_text, web_link

SPAM_ASSASSIN = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "datasets-spam-assassin-0.2.3.tgz"


def message(*headers: str, body: bytes | str = b"Hello.\n", sender: str | None = "Alice <alice@example.com>") -> bytes:
    """A raw message: From (unless None), the given header lines, an empty line, the body."""
    lines = ([f"From: {sender}"] if sender is not None else []) + ["To: bob@example.org", *headers]
    head = "\n".join(lines).encode("utf-8") + b"\n\n"
    return head + (body.encode("utf-8") if isinstance(body, str) else body)


def multipart(subtype: str, *parts: bytes, boundary: str = "BOUNDARY") -> bytes:
    """The body of a multipart entity (its Content-Type line first) holding `parts` (each headers + body)."""
    chunks = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\n'.encode()]
    for part in parts:
        chunks.append(f"--{boundary}\n".encode() + part + b"\n")
    chunks.append(f"--{boundary}--\n".encode())
    return b"".join(chunks)


def part(content_type: str, body: bytes, *headers: str) -> bytes:
    head = "\n".join([f"Content-Type: {content_type}", *headers]).encode()
    return head + b"\n\n" + body


def mime_message(entity: bytes, *headers: str, subject: str = "s") -> bytes:
    """A message whose top-level entity is `entity` (a Content-Type line, an empty line, a body)."""
    head = ["From: a@example.com", "To: b@example.org", f"Subject: {subject}", "MIME-Version: 1.0", *headers]
    return "".join(f"{line}\n" for line in head).encode() + entity


# --- transfer encodings -------------------------------------------------------------------------


TEXT = "Prices fell 10%: café, naïve résumé — ünïcödé.\nSecond line =with= equals.\n"


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("7bit", TEXT.encode("ascii", "replace")),
        ("8bit", TEXT.encode("utf-8")),
        ("binary", TEXT.encode("utf-8")),
        ("quoted-printable", quopri.encodestring(TEXT.encode("utf-8"))),
        ("base64", base64.encodebytes(TEXT.encode("utf-8"))),
    ],
)
def test_every_transfer_encoding_decodes_to_the_same_text(encoding: str, encoded: bytes) -> None:
    raw = message("Content-Type: text/plain; charset=utf-8", f"Content-Transfer-Encoding: {encoding}", body=encoded)
    record = parse_message(raw)
    expected = TEXT if encoding != "7bit" else TEXT.encode("ascii", "replace").decode()
    assert record.body_text == expected
    assert record.charsets == ("utf-8",)
    assert record.defects == 0


def test_transfer_encoding_name_is_read_case_and_space_insensitively() -> None:
    raw = message(
        "Content-Type: text/plain", "Content-Transfer-Encoding:  Base64  ", body=base64.encodebytes(b"hi there")
    )
    assert parse_message(raw).body_text == "hi there"


def test_uuencoded_body() -> None:
    import binascii

    encoded = b"begin 644 note.txt\n" + binascii.b2a_uu(b"uuencoded words") + b"`\nend\n"
    raw = message("Content-Type: text/plain", "Content-Transfer-Encoding: x-uuencode", body=encoded)
    assert parse_message(raw).body_text == "uuencoded words"


def test_base64_with_bad_padding_is_repaired_and_counted() -> None:
    encoded = base64.b64encode(b"padding was cut off").rstrip(b"=")[:-1]  # 1 character past a quantum
    raw = message("Content-Type: text/plain", "Content-Transfer-Encoding: base64", body=encoded)
    record = parse_message(raw)
    assert record.body_text.startswith("padding was cut o")
    assert record.defects == 1


def test_unknown_transfer_encoding_keeps_the_bytes_and_is_a_defect() -> None:
    raw = message("Content-Type: text/plain", "Content-Transfer-Encoding: 8-bit", body=b"plain words")
    record = parse_message(raw)
    assert record.body_text == "plain words"
    assert record.defects == 1


# --- RFC 2047 and headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ("=?utf-8?B?" + base64.b64encode("Grüße aus Köln".encode()).decode() + "?=", "Grüße aus Köln"),
        ("=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Grüße aus Köln"),
        ("=?iso-8859-1?q?caf=E9_cr=E8me?=", "café crème"),
        ("=?koi8-r?B?" + base64.b64encode("Привет мир".encode("koi8-r")).decode() + "?=", "Привет мир"),
        ("=?gb2312?B?" + base64.b64encode("免费赠品".encode("gb2312")).decode() + "?=", "免费赠品"),
        ("=?shift_jis?B?" + base64.b64encode("無料".encode("shift_jis")).decode() + "?=", "無料"),
        ("=?windows-1252?Q?=93quoted=94?= text", "\u201cquoted\u201d text"),
        ("=?utf-8*en?Q?with_language?=", "with language"),
    ],
)
def test_rfc2047_subjects_in_b_and_q_and_several_charsets(encoded: str, expected: str) -> None:
    record = parse_message(message(f"Subject: {encoded}"))
    assert record.subject == expected


def test_adjacent_encoded_words_join_without_the_space_and_keep_a_split_character() -> None:
    euro = "€".encode()  # three bytes, split across two encoded words
    first = base64.b64encode(b"Price " + euro[:2]).decode()
    second = base64.b64encode(euro[2:] + b"5").decode()
    subject = f"=?utf-8?B?{first}?= =?utf-8?B?{second}?= now\n\tfolded"
    assert parse_message(message(f"Subject: {subject}")).subject == "Price €5 now folded"


def test_text_between_encoded_words_and_plain_text_stays() -> None:
    assert decode_encoded_words("a =?utf-8?q?b?= c =?utf-8?q?d?=") == ("a b c d", 0)
    assert decode_encoded_words("no words here") == ("no words here", 0)
    assert decode_encoded_words("=?bogus") == ("=?bogus", 0)


def test_encoded_word_in_an_unknown_charset_falls_back_and_counts() -> None:
    text, defects = decode_encoded_words("=?x-unknown?Q?caf=C3=A9?=")
    assert text == "café"  # not a charset Python knows: the bytes are valid UTF-8
    assert defects == 1


def test_display_name_is_decoded_and_address_lower_cased() -> None:
    raw = message(sender="=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <Joerg.Mueller@Example.COM>")
    record = parse_message(raw)
    assert (record.sender_name, record.sender_address, record.sender_domain) == (
        "Jörg Müller",
        "joerg.mueller@example.com",
        "example.com",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"Doe, John" <jd@x.org>, bob@y.net', [("Doe, John", "jd@x.org"), ("", "bob@y.net")]),
        ("jd@x.org (John Doe)", [("John Doe", "jd@x.org")]),
        ("John Doe jd@x.org", [("John Doe", "jd@x.org")]),
        ("team: a@x.org, b@y.org;, c@z.org", [("", "a@x.org"), ("", "b@y.org"), ("", "c@z.org")]),
        ("undisclosed-recipients:;", []),
        ("Undisclosed recipients", [("Undisclosed recipients", "")]),
        ("<@relay.example:user@host.example>", [("", "user@host.example")]),
        ('"unterminated <a@b.c>', [("unterminated <a@b.c>", "")]),
        ("", []),
    ],
)
def test_address_lists(value: str, expected: list[tuple[str, str]]) -> None:
    assert parse_addresses(value) == expected


def test_deeply_nested_comments_in_an_address_do_not_recurse() -> None:
    assert parse_addresses("(" * 100_000 + "x) a@b.example") == [("x", "a@b.example")]
    assert parse_addresses("(unterminated a@b.example") == [("unterminated a@b.example", "")]
    record = parse_message(message(sender="(" * 50_000 + ") x@example.com"))
    assert record.sender_address == "x@example.com"


def test_recipient_counts_and_reply_to() -> None:
    raw = message(
        "Cc: c1@example.net, c2@example.net, c3@example.net",
        "To: d@example.org",
        "Reply-To: Support <help@other.example>",
    )
    record = parse_message(raw)
    assert (record.to_count, record.cc_count) == (2, 3)  # two To fields: bob@ (from the helper) and d@
    assert record.reply_to_domain == "other.example"
    assert record.reply_to_mismatch is True
    same = parse_message(message("Reply-To: alice@EXAMPLE.com"))
    assert (same.reply_to_domain, same.reply_to_mismatch) == ("example.com", False)
    none = parse_message(message())
    assert (none.reply_to_domain, none.reply_to_mismatch) == ("", False)


def test_missing_from_gives_empty_sender_and_a_defect() -> None:
    record = parse_message(message("Subject: no sender", sender=None))
    assert (record.sender_name, record.sender_address, record.sender_domain) == ("", "", "")
    assert record.defects == 1
    assert record.subject == "no sender"


def test_headers_carry_only_the_requested_fields_in_message_order() -> None:
    raw = (
        b"Received: from relay.example by mx.example\n"
        b"Delivered-To: collector@example.net\n"
        b"Return-Path: <bounce@example.com>\n"
        b"List-Id: <list.example.com>\n"
        b"X-Mailer: Spammer 1.0\n"
        b"Precedence: bulk\n"
        b"Errors-To: e@example.com\n"
        b"From: a@example.com\n"
        b"Subject: =?utf-8?q?Hi_there?=\n"
        b"To: b@example.org\n"
        b"To: c@example.org\n"
        b"Date: Mon, 1 Jul 2002 10:00:00 +0000\n"
        b"Message-ID: <1@example.com>\n"
        b"\nbody\n"
    )
    record = parse_message(raw)
    assert record.headers == (
        ("from", "a@example.com"),
        ("subject", "Hi there"),
        ("to", "b@example.org"),
        ("to", "c@example.org"),
        ("date", "Mon, 1 Jul 2002 10:00:00 +0000"),
        ("message-id", "<1@example.com>"),
    )
    assert {name for name, _ in record.headers} <= set(DEFAULT_HEADER_FIELDS)
    custom = parse_message(raw, header_fields=["X-Mailer", "Received"])
    assert custom.headers == (("received", "from relay.example by mx.example"), ("x-mailer", "Spammer 1.0"))


def test_malformed_headers_are_lenient_and_counted() -> None:
    raw = (
        b"From: a@example.com\n"
        b"Subject: raw 8-bit caf\xe9 in latin-1\n"
        b"X-Utf8: caf\xc3\xa9\n"
        b"this line is not a header\n"
        b"To: lost@example.org\n"
        b"\nbody\n"
    )
    record = parse_message(raw, header_fields=["subject", "x-utf8"])
    assert record.subject == "raw 8-bit café in latin-1"  # not UTF-8: decoded by fallback, a defect
    assert ("x-utf8", "café") in record.headers  # UTF-8 bytes: no defect
    # The parser ends the header block at the bad line (a defect) and reads the rest as body.
    assert "this line is not a header" in record.body_text
    assert record.to_count == 0
    assert record.defects == 2


def test_first_header_line_as_continuation_and_empty_subject() -> None:
    record = parse_message(b"From: a@example.com\n folded into from\nSubject:\n\nbody")
    assert record.subject == ""
    assert record.body_text == "body"


# --- charsets -----------------------------------------------------------------------------------


def plain(body: bytes, charset: str | None) -> bytes:
    content_type = "Content-Type: text/plain" + (f"; charset={charset}" if charset is not None else "")
    return message(content_type, "Content-Transfer-Encoding: 8bit", body=body)


RUSSIAN = "Здравствуйте! Мы предлагаем лучшие цены на все товары этой недели, заходите к нам."
KOREAN = "안녕하세요. 이번 주 특별 할인 행사에 여러분을 초대합니다. 지금 바로 방문하세요."


def test_declared_charset_decodes() -> None:
    record = parse_message(plain(RUSSIAN.encode("koi8-r"), "koi8-r"))
    assert record.body_text == RUSSIAN
    assert (record.charsets, record.defects) == (("koi8-r",), 0)


def test_ks_c_5601_label_reads_as_cp949() -> None:
    record = parse_message(plain(KOREAN.encode("cp949"), '"ks_c_5601-1987"'))
    assert record.body_text == KOREAN
    assert (record.charsets, record.defects) == (("ks_c_5601-1987",), 0)


def test_iso_8859_1_label_reads_windows_quotes() -> None:
    record = parse_message(plain("\u201csmart\u201d quotes".encode("cp1252"), "iso-8859-1"))
    assert record.body_text == "\u201csmart\u201d quotes"
    assert record.defects == 0


def test_undeclared_8bit_utf8_is_utf8_and_a_defect() -> None:
    record = parse_message(plain("naïve café".encode(), None))
    assert record.body_text == "naïve café"
    assert (record.charsets, record.defects) == (("utf-8",), 1)


def test_undeclared_8bit_cyrillic_is_detected() -> None:
    record = parse_message(plain(RUSSIAN.encode("windows-1251"), None))
    assert record.body_text == RUSSIAN
    assert record.charsets == ("cp1251",)
    assert record.defects == 1


@pytest.mark.parametrize("label", ["unknown-8bit", "x-user-defined", "default_charset", "us-ascii", "bogus(name)"])
def test_unknown_or_ascii_label_over_8bit_text_falls_back(label: str) -> None:
    record = parse_message(plain(RUSSIAN.encode("koi8-r"), label))
    assert record.body_text == RUSSIAN  # detected
    assert record.defects == 1


def test_unknown_label_over_ascii_text_is_a_defect_but_reads_as_ascii() -> None:
    record = parse_message(plain(b"only ascii", "x-unknown"))
    assert record.body_text == "only ascii"
    assert (record.charsets, record.defects) == (("us-ascii",), 1)


def test_charset_failing_mid_way_keeps_the_label_and_marks_the_bad_byte() -> None:
    body = ("Long valid UTF-8 text with ünïcode " * 10).encode() + b"\xff" + b" and more text"
    record = parse_message(plain(body, "utf-8"))
    assert record.body_text.endswith("\ufffd and more text")
    assert record.body_text.startswith("Long valid UTF-8 text with ünïcode")
    assert (record.charsets, record.defects) == (("utf-8",), 1)


def test_wrong_label_failing_throughout_is_replaced_by_detection() -> None:
    record = parse_message(plain(RUSSIAN.encode("koi8-r"), "utf-8"))
    assert record.body_text == RUSSIAN
    assert record.defects == 1


def test_label_with_a_nul_is_unknown() -> None:
    decoded = decode_text("Grüße".encode("cp1252"), "bogus\x00name")
    assert (decoded.text, decoded.defects) == ("Grüße", 1)


def test_undecodable_short_bytes_fall_back_to_something_and_never_raise() -> None:
    for data in (b"\xff\xfe\x00", b"\x80", bytes(range(128, 256)), b"\xe9"):
        decoded = decode_text(data, None)
        assert decoded.text  # every byte decoded to some character
        assert decoded.defects == 1


@pytest.mark.parametrize("label", ["punycode", "idna", "base64", "unicode-escape", "rot13", "zlib", "undefined"])
def test_codecs_that_are_not_charsets_are_refused_as_labels(label: str) -> None:
    decoded = decode_text("Grüße".encode("cp1252"), label)
    assert decoded.text == "Grüße"
    assert decoded.defects == 1


def test_utf7_with_a_lone_surrogate_gives_encodable_text() -> None:
    decoded = decode_text(b"+2D3cAA- ok \xe9", "utf-7")
    decoded.text.encode("utf-8")  # would raise on a lone surrogate


# --- structure: HTML, alternatives, nesting, attachments ----------------------------------------


def test_html_only_message() -> None:
    html = '<html><body><p>Buy <b>now</b></p><a href="http://Shop.Example/deal?id=1&amp;x=2">click</a></body></html>'
    record = parse_message(mime_message(part("text/html; charset=utf-8", html.encode())))
    assert record.body_text == "Buy now\nclick"
    assert record.html_share == 1.0
    assert record.urls == ("http://Shop.Example/deal?id=1&x=2",)
    assert record.url_domains == ("shop.example",)
    assert record.mime_types == ("text/html",)
    assert record.mime_depth == 0


def test_html_charset_from_meta_when_the_part_declares_none() -> None:
    html = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251"><p>' + RUSSIAN
    record = parse_message(mime_message(part("text/html", html.encode("windows-1251"))))
    assert record.body_text == RUSSIAN
    assert record.charsets == ("windows-1251",)


def test_multipart_alternative_reads_both_parts_in_order() -> None:
    entity = multipart(
        "alternative",
        part("text/plain", b"Plain version"),
        part("text/html", b"<p>Html version</p>"),
    )
    record = parse_message(mime_message(entity))
    assert record.body_text == "Plain version\nHtml version"
    assert record.mime_types == ("multipart/alternative", "text/plain", "text/html")
    assert record.html_share == pytest.approx(len("Html version") / len("Plain versionHtml version"))
    assert record.mime_depth == 1


def test_nested_multipart_with_attachments() -> None:
    pdf = b"%PDF-1.4 " + bytes(range(256)) * 4
    alternative = multipart(
        "alternative", part("text/plain", b"see attached"), part("text/html", b"<i>see</i> attached"), boundary="inner"
    )
    entity = multipart(
        "mixed",
        alternative,
        part(
            "application/pdf",
            base64.encodebytes(pdf),
            "Content-Transfer-Encoding: base64",
            'Content-Disposition: attachment; filename="invoice.pdf"',
        ),
        part("image/gif", base64.encodebytes(b"GIF89a" + b"\x00" * 100), "Content-Transfer-Encoding: base64"),
        part("text/plain", b"a,b\n1,2\n", 'Content-Disposition: attachment; filename="data.csv"'),
        boundary="outer",
    )
    record = parse_message(mime_message(entity))
    assert record.mime_types == (
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
        "image/gif",
        "text/plain",
    )
    assert record.mime_depth == 2
    assert record.body_text == "see attached\nsee attached"
    assert [(a.name, a.content_type) for a in record.attachments] == [
        ("invoice.pdf", "application/pdf"),
        ("", "image/gif"),
        ("data.csv", "text/plain"),
    ]
    pdf_size = record.attachments[0].size
    assert len(pdf) <= pdf_size <= len(pdf) + 2  # estimated from the base64 length
    assert record.attachments[2].size == len(b"a,b\n1,2\n")


def test_attachment_names_by_rfc2231_rfc2047_and_content_type_name() -> None:
    entity = multipart(
        "mixed",
        part("text/plain", b"body"),
        part(
            "application/octet-stream",
            b"x",
            "Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20rechnung.pdf",
        ),
        part(
            "application/octet-stream",
            b"x",
            "Content-Disposition: attachment; filename*0*=utf-8''long%20na; filename*1=me.zip",
        ),
        part(
            "application/octet-stream",
            b"x",
            'Content-Disposition: attachment; filename="=?utf-8?q?r=C3=A9sum=C3=A9?=.doc"',
        ),
        part('application/x-msdownload; name="setup.exe"', b"MZ"),
    )
    record = parse_message(mime_message(entity))
    assert [a.name for a in record.attachments] == ["€ rechnung.pdf", "long name.zip", "résumé.doc", "setup.exe"]


def test_attachments_are_never_decoded() -> None:
    garbage = b"!!!! not base64 at all ####\n" * 10  # decoding it would count defects
    entity = multipart(
        "mixed",
        part("text/plain", b"body"),
        part("application/zip", garbage, "Content-Transfer-Encoding: base64", "Content-Disposition: attachment"),
    )
    record = parse_message(mime_message(entity))
    assert record.defects == 0
    assert record.attachments[0].size > 0


def test_forwarded_message_is_walked() -> None:
    inner = b"From: inner@example.com\nSubject: inner\n\nForwarded text"
    entity = multipart("mixed", part("text/plain", b"FYI"), part("message/rfc822", inner))
    record = parse_message(mime_message(entity))
    assert record.mime_types == ("multipart/mixed", "text/plain", "message/rfc822", "text/plain")
    assert record.body_text == "FYI\nForwarded text"
    assert record.mime_depth == 2


def test_multipart_without_boundary_is_read_as_text() -> None:
    record = parse_message(mime_message(b"Content-Type: multipart/mixed\n\nno boundary here"))
    assert record.body_text == "no boundary here"
    assert record.defects >= 1


def test_content_type_with_junk_after_the_type() -> None:
    record = parse_message(message("Content-Type: text/plain charset=us-ascii", body=b"text"))
    assert record.mime_types == ("text/plain",)
    assert record.body_text == "text"


# --- input forms and what is not an e-mail -----------------------------------------------------


def test_str_input_is_utf8_bytes() -> None:
    raw = message("Subject: Grüße", body="Grüße".encode())
    assert parse_message(raw.decode("utf-8")) == parse_message(raw)


def test_mbox_line_blank_lines_and_byte_order_mark_before_the_headers() -> None:
    raw = b"\xef\xbb\xbf\r\n\r\nFrom sender@example.com Mon Jul  1 10:00:00 2002\r\n" + message(
        "Subject: hello"
    ).replace(b"\n", b"\r\n")
    assert looks_like_email(raw)
    record = parse_message(raw)
    assert (record.subject, record.sender_address, record.body_text) == ("hello", "alice@example.com", "Hello.\n")
    assert record.size == len(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"  \r\n\t\n", "empty"),
        (bytes(random.Random(1).randrange(256) for _ in range(4096)), "not an e-mail"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "first line is not a header field"),
        (b"PK\x03\x04\x14\x00\x00\x00", "first line is not a header field"),
        (b"<html><body>Hello</body></html>", "first line is not a header field"),
        (b'{"from": "a@example.com", "text": "hi"}', "no e-mail header field"),
        (b"Hello: world\nThis is just text\n", "no e-mail header field"),
        (b"From: a@example.com\nX-Junk: \x00\x01\n\nbody", "binary data"),
        (b"\n\nSubject: after blank lines\n", None),
    ],
)
def test_what_is_not_an_email(raw: bytes, reason: str | None) -> None:
    if reason is None:
        assert looks_like_email(raw)
        assert parse_message(raw).subject == "after blank lines"
        return
    assert not looks_like_email(raw)
    with pytest.raises(MailError, match="not an e-mail") as refused:
        parse_message(raw)
    assert reason in str(refused.value)


# --- limits -------------------------------------------------------------------------------------


def test_size_limit_is_checked_before_parsing() -> None:
    raw = message(body=b"x" * 5_000)
    with pytest.raises(MailError) as refused:
        parse_message(raw, MailLimits(max_bytes=4_000))
    assert str(refused.value) == (
        f"message is {len(raw):,} bytes, over the 4,000-byte limit (channels.email.ingest.limits.max_bytes)"
    )
    assert parse_message(raw, MailLimits(max_bytes=len(raw))).size == len(raw)
    with pytest.raises(MailError, match=r"at least 5,000 bytes.*channels\.email\.ingest\.limits\.max_bytes"):
        parse_message("x" * 5_000, MailLimits(max_bytes=4_000))


def test_default_size_limit_is_one_mebibyte() -> None:
    with pytest.raises(MailError, match=r"1,048,576-byte limit \(channels\.email\.ingest\.limits\.max_bytes\)"):
        parse_message(message(body=b"y" * 1_048_576))


def flat_parts(count: int) -> bytes:
    return mime_message(multipart("mixed", *(part("text/plain", f"part {n}".encode()) for n in range(count))))


def test_parts_limit() -> None:
    assert len(parse_message(flat_parts(4), MailLimits(max_parts=5)).mime_types) == 5  # the container too
    with pytest.raises(MailError) as refused:
        parse_message(flat_parts(5), MailLimits(max_parts=5))
    assert "more than 5 MIME parts" in str(refused.value)
    assert "channels.email.ingest.limits.max_parts" in str(refused.value)


def nested_multipart(levels: int) -> bytes:
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{n}"\n\n--b{n}\n' for n in range(levels))
    closing = "".join(f"\n--b{n}--\n" for n in reversed(range(levels)))
    return mime_message((opening + "Content-Type: text/plain\n\ninnermost" + closing).encode())


def nested_messages(levels: int) -> bytes:
    return mime_message(("Content-Type: message/rfc822\n\n" * levels + "Subject: inner\n\ninnermost").encode())


@pytest.mark.parametrize("nested", [nested_multipart, nested_messages])
def test_depth_limit(nested: Callable[[int], bytes]) -> None:
    record = parse_message(nested(3), MailLimits(max_depth=3))
    assert record.mime_depth == 3
    assert "innermost" in record.body_text
    with pytest.raises(MailError) as refused:
        parse_message(nested(4), MailLimits(max_depth=3))
    assert (
        str(refused.value)
        == "message nests MIME parts 4 deep, over the limit of 3 (channels.email.ingest.limits.max_depth)"
    )


@pytest.mark.parametrize("nested", [nested_multipart, nested_messages])
def test_five_thousand_levels_are_refused_at_the_first_level_too_deep(nested: Callable[[int], bytes]) -> None:
    raw = nested(5_000)
    assert len(raw) < 1_048_576  # refused for its depth, not its size
    with pytest.raises(
        MailError,
        match=r"nests MIME parts 11 deep, over the limit of 10 \(channels\.email\.ingest\.limits\.max_depth\)",
    ):
        parse_message(raw)


def test_decoded_size_limit_counts_attachments_without_decoding_them() -> None:
    attachment = part(
        "application/octet-stream", base64.encodebytes(b"\x00" * 3_000), "Content-Transfer-Encoding: base64"
    )
    raw = mime_message(multipart("mixed", part("text/plain", b"small"), attachment))
    with pytest.raises(MailError) as refused:
        parse_message(raw, MailLimits(max_decoded_bytes=2_000))
    assert "over the 2,000-byte limit (channels.email.ingest.limits.max_decoded_bytes)" in str(refused.value)
    assert parse_message(raw, MailLimits(max_decoded_bytes=3_005)).attachments[0].size == 3_000


def test_html_beyond_its_limit_is_cut_and_counted() -> None:
    html = "<p>" + "word " * 1_000 + "</p><p>TAIL</p>"
    raw = mime_message(part("text/html", html.encode()))
    record = parse_message(raw, MailLimits(max_html_chars=1_000))
    assert "TAIL" not in record.body_text
    assert record.defects == 1
    assert "TAIL" in parse_message(raw).body_text


@pytest.mark.parametrize(
    ("limits", "key"),
    [
        ({"max_bytes": 0}, "channels.email.ingest.limits.max_bytes"),
        ({"max_parts": -1}, "channels.email.ingest.limits.max_parts"),
        ({"max_depth": 101}, "channels.email.ingest.limits.max_depth"),
        ({"max_decoded_bytes": 1.5}, "channels.email.ingest.limits.max_decoded_bytes"),
        ({"max_html_chars": True}, "channels.email.ingest.limits.max_html_chars"),
    ],
)
def test_invalid_limits_are_configuration_errors(limits: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        MailLimits(**limits)  # type: ignore[arg-type]


# --- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Visit http://example.com/a.", ["http://example.com/a"]),
        ("(see https://example.com/x?y=1)", ["https://example.com/x?y=1"]),
        ("https://en.wikipedia.org/wiki/Spam_(food), tasty", ["https://en.wikipedia.org/wiki/Spam_(food)"]),
        ("Go to www.Example.com!", ["www.Example.com"]),
        ("HTTP://UPPER.EXAMPLE/Path", ["HTTP://UPPER.EXAMPLE/Path"]),
        ("mail me at bob@www.example.com or see sub.www.example.com", []),
        (
            "ftp://files.example.org/pub and <http://quoted.example>",
            ["ftp://files.example.org/pub", "http://quoted.example"],
        ),
        ("xhttp://not.example nothttp", []),
        ("http://192.0.2.7:8080/login", ["http://192.0.2.7:8080/login"]),
        ("http:// nothing and http:///no-host", []),
        ("twice: http://a.example/ http://a.example/", ["http://a.example/", "http://a.example/"]),
    ],
)
def test_urls_in_text(text: str, expected: list[str]) -> None:
    assert urls_in_text(text) == expected


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("http://WWW.Example.COM:8080/x", "example.com"),
        ("www.example.com/path", "example.com"),
        ("http://www2.example.com/", "www2.example.com"),
        ("https://paypal.com@evil.example/login", "evil.example"),
        ("http://evil.example\\@paypal.com/", "evil.example"),
        ("http://192.0.2.7/", "192.0.2.7"),
        ("http://[2001:db8::1]:80/", "2001:db8::1"),
        ("http://%65vil.example/", "evil.example"),
        ("http://example.com./", "example.com"),
        ("http://[unclosed/", ""),
        ("http:///path-only", ""),
    ],
)
def test_url_domains(url: str, domain: str) -> None:
    assert url_domain(url) == domain


@pytest.mark.parametrize(
    ("href", "url"),
    [
        (" http://example.com/a\n\tb ", "http://example.com/ab"),
        ("//cdn.example.net/x.js", "http://cdn.example.net/x.js"),
        ("www.example.com", "www.example.com"),
        ("mailto:someone@example.com", None),
        ("javascript:alert(1)", None),
        ("cid:image001@example", None),
        ("#top", None),
        ("/relative/page.html", None),
        ("tel:+15550100", None),
    ],
)
def test_which_link_targets_are_web_links(href: str, url: str | None) -> None:
    assert web_link(href) == url


def test_record_urls_come_from_text_and_hrefs_deduplicated_in_order() -> None:
    html = (
        '<a href="mailto:x@example.com">mail</a> <a href="http://b.example/">b</a> '
        "visit http://c.example/ or www.b.example"
    )
    entity = multipart(
        "alternative",
        part("text/plain", b"See http://a.example/ and http://b.example/"),
        part("text/html", html.encode()),
    )
    record = parse_message(mime_message(entity))
    assert record.urls == ("http://a.example/", "http://b.example/", "http://c.example/", "www.b.example")
    assert record.url_domains == ("a.example", "b.example", "c.example")


# --- the record ---------------------------------------------------------------------------------


def test_record_is_picklable_and_json_serialisable() -> None:
    entity = multipart("mixed", part("text/plain", "héllo http://x.example/".encode()), part("image/png", b"png"))
    record = parse_message(mime_message(entity, subject="=?utf-8?q?s=C3=BCbject?="))
    assert pickle.loads(pickle.dumps(record)) == record
    as_json = json.loads(json.dumps(dataclasses.asdict(record)))
    assert as_json["subject"] == "sübject"
    assert as_json["attachments"] == [{"name": "", "content_type": "image/png", "size": 3}]


def test_mutated_messages_raise_nothing_but_mail_error() -> None:
    """Seeded mutations of crafted messages (bytes flipped, cut, duplicated, special bytes inserted)."""
    seeds = [
        mime_message(
            multipart(
                "mixed",
                multipart(
                    "alternative", part("text/plain", b"plain =E9"), part("text/html", b"<p>x</p>"), boundary="in"
                ),
                part("application/pdf", base64.encodebytes(b"%PDF" * 50), "Content-Transfer-Encoding: base64"),
                part("message/rfc822", b"Subject: =?utf-8?b?w6k=?=\n\ninner"),
                boundary="out",
            ),
            'From: "=?utf-8?q?N=C3=A4me?=" <a@b.example>',
        ),
        message(
            "Subject: =?koi8-r?B?8NLJ18XU?=",
            "Content-Type: text/html; charset=koi8-r",
            body="<a href=x>й</a>".encode("koi8-r"),
        ),
    ]
    specials = [
        b"\x00",
        b"\xff",
        b"=?",
        b"?=",
        b"\n",
        b"\r",
        b"--",
        b"<",
        b'"',
        b"(",
        b"\\",
        b":",
        b";",
        b"*",
        b"'",
        b"%",
    ]
    rng = random.Random(20020701)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(600):
        raw = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(raw))
            action = rng.randrange(4)
            if action == 0:
                raw[position] = rng.randrange(256)
            elif action == 1:
                raw[position:position] = rng.choice(specials)
            elif action == 2:
                del raw[position : position + rng.randint(1, 40)]
            else:
                raw[position:position] = raw[max(0, position - 30) : position]
        try:
            parse_message(bytes(raw))
            outcomes["parsed"] += 1
        except MailError:
            outcomes["refused"] += 1
    assert outcomes["parsed"] > 500  # most mutations still leave an e-mail


# --- the real corpus ----------------------------------------------------------------------------


@pytest.mark.real_data
@pytest.mark.skipif(not SPAM_ASSASSIN.exists(), reason=f"no SpamAssassin corpus at {SPAM_ASSASSIN}")
def test_every_message_of_the_spamassassin_corpus_parses_within_the_default_limits() -> None:
    parsed = 0
    with_html = 0
    with tarfile.open(SPAM_ASSASSIN) as archive:
        for member in archive:
            if not (member.isfile() and member.name.endswith(".txt")):
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            record = parse_message(handle.read())  # a MailError or any other exception fails the test
            parsed += 1
            with_html += record.html_share > 0
            assert record.body_text or record.attachments or record.subject, member.name
    assert parsed == 6_046
    assert 1_000 < with_html < 1_500  # 1,210 HTML parts in the corpus
