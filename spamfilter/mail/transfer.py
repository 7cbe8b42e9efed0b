"""Transfer encodings undone leniently: base64, quoted-printable and uuencode bodies, RFC 2047 B and Q
words, and the decoded size of a part estimated without decoding it.

Payloads arrive as the parser keeps them: str, with 8-bit bytes as surrogate escapes. Broken encodings
(missing padding, stray characters, truncated uuencode lines) are repaired where the intent is clear
and reported as defects; nothing here raises.
"""

from __future__ import annotations

import binascii
import re

KNOWN_TRANSFER_ENCODINGS = frozenset(
    {"", "7bit", "8bit", "binary", "quoted-printable", "base64", "x-uuencode", "uuencode", "uue", "x-uue"}
)
_UUENCODE = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")


def payload_bytes(payload: str) -> bytes:
    """A payload as the bytes it was received as."""
    return payload.encode("utf-8", "surrogateescape")


def decoded_size(payload: str, encoding: str) -> int:
    """Decoded size of a payload from its encoded length, without decoding: exact for 7bit, 8bit and
    binary, within two bytes for base64, an upper bound for quoted-printable and uuencode."""
    if encoding == "base64":
        ignored = sum(payload.count(character) for character in "\n\r \t=")
        return (len(payload) - ignored) * 3 // 4
    return len(payload)


def decode_payload(payload: str, encoding: str) -> tuple[bytes, int]:
    """The bytes a payload encodes under its Content-Transfer-Encoding (lower-cased, stripped), and the
    defects found in the encoding; an unknown encoding leaves the bytes as they are."""
    if encoding == "base64":
        return decode_base64(payload)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(payload_bytes(payload)), 0
    if encoding in _UUENCODE:
        return _decode_uuencode(payload_bytes(payload))
    return payload_bytes(payload), 0


def decode_base64(text: str) -> tuple[bytes, int]:
    """Base64 text as bytes, and 1 defect if it needed repair (bad padding, a stray final character).
    Characters outside the alphabet (line breaks, junk) are skipped; decoding stops at padding."""
    try:
        return binascii.a2b_base64(text.encode("ascii", "ignore")), 0
    except binascii.Error:  # bad padding, or one character too many to mean anything
        alphabet = _NOT_BASE64.sub("", text.partition("=")[0])
        alphabet = alphabet[: len(alphabet) - (len(alphabet) % 4 == 1)]
        return binascii.a2b_base64(alphabet + "=" * (-len(alphabet) % 4)), 1


def decode_q_word(text: str) -> bytes:
    """The text of an RFC 2047 Q-encoded word as bytes ("_" is a space)."""
    return binascii.a2b_qp(payload_bytes(text), header=True)


def _decode_uuencode(data: bytes) -> tuple[bytes, int]:
    """The bytes of a uuencoded body (between its `begin` and `end` lines), and the defects found."""
    decoded = bytearray()
    defects = 0
    inside = False
    for line in data.splitlines():
        if not inside:
            inside = line.startswith(b"begin ")
            continue
        if line.strip() == b"end":
            break
        try:
            decoded += binascii.a2b_uu(line)
        except binascii.Error:
            # Some encoders pad lines past their length byte: decode only what it announces.
            announced = (((line[0] - 32) & 63) * 4 + 5) // 3 if line else 0
            try:
                decoded += binascii.a2b_uu(line[:announced])
            except binascii.Error:
                defects += 1
    return bytes(decoded), defects + (0 if inside else 1)
