"""Header values as text: unfolding, raw 8-bit bytes, RFC 2047 encoded words, and address lists.

The parser keeps header values as received (folded, 8-bit bytes as surrogate escapes); these functions
turn them into text. They are written here rather than taken from `email.header`/`email.utils` because
those, measured on this corpus and on crafted input, are the slow or fragile part of parsing:
`email.utils.getaddresses` takes ~45 µs an address and raises RecursionError on a From of 1,000 nested
"(", `email.header.decode_header` raises on a bad charset and backtracks quadratically on a long run of
"=?", and the `policy.default` header classes take ~1.1 ms for five fields and raise on some of the
corpus's headers. Here every function is linear in its input and never raises.
"""

from __future__ import annotations

import re

from spamfilter.mail.charsets import clean_label, decode_text
from spamfilter.mail.transfer import decode_base64, decode_q_word

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# An RFC 2047 encoded word. The text may not contain "?", so a failed match never scans past the next
# "?": linear on any input, unlike a lazy `.*?`.
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)
# Tokens of an address list (RFC 5322 3.4, leniently). An unterminated quoted string or comment runs to
# the end of the value; a comment ends at its first "(" or ")", so nesting costs no recursion.
_ADDRESS_TOKEN = re.compile(
    r"""
      (?P<quoted>"(?:[^"\\]|\\.)*+"?)
    | (?P<comment>\((?:[^()\\]|\\.)*+\)?)
    | (?P<angle><[^<>]*+>?)
    | (?P<separator>[,;:])
    | (?P<word>[^\s"(<,;:]+)
    | \s+
    """,
    re.X | re.S,
)


def unfold(raw_value: str, fallback_charset: str | None = None) -> tuple[str, int]:
    """A raw header value as text, and its defects: line breaks of folding removed, 8-bit bytes decoded
    (UTF-8, else the message's charset, else detected; anything but UTF-8 is a defect). Encoded words
    stay: an address list must be split before its display names are decoded."""
    value = _LINE_BREAK.sub("", raw_value) if "\n" in raw_value or "\r" in raw_value else raw_value
    if value.isascii():
        return value, 0
    data = value.encode("utf-8", "surrogateescape")  # the parser keeps 8-bit bytes as surrogate escapes
    try:
        return data.decode("utf-8"), 0
    except UnicodeDecodeError:
        return decode_text(data, fallback_charset).text, 1


def collapse_whitespace(text: str) -> str:
    """`text` with each run of whitespace as one space, stripped."""
    return " ".join(text.split())


def decode_encoded_words(value: str) -> tuple[str, int]:
    """`value` with its RFC 2047 encoded words decoded, and the defects found. Whitespace between two
    encoded words is dropped (RFC 2047 6.2); adjacent words in one charset are decoded together, so a
    character split across two words survives."""
    if "=?" not in value:
        return value, 0
    pieces: list[str] = []
    pending = bytearray()
    pending_charset = ""
    defects = 0
    position = 0

    def flush() -> None:
        nonlocal defects
        if pending:
            decoded = decode_text(bytes(pending), pending_charset)
            pieces.append(decoded.text)
            defects += decoded.defects
            pending.clear()

    for match in _ENCODED_WORD.finditer(value):
        gap = value[position : match.start()]
        if gap and not (pending and gap.isspace()):
            flush()
            pieces.append(gap)
        charset = clean_label(match[1])
        data, word_defects = _encoded_word_bytes(match[2], match[3])
        defects += word_defects
        if pending and charset != pending_charset:
            flush()
        pending += data
        pending_charset = charset
        position = match.end()
    flush()
    pieces.append(value[position:])
    return "".join(pieces), defects


def _encoded_word_bytes(encoding: str, text: str) -> tuple[bytes, int]:
    """The bytes of an encoded word's text (B: base64, Q: quoted-printable with "_" for space) and the
    defects found."""
    if encoding in "qQ":
        return decode_q_word(text), 0
    return decode_base64(text)


def parse_addresses(value: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) pairs of an unfolded address-list header, leniently: `Name <a@b>`,
    `"Doe, J." <a@b>`, `a@b (Name)`, bare `a@b`, groups (`team: a@b, c@d;`, the group name dropped).
    Display names are unquoted and RFC 2047-decoded; an entry with neither name nor address is left
    out, and a name without an address ("undisclosed recipients") has addr-spec ""."""
    addresses: list[tuple[str, str]] = []
    words: list[tuple[str, bool]] = []  # (text, whether it was a quoted string: a name, never an address)
    comments: list[str] = []
    angle: str | None = None

    def finish() -> None:
        nonlocal angle
        name, address = _mailbox(words, comments, angle)
        if name or address:
            addresses.append((decode_encoded_words(name)[0], address))
        words.clear()
        comments.clear()
        angle = None

    for match in _ADDRESS_TOKEN.finditer(value):
        kind = match.lastgroup
        token = match.group()
        if kind == "word":
            words.append((token, False))
        elif kind == "quoted":
            inner = token[1:-1] if token.endswith('"') and len(token) > 1 else token[1:]
            words.append((_QUOTED_PAIR.sub(r"\1", inner), True))
        elif kind == "comment":
            comments.append(_QUOTED_PAIR.sub(r"\1", token[1:-1] if token.endswith(")") else token[1:]).strip())
        elif kind == "angle":
            if angle is None:
                angle = token[1:-1] if token.endswith(">") else token[1:]
        elif kind == "separator":
            if token == ":" and angle is None:  # a group's name: not a mailbox
                words.clear()
                comments.clear()
            elif token in ",;":
                finish()
    finish()
    return addresses


def _mailbox(words: list[tuple[str, bool]], comments: list[str], angle: str | None) -> tuple[str, str]:
    """(display name, addr-spec) of one address-list entry from its words, comments and angle-addr."""
    texts = [text for text, _ in words]
    if angle is not None:
        address = angle.strip()
        if address.startswith("@") and ":" in address:  # obsolete source route: "@relay,@relay:a@b"
            address = address.partition(":")[2]
        if address[:7].lower() == "mailto:":
            address = address[7:]
        return " ".join(texts or comments).strip(), address.strip()
    with_at = [index for index, (text, quoted) in enumerate(words) if not quoted and "@" in text and text != "@"]
    if len(with_at) == 1:  # a display name without angle brackets: "John Doe john@example.com"
        name = " ".join(texts[: with_at[0]] + texts[with_at[0] + 1 :])
        return (name or " ".join(comments)).strip(), texts[with_at[0]]
    joined = "".join(text for text, quoted in words if not quoted)
    if "@" in joined:  # obsolete spacing ("a @ b"), or words run together
        return " ".join(comments).strip(), joined
    return " ".join(texts or comments).strip(), ""


def address_domain(address: str) -> str:
    """The lower-cased domain of an addr-spec ("" if it has none), without a trailing dot or the
    brackets of an address literal."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return ""
    return domain.strip().strip("[]").rstrip(".").lower()
