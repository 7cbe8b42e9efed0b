"""Bytes to text for e-mail: the declared charset, else a detected one, else latin-1 — never an exception.

Mail declares charsets wrongly all the time: `us-ascii` over 8-bit text, `iso-8859-1` over Windows
quotes, names Python does not know (`unknown-8bit`, `x-user-defined`, `default_charset`), and parts that
break off half-way. The rules, in order:

1. ASCII bytes are ASCII, whatever the label says (the common case, and the fastest).
2. A declared charset Python knows decodes the part, read the way browsers read it (WHATWG): the
   `iso-8859-1` label as windows-1252, `gb2312` as gb18030, `ks_c_5601-1987`/`euc-kr` as
   cp949, and so on. If a few bytes fail (at most 1%), they become U+FFFD and the label stands.
3. Otherwise (no label, an unknown label, 8-bit bytes under an ASCII label, or a label that fails on more
   than 1% of the bytes): UTF-8 if the bytes are valid UTF-8, else what `charset-normalizer` detects among
   the charsets mail uses, else latin-1, which decodes any byte.

Each fallback is counted as a defect: a wrong or missing label is itself a signal. Codecs that are not
character sets (punycode, idna, unicode-escape, ...) are refused as labels: they cost time or mean
nothing here.
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass

# Labels read the way browsers read them (WHATWG Encoding Standard), where that differs from Python.
_WHATWG_CODECS = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso8859-9": "cp1254",
    "latin5": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "chinese": "gb18030",
    "csgb2312": "gb18030",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601-1989": "cp949",
    "ks_c_5601": "cp949",
    "korean": "cp949",
    "csksc56011987": "cp949",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
}
# Codecs Python accepts as text encodings that are not character sets of mail.
_REFUSED_CODECS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem"})
# Where charset-normalizer may look: the charsets mail is written in. Left free, it reads a short Latin-1
# word as UTF-16 or a KOI8-R sentence as Shift-JIS.
_DETECTABLE = (
    "utf_8",
    "cp1252",
    "iso8859_15",
    "cp1250",
    "iso8859_2",
    "cp1251",
    "koi8_r",
    "koi8_u",
    "cp1253",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "big5",
    "gb18030",
    "cp949",
    "cp932",
    "euc_jp",
    "iso2022_jp",
    "cp874",
)
_DETECT_BYTES = 65_536  # detection reads this much; the whole part is then decoded with its verdict
_MAX_BAD_SHARE = 0.01  # a declared charset may fail on this share of the bytes and still stand
_SURROGATE = re.compile("[\ud800-\udfff]")  # UTF-7 can decode to lone surrogates, which UTF-8 cannot encode


@dataclass(frozen=True, slots=True)
class DecodedText:
    """Text decoded from bytes: the charset that was used (a declared label as written, lower-cased, or
    the codec name of a detected one) and how many defects the decoding counted."""

    text: str
    charset: str
    defects: int


def clean_label(label: str | None) -> str:
    """A charset label as a lookup key: lower-cased, without quotes, spaces or an RFC 2231 language."""
    if not label:
        return ""
    return label.strip().strip("\"'").partition("*")[0].strip().lower()


@functools.lru_cache(maxsize=512)
def codec_for(label: str) -> str | None:
    """The Python codec that decodes text under `label` (a clean label), or None if there is none."""
    if not label:
        return None
    name = _WHATWG_CODECS.get(label, label)
    try:
        codec = codecs.lookup(name).name
        b"a".decode(codec, "replace")  # LookupError for codecs that are not text encodings (base64, zlib, ...)
    except (LookupError, ValueError):  # ValueError: a label with characters lookup rejects (NUL)
        return None
    except UnicodeError:  # the "undefined" codec refuses everything
        return None
    return None if codec in _REFUSED_CODECS else codec


def decode_text(data: bytes, declared: str | None) -> DecodedText:
    """Decode `data` under the `declared` charset label (None or "" if there is none), following the
    module's rules. Never raises."""
    label = clean_label(declared)
    codec = codec_for(label)
    unknown_label = 1 if label and codec is None else 0
    if data.isascii():
        return DecodedText(data.decode("ascii"), label if codec else "us-ascii", unknown_label)
    if codec is not None and codec != "ascii":  # 8-bit bytes under an ASCII label: the label is wrong
        try:
            return DecodedText(_no_surrogates(data.decode(codec), codec), label, 0)
        except UnicodeDecodeError:
            text = data.decode(codec, "replace")
            if text.count("\ufffd") <= _MAX_BAD_SHARE * len(data):
                return DecodedText(_no_surrogates(text, codec), label, 1)
    # No usable label: a defect whether the label was missing, unknown, ASCII over 8-bit bytes, or wrong.
    try:
        return DecodedText(data.decode("utf-8"), "utf-8", 1)
    except UnicodeDecodeError:
        pass
    detected = _detect(data)
    if detected is not None:
        return DecodedText(data.decode(detected, "replace"), detected, 1)
    return DecodedText(data.decode("latin-1"), "iso-8859-1", 1)


def _detect(data: bytes) -> str | None:
    """The codec name charset-normalizer finds for `data` among the mail charsets, or None."""
    # Imported here: only parts without a usable label need it, and it takes ~0.1 s to import.
    from charset_normalizer import from_bytes

    best = from_bytes(data[:_DETECT_BYTES], cp_isolation=list(_DETECTABLE)).best()
    if best is None:
        return None
    return codec_for(best.encoding)


def _no_surrogates(text: str, codec: str) -> str:
    """`text` with lone surrogates as U+FFFD, so that it encodes as UTF-8; only UTF-7 produces them."""
    return _SURROGATE.sub("\ufffd", text) if codec == "utf-7" else text
