"""Raw RFC 822 messages to `MailRecord`s: the one parser that training and serving share.

`parse_message(raw, limits, header_fields) -> MailRecord` and `looks_like_email(raw) -> bool`. The
parser is lenient: malformed headers, broken MIME, wrong charsets and bad encodings are repaired where
possible and counted in `MailRecord.defects`. It raises nothing but `MailError`, and only for input that
is not an e-mail at all or that is over a limit (`MailLimits`), named with its params key.

How, and why so (CPU time on the 6,046 messages of the SpamAssassin corpus, bench/html_to_text.py):

- Limits come first and cost nothing on a normal message. The raw size is checked before parsing. The
  part count and nesting depth are checked while the email package's feed parser runs: it attaches each
  new part to its parent before reading the part, and the parts here are a Message subclass whose
  `attach` counts, so a message nested 5,000 deep is refused after 11 levels, in ~7 ms, with no deep
  recursion (the plain parser spends 1 s on 900 nested levels, quadratic, and raises RecursionError on
  5,000). Attachments are never decoded: their size is estimated from the encoded length (an upper
  bound), and the total is checked before any text part is decoded.
- The MIME structure comes from Python's email package with the `compat32` policy and raw header values:
  0.14 ms a message (median) against 0.83 ms with `policy.default`, which runs its structured header
  parser on every part's Content-Type; its header objects cost another ~0.7 ms for five fields, and
  one of the corpus's Message-IDs makes them raise IndexError. Header values are decoded by
  `spamfilter.mail.headers` instead: RFC 2047, 8-bit bytes, address lists. The whole of
  `parse_message` takes 0.39 ms a message (median; 0.38 ms on 3-4 KB messages, 3.8 ms p99, ~1,500
  messages/s on one core).
- Body text is the text/plain and text/html parts that are not attachments, in MIME order, each
  decoded by `spamfilter.mail.charsets` (declared, else detected, else latin-1) and HTML converted by
  `spamfilter.mail.html`; URLs come from that text and from HTML link targets (`spamfilter.mail.urls`).
- `MailRecord.headers` holds only the fields asked for; the default leaves out what the SpamAssassin
  corpus's collection added (Received, Delivered-To, Return-Path, List-*, X-*, Precedence, Errors-To):
  a model that read them would learn how the corpus was collected, not what spam is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.feedparser import BytesFeedParser
from email.message import Message
from email.policy import Compat32
from typing import cast

from spamfilter.config import MAIL_HEADER_FIELDS
from spamfilter.mail.charsets import decode_text
from spamfilter.mail.headers import (
    address_domain,
    collapse_whitespace,
    decode_encoded_words,
    parse_addresses,
    unfold,
)
from spamfilter.mail.html import html_to_text
from spamfilter.mail.limits import DEFAULT_LIMITS, MailError, MailLimits, params_key
from spamfilter.mail.transfer import ENCODINGS_TO_UNDO, KNOWN_TRANSFER_ENCODINGS, decode_base64, decoded_size
from spamfilter.mail.urls import unique, url_domain, urls_in_text, web_link

# The header fields a record keeps by default: config.MAIL_HEADER_FIELDS (one home for the set).
DEFAULT_HEADER_FIELDS = MAIL_HEADER_FIELDS

_BODY_TYPES = frozenset({"text/plain", "text/html"})
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
# The header block of a message: a field name (printable ASCII but ":" and space, as the email package
# reads it) at a line start, up to the first empty line.
_FIELD = re.compile(rb"([!-9;-~]+):")
_FIELD_AT_LINE_START = re.compile(rb"^([!-9;-~]+):", re.M)
_MESSAGE_FIELDS = frozenset(
    {
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"bcc",
        b"subject",
        b"date",
        b"message-id",
        b"in-reply-to",
        b"references",
        b"received",
        b"return-path",
        b"delivered-to",
        b"mime-version",
        b"content-type",
        b"content-transfer-encoding",
    }
)
_HEADER_SCAN_BYTES = 65_536  # how far `looks_like_email` reads for the header block
# Before the message: blank lines and a UTF-8 byte-order mark, which editors and exports leave.
_LEADING_JUNK = re.compile(rb"(?:\xef\xbb\xbf)?[\r\n]*")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([\w.:-]{1,40})""", re.I)
_META_SCAN_BYTES = 2_048
_FEED_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class Attachment:
    """A part that is not body text: its file name ("" if none), content type and (decoded) size in
    bytes, estimated from the encoded length for base64."""

    name: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class MailRecord:
    """What the e-mail model reads from one message; plain Python values only (picklable, JSON-able)."""

    size: int  # bytes of the raw message
    sender_name: str  # From display name, RFC 2047-decoded
    sender_address: str  # lower-cased addr-spec, "" if none
    sender_domain: str  # lower-cased domain of sender_address
    reply_to_domain: str
    reply_to_mismatch: bool  # Reply-To has a domain and it differs from the From domain
    subject: str  # RFC 2047-decoded, whitespace-collapsed
    to_count: int
    cc_count: int
    body_text: str  # text/plain parts and HTML parts as text, in MIME order, decoded
    html_share: float  # share of body characters that came from HTML parts (0..1)
    urls: tuple[str, ...]  # from link targets and text, in order, deduplicated
    url_domains: tuple[str, ...]  # hosts of urls (see spamfilter.mail.urls), deduplicated, in order
    attachments: tuple[Attachment, ...]
    mime_types: tuple[str, ...]  # content type of every part in walk order
    mime_depth: int  # deepest nesting of a part, 0 for a message without parts
    charsets: tuple[str, ...]  # declared (or detected) charsets of body text parts, lower-cased, deduplicated
    defects: int  # email-package defects plus this parser's (charset fallback, bad encoding, no From, ...)
    headers: tuple[tuple[str, str], ...]  # the fields named by `header_fields` only: (lower-cased name, decoded value)


def looks_like_email(raw: bytes) -> bool:
    """Whether `raw` starts with a header block holding at least one e-mail header field (a byte-order
    mark, blank lines and an mbox "From " line may come first). Cheap: reads at most the first 64 KiB."""
    return _why_not_an_email(raw, _message_start(raw)) is None


def parse_message(
    raw: bytes | str,
    limits: MailLimits = DEFAULT_LIMITS,
    header_fields: Sequence[str] = DEFAULT_HEADER_FIELDS,
) -> MailRecord:
    """Parse one raw message (a str is encoded as UTF-8) into a MailRecord; see the module docstring.

    Raises MailError (only) when the input is not an e-mail or is over one of `limits`."""
    data = _checked_bytes(raw, limits)
    start = _message_start(data)
    reason = _why_not_an_email(data, start)
    if reason is not None:
        raise MailError(f"not an e-mail: {reason}")
    root = _parse_structure(data[start:] if start else data, limits)
    return _record(root, len(data), limits, {field.strip().lower() for field in header_fields})


def _checked_bytes(raw: bytes | str, limits: MailLimits) -> bytes:
    """`raw` as bytes, refused if over `limits.max_bytes` (a huge str is refused before encoding)."""
    if isinstance(raw, str):
        if len(raw) > limits.max_bytes:
            raise MailError(
                f"message is at least {len(raw):,} bytes, over the {limits.max_bytes:,}-byte limit "
                f"({params_key('max_bytes')})"
            )
        try:
            data = raw.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # surrogates that no bytes decoded to
            data = raw.encode("utf-8", "replace")
    else:
        data = bytes(raw)
    if len(data) > limits.max_bytes:
        raise MailError(
            f"message is {len(data):,} bytes, over the {limits.max_bytes:,}-byte limit ({params_key('max_bytes')})"
        )
    return data


def _message_start(data: bytes) -> int:
    """Where the message starts in `data`: after a byte-order mark and blank lines."""
    leading = _LEADING_JUNK.match(data)
    return leading.end() if leading else 0


def _why_not_an_email(data: bytes, start: int) -> str | None:
    """Why the message at `data[start:]` is not an e-mail, or None if it looks like one. Reads no more
    than the header block (at most 64 KiB of it) and copies nothing."""
    if start >= len(data) or data.isspace():
        return "the input is empty"
    if data.startswith(b"From ", start):  # an mbox separator line before the header block
        line_end = data.find(b"\n", start)
        start = len(data) if line_end == -1 else line_end + 1
    limit = min(len(data), start + _HEADER_SCAN_BYTES)
    # The first empty line ends the block; str.find, because a regex would try every position.
    ends = [data.find(b"\n\n", start, limit), data.find(b"\n\r\n", start, limit)]
    end = min((found for found in ends if found != -1), default=limit)
    first = _FIELD.match(data, start, end)
    if first is None:
        return "no header block (the first line is not a header field)"
    if data.find(b"\x00", start, end) != -1:
        return "the header block holds binary data (NUL bytes)"
    if first[1].lower() in _MESSAGE_FIELDS:
        return None
    for field in _FIELD_AT_LINE_START.finditer(data, first.end(), end):
        if field[1].lower() in _MESSAGE_FIELDS:
            return None
    return "no e-mail header field in the header block (From, To, Subject, Date, Message-ID, Received, ...)"


class _RawHeaders(Compat32):
    """compat32 handing out header values as received (folded, 8-bit bytes as surrogate escapes): this
    module decodes them itself, once, instead of compat32's Header objects for 8-bit values. The one
    exception: Content-Transfer-Encoding comes stripped, so that "base64 " is decoded as base64."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value.strip() if name.lower() == "content-transfer-encoding" else value


_POLICY = _RawHeaders()


class _PartBudget:
    """Counts the parts of one message as the parser creates them, and refuses one over the limits."""

    def __init__(self, limits: MailLimits) -> None:
        self.limits = limits
        self.parts = 1  # the message itself

    def admit(self, depth: int) -> None:
        self.parts += 1
        if depth > self.limits.max_depth:
            raise MailError(
                f"message nests MIME parts {depth} deep, over the limit of {self.limits.max_depth} "
                f"({params_key('max_depth')})"
            )
        if self.parts > self.limits.max_parts:
            raise MailError(
                f"message has more than {self.limits.max_parts:,} MIME parts, over the limit of "
                f"{self.limits.max_parts:,} ({params_key('max_parts')})"
            )


class _Part(Message):
    """A message part that knows its nesting depth. The feed parser attaches every new part to its
    parent before reading the part's content, so checking the limits in `attach` refuses a too-deep or
    too-many-parts message while it is being read."""

    def __init__(self, budget: _PartBudget) -> None:
        super().__init__(_POLICY)
        self.depth = 0
        self._budget = budget

    def attach(self, payload: Message | str) -> None:
        if isinstance(payload, _Part):
            payload.depth = self.depth + 1
            self._budget.admit(payload.depth)
        super().attach(payload)


def _parse_structure(message: bytes, limits: MailLimits) -> _Part:
    """The MIME tree of `message`, refused (MailError) as soon as it goes over the part or depth limit."""
    budget = _PartBudget(limits)
    parser = BytesFeedParser(lambda: _Part(budget), policy=_POLICY)
    # Fed in chunks: the parser splits all it is fed into lines before parsing any, so a message over a
    # limit is refused after its first chunk rather than after being split whole.
    for offset in range(0, len(message), _FEED_BYTES):
        parser.feed(message[offset : offset + _FEED_BYTES])
    return cast(_Part, parser.close())  # typeshed ties the factory's type to the policy's (Message)


class _Headers:
    """The top-level header fields, each unfolded and decoded at most once (its defects counted once)."""

    def __init__(self, root: _Part) -> None:
        self.fields = [(name.strip().lower(), value) for name, value in root.items()]
        self._indexes: dict[str, list[int]] = {}
        for index, (name, _) in enumerate(self.fields):
            self._indexes.setdefault(name, []).append(index)
        self._root = root
        self._unfolded: dict[int, str] = {}
        self._decoded: dict[int, str] = {}
        self.defects = 0

    def indexes(self, name: str) -> list[int]:
        """Where the fields called `name` (lower-case) are, in message order."""
        return self._indexes.get(name, [])

    def unfolded(self, index: int) -> str:
        """Field `index` unfolded, 8-bit bytes decoded, encoded words kept (addresses are split first)."""
        if index not in self._unfolded:
            raw = self.fields[index][1]
            # 8-bit bytes in a header that is not UTF-8 are read in the message's charset, if it has one.
            fallback_charset = None if raw.isascii() else self._root.get_content_charset()
            text, defects = unfold(raw, fallback_charset)
            self._unfolded[index] = text
            self.defects += defects
        return self._unfolded[index]

    def decoded(self, index: int) -> str:
        """Field `index` as display text: encoded words decoded, whitespace collapsed."""
        if index not in self._decoded:
            text, defects = decode_encoded_words(self.unfolded(index))
            self._decoded[index] = collapse_whitespace(text)
            self.defects += defects
        return self._decoded[index]

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """(display name, lower-cased addr-spec) of every address in every `name` field."""
        return [
            (display, address.lower())
            for index in self.indexes(name)
            for display, address in parse_addresses(self.unfolded(index))
        ]


@dataclass
class _Body:
    """What the walk over the parts collects."""

    texts: list[str]
    urls: list[str]
    attachments: list[Attachment]
    mime_types: list[str]
    charsets: list[str]
    html_chars: int = 0
    plain_chars: int = 0
    decoded_bytes: int = 0
    defects: int = 0
    depth: int = 0


def _record(root: _Part, size: int, limits: MailLimits, header_fields: set[str]) -> MailRecord:
    headers = _Headers(root)
    senders = headers.addresses("from")
    sender_name, sender_address = senders[0] if senders else ("", "")
    sender_domain = address_domain(sender_address)
    reply_tos = [address for _, address in headers.addresses("reply-to") if address]
    reply_to_domain = address_domain(reply_tos[0]) if reply_tos else ""
    subjects = headers.indexes("subject")
    subject = headers.decoded(subjects[0]) if subjects else ""
    to_count = sum(1 for _, address in headers.addresses("to") if address)
    cc_count = sum(1 for _, address in headers.addresses("cc") if address)
    selected = tuple(
        (name, headers.decoded(index)) for index, (name, _) in enumerate(headers.fields) if name in header_fields
    )
    body, parts = _walk(root, limits)
    text_chars = body.html_chars + body.plain_chars
    urls = unique(body.urls)
    return MailRecord(
        size=size,
        sender_name=collapse_whitespace(sender_name),
        sender_address=sender_address,
        sender_domain=sender_domain,
        reply_to_domain=reply_to_domain,
        reply_to_mismatch=bool(reply_to_domain) and reply_to_domain != sender_domain,
        subject=subject,
        to_count=to_count,
        cc_count=cc_count,
        body_text="\n".join(text for text in body.texts if text),
        html_share=body.html_chars / text_chars if text_chars else 0.0,
        urls=urls,
        url_domains=unique(url_domain(url) for url in urls),
        attachments=tuple(body.attachments),
        mime_types=tuple(body.mime_types),
        mime_depth=body.depth,
        charsets=unique(body.charsets),
        # Counted last: decoding a part adds its encoding defects to the part.
        defects=headers.defects + body.defects + (0 if senders else 1) + sum(len(part.defects) for part in parts),
        headers=selected,
    )


def _walk(root: _Part, limits: MailLimits) -> tuple[_Body, list[_Part]]:
    """Every part in MIME order (depth first, without recursion), its content read within the limits."""
    body = _Body(texts=[], urls=[], attachments=[], mime_types=[], charsets=[])
    parts: list[_Part] = []
    pending = [root]
    while pending:
        part = pending.pop()
        parts.append(part)
        body.depth = max(body.depth, part.depth)
        content_type = _content_type(part)
        body.mime_types.append(content_type)
        if part.is_multipart():  # multipart/* and message/*: the parts inside, in order
            children = part.get_payload()
            if isinstance(children, list):
                pending.extend(child for child in reversed(children) if isinstance(child, _Part))
            continue
        _read_leaf(part, content_type, limits, body)
    return body, parts


def _read_leaf(part: _Part, content_type: str, limits: MailLimits, body: _Body) -> None:
    """Add one leaf part to `body`: as text if it is body text, else as an attachment (never decoded)."""
    encoding = str(part.get("content-transfer-encoding", "")).lower()
    if encoding not in KNOWN_TRANSFER_ENCODINGS:
        body.defects += 1
    # The bytes as received (the parser keeps 8-bit bytes as surrogate escapes), or for an encoding
    # that would have to be undone, the encoded text, whose length bounds the decoded size.
    received = part.get_payload(decode=True) if encoding not in ENCODINGS_TO_UNDO else None
    size = len(received) if isinstance(received, bytes) else decoded_size(str(part.get_payload()), encoding)
    body.decoded_bytes += size
    if body.decoded_bytes > limits.max_decoded_bytes:
        raise MailError(
            f"message's parts decode to at least {body.decoded_bytes:,} bytes, over the "
            f"{limits.max_decoded_bytes:,}-byte limit ({params_key('max_decoded_bytes')})"
        )
    name = _file_name(part)
    is_body = content_type in _BODY_TYPES or content_type.startswith("multipart/")  # multipart: no boundary
    if not is_body or name or part.get_content_disposition() == "attachment":
        body.attachments.append(Attachment(name, content_type, size))
        return
    if isinstance(received, bytes):
        data = received
    elif encoding == "base64":  # repaired here: the email package gives up on a stray last character
        data, repaired = decode_base64(str(part.get_payload()))
        body.defects += repaired
    else:  # quoted-printable, uuencode: the email package decodes leniently, counting defects on the part
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset()
    is_html = content_type == "text/html"
    if is_html and charset is None:
        declared = _META_CHARSET.search(data, 0, _META_SCAN_BYTES)
        charset = declared[1].decode("ascii") if declared else None
    decoded = decode_text(data, charset)
    body.charsets.append(decoded.charset)
    body.defects += decoded.defects
    if is_html:
        html = decoded.text
        if len(html) > limits.max_html_chars:
            html = html[: limits.max_html_chars]
            body.defects += 1
        converted = html_to_text(html)
        text = converted.text
        body.html_chars += len(text)
        body.urls.extend(url for url in map(web_link, converted.links) if url)
    else:
        text = decoded.text
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        body.plain_chars += len(text)
    body.urls.extend(urls_in_text(text))
    body.texts.append(text)


def _content_type(part: _Part) -> str:
    """The part's content type, lower-cased; text/plain (the RFC 2045 default) if it is unreadable."""
    match = _MIME_TYPE.match(part.get_content_type())
    return match.group() if match else "text/plain"


def _file_name(part: _Part) -> str:
    """The part's file name (Content-Disposition filename, else Content-Type name; RFC 2231 and RFC 2047
    decoded), "" if it has none."""
    if part.get("content-disposition") is None and "name" not in part.get("content-type", "").lower():
        return ""  # neither header can name a file: skip the parameter parsing (most body parts)
    name = part.get_filename()
    if not name:
        return ""
    if not name.isascii():  # 8-bit bytes kept as surrogate escapes, or text from an RFC 2231 charset
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return collapse_whitespace(decode_encoded_words(name)[0])
