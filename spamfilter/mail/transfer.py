"""Transfer encodings: which ones there are, RFC 2047 B and Q words undone leniently, and the decoded
size of a part estimated without decoding it.

Bodies are decoded by the email package (`Message.get_payload(decode=True)`, lenient, its repairs
recorded as the part's defects); encoded words in headers are decoded here. Nothing here raises.
"""

from __future__ import annotations

import binascii
import re

KNOWN_TRANSFER_ENCODINGS = frozenset(
    {"", "7bit", "8bit", "binary", "quoted-printable", "base64", "x-uuencode", "uuencode", "uue", "x-uue"}
)
# The encodings whose decoding is work (and which a part's size must be estimated for, not read).
ENCODINGS_TO_UNDO = frozenset({"quoted-printable", "base64", "x-uuencode", "uuencode", "uue", "x-uue"})
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")


def decoded_size(encoded: str, encoding: str) -> int:
    """Decoded size of an encoded payload from its length, without decoding: within two bytes for
    base64, an upper bound for quoted-printable and uuencode."""
    if encoding == "base64":
        ignored = sum(encoded.count(character) for character in "\n\r \t=")
        return (len(encoded) - ignored) * 3 // 4
    return len(encoded)


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
    return binascii.a2b_qp(text.encode("utf-8", "surrogateescape"), header=True)
