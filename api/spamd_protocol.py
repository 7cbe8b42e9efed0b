"""The spamd wire protocol as pure functions: parse SPAMC/1.x requests, build SPAMD/1.x answers, map a model's
P(spam) to a SpamAssassin-style score. No sockets here; `api.spamd` does the I/O.

The protocol (SpamAssassin's `spamd/PROTOCOL`, and what `spamd` and `libspamc` actually send and parse):

    request:   <COMMAND> SPAMC/<major>.<minor>\\r\\n     (CHECK SYMBOLS REPORT REPORT_IFSPAM PROCESS HEADERS PING SKIP TELL)
               <Name>: <value>\\r\\n ...                 (Content-length, User, Compress, Message-class, Set, Remove)
               \\r\\n
               <message bytes>                          (Content-length of them, or until the client closes its side)
    response:  SPAMD/1.1 0 EX_OK\\r\\n
               Content-length: <n>\\r\\n                 (when a body follows)
               Spam: True ; 7.5 / 5.0\\r\\n
               \\r\\n
               <body>                                    (PROCESS: the message; HEADERS: its header block;
                                                          SYMBOLS: rule names; REPORT: a report; CHECK: none)

An error is one status line, `SPAMD/1.1 <code> <name> <detail>\\r\\n`, and the connection closes (as spamd does; spamc
does not read the code, it sees the closed connection and falls back to passing the mail through unfiltered).
Codes are spamd's sysexits table (`Status`); 98 EX_TOOBIG is a spamc exit code only, never a spamd answer.

The score. A model gives P(spam) `p` and its decision threshold `t`; SpamAssassin clients expect a score compared
with `required_score` R (5.0 by default). The published score is

    score = R + logit(p') - logit(t'),   logit(x) = ln(x / (1 - x)),   p', t' = clamped into [1e-6, 1 - 1e-6]

rounded to one decimal (the precision spamd sends), then held on the right side of R: a spam verdict (p >= t) never
shows less than R, a ham verdict never more than R - 0.1. So `score >= R` exactly when `p >= t`, for the number the
client parses as well as for the exact one, and the score never decreases as p grows. One point is one unit of
log-odds: e (2.7) times the odds of spam, a scale close to SpamAssassin's own (the clamp bounds it to about ±13.8).
With R = 5.0:

    t = 0.5:  p     0.001  0.01  0.05  0.2   0.4   0.5   0.6   0.8   0.95  0.99  0.999  1.0
              score -1.9   0.4   2.1   3.6   4.6   5.0   5.4   6.4   7.9   9.6   11.9   18.8
    t = 0.3:  p     0.29 -> 4.9 (4.95 rounds to 5.0; held below R because it is ham)   0.3 -> 5.0   0.5 -> 5.8

SYMBOLS names `SPAMFILTER_EMAIL` (scored by this model) and one probability band, on the boundaries of
SpamAssassin's BAYES_xx rules so a mail administrator reads them the same way: SPAMFILTER_P00 (p < 1%), P05 (1-5%),
P20 (5-20%), P40 (20-40%), P50 (40-60%), P60 (60-80%), P80 (80-95%), P95 (95-99%), P99 (99-99.9%), P999 (>= 99.9%).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum, StrEnum
from typing import Literal

from spamfilter.errors import SpamfilterError

RESPONSE_VERSION = "1.1"  # what spamd puts on its answers to SPAMC/1.2 and later
PONG_VERSION = "1.5"
MAX_HEADERS = 255  # spamd's guard against a header flood
PROBABILITY_CLAMP = 1e-6

TellLabel = Literal["spam", "ham", "forget"]


class Status(IntEnum):
    """spamd's response codes (sysexits.h plus EX_TIMEOUT)."""

    EX_OK = 0
    EX_USAGE = 64
    EX_DATAERR = 65
    EX_NOINPUT = 66
    EX_NOUSER = 67
    EX_NOHOST = 68
    EX_UNAVAILABLE = 69
    EX_SOFTWARE = 70
    EX_OSERR = 71
    EX_OSFILE = 72
    EX_CANTCREAT = 73
    EX_IOERR = 74
    EX_TEMPFAIL = 75
    EX_PROTOCOL = 76
    EX_NOPERM = 77
    EX_CONFIG = 78
    EX_TIMEOUT = 79


class Command(StrEnum):
    CHECK = "CHECK"
    SYMBOLS = "SYMBOLS"
    REPORT = "REPORT"
    REPORT_IFSPAM = "REPORT_IFSPAM"
    PROCESS = "PROCESS"
    HEADERS = "HEADERS"
    PING = "PING"
    SKIP = "SKIP"
    TELL = "TELL"


ProtocolVersion = tuple[int, int]


class RequestError(SpamfilterError):
    """A request the server refuses; `status` is the code its answer carries."""

    def __init__(self, status: Status, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class InvalidVerdictError(SpamfilterError, ValueError):
    """A scorer returned a verdict whose numbers cannot be probabilities."""


@dataclass(frozen=True)
class EmailVerdict:
    """What a scorer says about one raw message.

    `is_spam` follows from `p_spam` and the model's `threshold` rather than being stored beside them, so the
    published score (which needs the threshold) can never contradict the verdict.
    """

    p_spam: float
    threshold: float
    model_version: str
    summary: str = ""

    def __post_init__(self) -> None:
        for name, value in (("p_spam", self.p_spam), ("threshold", self.threshold)):
            if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise InvalidVerdictError(f"EmailVerdict.{name} must be a probability in [0, 1], got {value!r}")

    @property
    def is_spam(self) -> bool:
        return self.p_spam >= self.threshold


@dataclass(frozen=True)
class RequestHeaders:
    """The request headers spamd understands; any others are ignored, as the protocol asks."""

    content_length: int | None = None
    user: str | None = None
    compress: bool = False
    message_class: Literal["spam", "ham"] | None = None
    set_local: bool = False
    set_remote: bool = False
    remove_local: bool = False
    remove_remote: bool = False


@dataclass(frozen=True)
class TellRequest:
    """What a TELL asks: learn the message as spam or ham (`Set: local`), forget it (`Remove: local`).

    Remote reporting (`Set: remote`, `Remove: remote`, spamc -C) has no counterpart here; it is answered without a
    `DidSet: remote`, which spamc reports as "Unable to report/revoke message".
    """

    learn: Literal["spam", "ham"] | None
    forget: bool


@dataclass(frozen=True)
class ScoredMessage:
    verdict: EmailVerdict
    score: float
    required_score: float

    @property
    def symbols(self) -> list[str]:
        return symbols(self.verdict)


# --- the score --------------------------------------------------------------------------------------------------


def _logit(probability: float) -> float:
    clamped = min(max(probability, PROBABILITY_CLAMP), 1.0 - PROBABILITY_CLAMP)
    return math.log(clamped / (1.0 - clamped))


def spam_score(p_spam: float, threshold: float, required_score: float) -> float:
    """The SpamAssassin-style score of P(spam) (see the module docstring): one decimal, >= R exactly when p >= t."""
    raw = required_score + _logit(p_spam) - _logit(threshold)
    rounded = round(raw, 1)
    held = max(rounded, required_score) if p_spam >= threshold else min(rounded, round(required_score - 0.1, 1))
    return held + 0.0  # no "-0.0" on the wire


BANDS: tuple[tuple[float, str, str], ...] = (
    # (lower bound of P(spam), symbol, description); each band runs to the next one's lower bound
    (0.0, "SPAMFILTER_P00", "Spam probability is 0 to 1%"),
    (0.01, "SPAMFILTER_P05", "Spam probability is 1 to 5%"),
    (0.05, "SPAMFILTER_P20", "Spam probability is 5 to 20%"),
    (0.20, "SPAMFILTER_P40", "Spam probability is 20 to 40%"),
    (0.40, "SPAMFILTER_P50", "Spam probability is 40 to 60%"),
    (0.60, "SPAMFILTER_P60", "Spam probability is 60 to 80%"),
    (0.80, "SPAMFILTER_P80", "Spam probability is 80 to 95%"),
    (0.95, "SPAMFILTER_P95", "Spam probability is 95 to 99%"),
    (0.99, "SPAMFILTER_P99", "Spam probability is 99 to 99.9%"),
    (0.999, "SPAMFILTER_P999", "Spam probability is 99.9 to 100%"),
)
MODEL_SYMBOL = "SPAMFILTER_EMAIL"


def probability_band(p_spam: float) -> tuple[str, str]:
    """The (symbol, description) of the band holding `p_spam`."""
    chosen = BANDS[0]
    for band in BANDS:
        if p_spam >= band[0]:
            chosen = band
    return chosen[1], chosen[2]


def symbols(verdict: EmailVerdict) -> list[str]:
    """The rule names SYMBOLS returns, sorted as spamd sorts them."""
    return sorted([MODEL_SYMBOL, probability_band(verdict.p_spam)[0]])


def score_message(verdict: EmailVerdict, required_score: float) -> ScoredMessage:
    return ScoredMessage(verdict, spam_score(verdict.p_spam, verdict.threshold, required_score), required_score)


# --- parsing requests -------------------------------------------------------------------------------------------

_REQUEST_LINE = re.compile(rb"([A-Z_]+) SPAMC/(\d{1,3})\.(\d{1,3})")
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def printable(text: bytes | str, limit: int = 80) -> str:
    """Client bytes made safe to echo in a status line or a log: printable ASCII, bounded."""
    decoded = text.decode("latin-1") if isinstance(text, bytes) else text
    shown = _PRINTABLE.sub("?", decoded)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def parse_request_line(line: bytes) -> tuple[Command, ProtocolVersion]:
    """`CHECK SPAMC/1.5\\r\\n` -> (Command.CHECK, (1, 5)); anything else is EX_PROTOCOL."""
    text = _strip_eol(line)
    match = _REQUEST_LINE.fullmatch(text)
    if match is None:
        raise RequestError(Status.EX_PROTOCOL, f"bad request line {printable(text)!r}")
    verb = match.group(1).decode("ascii")
    if verb not in Command.__members__:
        raise RequestError(Status.EX_PROTOCOL, f"unknown command {printable(verb)!r}")
    return Command(verb), (int(match.group(2)), int(match.group(3)))


def is_blank_line(line: bytes) -> bool:
    return line in (b"\r\n", b"\n")


def _flags(value: str) -> tuple[bool, bool]:
    """`Set:`/`Remove:` values: 'local', 'remote' or both, comma-separated (spamd matches the words anywhere)."""
    words = {word for word in re.split(r"[\s,]+", value.lower()) if word}
    return "local" in words, "remote" in words


def parse_headers(lines: Sequence[bytes]) -> RequestHeaders:
    """The header lines of a request (without the blank line that ends them)."""
    if len(lines) > MAX_HEADERS:
        raise RequestError(Status.EX_PROTOCOL, f"too many headers (more than {MAX_HEADERS})")
    headers = RequestHeaders()
    for raw in lines:
        line = _strip_eol(raw)
        name_bytes, colon, value_bytes = line.partition(b":")
        name = name_bytes.decode("latin-1").strip()
        if not colon or not name or " " in name:
            raise RequestError(Status.EX_PROTOCOL, f"header not in 'Name: value' format: {printable(line)!r}")
        headers = _with_header(headers, name.lower(), value_bytes.decode("latin-1").strip())
    return headers


_MESSAGE_CLASSES: dict[str, Literal["spam", "ham"]] = {"spam": "spam", "ham": "ham"}


def _with_header(headers: RequestHeaders, key: str, value: str) -> RequestHeaders:
    if key == "content-length":
        if not value.isascii() or not value.isdigit() or len(value) > 15:
            raise RequestError(Status.EX_PROTOCOL, f"Content-length is not a byte count: {printable(value)!r}")
        length = int(value)
        if headers.content_length not in (None, length):
            raise RequestError(Status.EX_PROTOCOL, "two Content-length headers with different values")
        return replace(headers, content_length=length)
    if key == "user":
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
            raise RequestError(Status.EX_PROTOCOL, "User header contains control characters")
        return replace(headers, user=value)
    if key == "compress":
        if value.lower() != "zlib":
            raise RequestError(Status.EX_PROTOCOL, f"compression type not supported: {printable(value)!r}")
        return replace(headers, compress=True)
    if key == "message-class":
        message_class = _MESSAGE_CLASSES.get(value.lower())
        if message_class is not None:
            return replace(headers, message_class=message_class)
        raise RequestError(Status.EX_PROTOCOL, f"Message-class must be spam or ham, not {printable(value)!r}")
    if key == "set":
        local, remote = _flags(value)
        return replace(headers, set_local=local, set_remote=remote)
    if key == "remove":
        local, remote = _flags(value)
        return replace(headers, remove_local=local, remove_remote=remote)
    return headers  # as-yet-undefined headers are ignored, as the protocol asks


def tell_request(headers: RequestHeaders) -> TellRequest:
    """What a TELL asks for, refused the way spamd refuses contradictions."""
    if headers.set_local and headers.remove_local:
        raise RequestError(Status.EX_PROTOCOL, "unable to set local and remove local in the same operation")
    if headers.set_remote and headers.remove_remote:
        raise RequestError(Status.EX_PROTOCOL, "unable to set remote and remove remote in the same operation")
    if headers.set_local and headers.message_class is None:
        raise RequestError(Status.EX_PROTOCOL, "Set: local needs a Message-class: spam or ham")
    return TellRequest(learn=headers.message_class if headers.set_local else None, forget=headers.remove_local)


# --- the message: headers added, nothing else touched -----------------------------------------------------------

_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")


def line_ending(message: bytes) -> bytes:
    """The message's own line ending, judged by its first line (LF when it has none)."""
    newline = message.find(b"\n")
    return b"\r\n" if newline > 0 and message[newline - 1 : newline] == b"\r" else b"\n"


def insertion_point(message: bytes) -> int:
    """Where added headers go: the very top, or after an mbox `From ` separator line, which must stay first."""
    if message.startswith(b"From "):
        newline = message.find(b"\n")
        if newline >= 0:
            return newline + 1
    return 0


def _token(text: str) -> str:
    """A model version as one `key=value` token of X-Spam-Status: no spaces, nothing a header cannot carry."""
    return re.sub(r"[^A-Za-z0-9._:@/+-]", "_", text)[:64] or "unknown"


def spam_headers(scored: ScoredMessage) -> list[tuple[str, str]]:
    """X-Spam-Flag (spam only), X-Spam-Status and X-Spam-Score, in SpamAssassin's style."""
    verdict = scored.verdict
    status = (
        f"{'Yes' if verdict.is_spam else 'No'}, score={scored.score:.1f} required={scored.required_score:.1f} "
        f"tests={','.join(scored.symbols)} p_spam={verdict.p_spam:.4f} model={_token(verdict.model_version)}"
    )
    headers = [("X-Spam-Flag", "YES")] if verdict.is_spam else []
    headers += [("X-Spam-Status", status), ("X-Spam-Score", f"{scored.score:.1f}")]
    return headers


def add_headers(message: bytes, headers: Sequence[tuple[str, str]]) -> bytes:
    """The message with `headers` added at the top of its header block, in its own line ending; every other byte as
    it came (line endings, other headers, a missing final newline)."""
    eol = line_ending(message)
    block = b"".join(f"{name}: {value}".encode("ascii") + eol for name, value in headers)
    at = insertion_point(message)
    return message[:at] + block + message[at:]


def header_block(message: bytes) -> bytes:
    """The header block up to and including the blank line that ends it (the whole message when there is none)."""
    end = _END_OF_HEADERS.search(message)
    return message if end is None else message[: end.end()]


# --- building answers -------------------------------------------------------------------------------------------


def status_line(status: Status, detail: str = "") -> bytes:
    text = f"SPAMD/{RESPONSE_VERSION} {int(status)} {status.name}"
    if detail:
        text += f" {printable(detail, limit=300)}"
    return text.encode("ascii") + b"\r\n"


def pong() -> bytes:
    return f"SPAMD/{PONG_VERSION} 0 PONG\r\n".encode("ascii")


def spam_line(scored: ScoredMessage) -> bytes:
    """`Spam: True ; 7.5 / 5.0`. REPORT_IFSPAM gets True/False too: spamd's Yes/No there makes spamc -r drop the
    score line its manual promises, since libspamc only recognises "true"."""
    flag = "True" if scored.verdict.is_spam else "False"
    return f"Spam: {flag} ; {scored.score:.1f} / {scored.required_score:.1f}\r\n".encode("ascii")


def report(scored: ScoredMessage) -> str:
    """A short report in the shape of SpamAssassin's: the verdict, then the rules with their points."""
    verdict = scored.verdict
    band, description = probability_band(verdict.p_spam)
    relation = ">=" if verdict.is_spam else "<"
    lines = [
        f"Spam detection by the spamfilter e-mail model (version {_token(verdict.model_version)}):",
        f"this message is {'spam' if verdict.is_spam else 'not spam'}: "
        f"P(spam) {verdict.p_spam:.4f} {relation} threshold {verdict.threshold:.4f}.",
        "",
        f"Content analysis details:   ({scored.score:.1f} points, {scored.required_score:.1f} required)",
        "",
        " pts rule name              description",
        "---- ---------------------- --------------------------------------------------",
        f"{scored.score:4.1f} {band:<22} {description}",
        f"{0.0:4.1f} {MODEL_SYMBOL:<22} Scored by the spamfilter e-mail model",
    ]
    if verdict.summary:
        lines += ["", f"Summary: {printable(verdict.summary, limit=300)}"]
    return "\n".join(lines) + "\n"


def _with_body(status: bytes, head: list[bytes], body: bytes, content_length: bool) -> bytes:
    if content_length:
        head = [f"Content-length: {len(body)}\r\n".encode("ascii"), *head]
    return status + b"".join(head) + b"\r\n" + body


def scan_response(command: Command, version: ProtocolVersion, scored: ScoredMessage, message: bytes) -> bytes:
    """The answer to CHECK, SYMBOLS, REPORT, REPORT_IFSPAM, PROCESS or HEADERS, shaped for the client's version as
    spamd shapes it (1.3+: Content-length and Spam headers; 1.2: Content-length only on PROCESS; earlier: neither)."""
    ok = status_line(Status.EX_OK)
    if command in (Command.PROCESS, Command.HEADERS):
        rewritten = add_headers(message, spam_headers(scored))
        body = header_block(rewritten) if command is Command.HEADERS else rewritten
        if version >= (1, 3):
            return _with_body(ok, [spam_line(scored)], body, content_length=True)
        if version >= (1, 2):
            return _with_body(ok, [], body, content_length=True)
        return f"SPAMD/1.0 {int(Status.EX_OK)} EX_OK\r\n".encode("ascii") + body
    if command is Command.CHECK:
        return ok + spam_line(scored) + b"\r\n"
    if command is Command.SYMBOLS:
        body = ",".join(scored.symbols).encode("ascii")
        if version < (1, 3):
            body += b"\r\n"
    elif command is Command.REPORT or (command is Command.REPORT_IFSPAM and scored.verdict.is_spam):
        body = report(scored).encode("utf-8")
    elif command is Command.REPORT_IFSPAM:
        body = b""
    else:
        raise ValueError(f"{command} is not a scanning command")
    return _with_body(ok, [spam_line(scored)], body, content_length=version >= (1, 3))


def tell_response(did_set: Sequence[str], did_remove: Sequence[str]) -> bytes:
    """`DidSet: local` / `DidRemove: local` when something was learned or forgotten (spamc -L reads these)."""
    head = []
    if did_set:
        head.append(f"DidSet: {','.join(did_set)}\r\n".encode("ascii"))
    if did_remove:
        head.append(f"DidRemove: {','.join(did_remove)}\r\n".encode("ascii"))
    return _with_body(status_line(Status.EX_OK), head, b"", content_length=True)
