"""Helpers for the spamd listener's tests: the listener on loopback in its own thread and event loop (so the tests
and the clients run outside it, as a mail server would), a small deterministic scorer, raw socket exchanges."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from api.spamd import Feedback, Scorer, SpamdServer, SpamdSettings, start_spamd
from api.spamd_protocol import EmailVerdict, TellLabel

HOST = "127.0.0.1"
THRESHOLD = 0.5
MODEL_VERSION = "keywords-1"
SPAM_WORDS = (b"viagra", b"winner", b"lottery")
# P(spam) by the number of distinct spam words the message mentions.
P_SPAM_BY_HITS = (0.02, 0.97, 0.995, 0.9995)
CLIENT_TIMEOUT = 20.0  # seconds a test client waits on a socket before the test fails instead of hanging

SPAM = b"From: Prize Desk <prize@example.com>\nTo: you@example.org\nSubject: You are a WINNER\n\nClaim your lottery prize and cheap viagra today.\n"
HAM = b"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: Lunch\r\n\r\nLunch at noon tomorrow?\r\n"


def keyword_p_spam(raw: bytes) -> float:
    lowered = raw.lower()
    return P_SPAM_BY_HITS[sum(word in lowered for word in SPAM_WORDS)]


def keyword_scorer(raw: bytes) -> EmailVerdict:
    hits = sum(word in raw.lower() for word in SPAM_WORDS)
    return EmailVerdict(keyword_p_spam(raw), THRESHOLD, MODEL_VERSION, f"{hits} spam word(s)")


def failing_scorer(raw: bytes) -> EmailVerdict:
    raise RuntimeError("the model fell over")


@dataclass
class FeedbackLog:
    """A feedback function that remembers what it was told; telling it the same thing twice changes nothing."""

    calls: list[tuple[bytes, TellLabel]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, raw: bytes, label: TellLabel) -> bool:
        with self.lock:
            seen = (raw, label) in self.calls
            self.calls.append((raw, label))
            return not seen


class BlockingScorer:
    """Scores like `keyword_scorer`, but each call waits (in the server's thread) until the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, raw: bytes) -> EmailVerdict:
        self.entered.release()
        self.release.wait(3 * CLIENT_TIMEOUT)  # longer than a client waits: a blocked loop fails the test
        return keyword_scorer(raw)

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=CLIENT_TIMEOUT), "the scorer was never called"


@dataclass
class RunningSpamd:
    server: SpamdServer
    loop: asyncio.AbstractEventLoop

    @property
    def port(self) -> int:
        return self.server.port

    def open_connections(self) -> int:
        async def count() -> int:
            return self.server.open_connections

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(CLIENT_TIMEOUT)


@contextmanager
def running_spamd(
    scorer: Scorer = keyword_scorer, settings: SpamdSettings | None = None, feedback: Feedback | None = None
) -> Iterator[RunningSpamd]:
    """The listener on 127.0.0.1, an OS-chosen port, served by an event loop in a background thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="spamd-test-loop", daemon=True)
    thread.start()
    try:
        started = asyncio.run_coroutine_threadsafe(start_spamd(HOST, 0, scorer, settings, feedback), loop)
        server = started.result(CLIENT_TIMEOUT)
        try:
            yield RunningSpamd(server, loop)
        finally:
            asyncio.run_coroutine_threadsafe(server.close(grace=1.0), loop).result(CLIENT_TIMEOUT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLIENT_TIMEOUT)
        loop.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=CLIENT_TIMEOUT)


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(port: int, request: bytes, half_close: bool = True) -> bytes:
    """Send `request`, end our side (as spamc does) unless told not to, and return everything the server says."""
    with connect(port) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_to_eof(sock)


def request(command: str, message: bytes = b"", version: str = "1.5", headers: dict[str, str] | None = None) -> bytes:
    """A request as spamc writes it (Content-length of the message unless `headers` say otherwise)."""
    fields = {"Content-length": str(len(message))} if headers is None else headers
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return f"{command} SPAMC/{version}\r\n{head}\r\n".encode("ascii") + message


@dataclass(frozen=True)
class Response:
    status: str
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status.split(" ")[1])


def parse_response(raw: bytes) -> Response:
    """A SPAMD answer split into status line, headers and body (an error is a lone status line)."""
    status, _, rest = raw.partition(b"\r\n")
    if not rest:
        return Response(status.decode("ascii"), {}, b"")
    head, _, body = rest.partition(b"\r\n\r\n")
    if rest.startswith(b"\r\n"):  # no headers at all
        head, body = b"", rest[2:]
    headers = {}
    for line in head.split(b"\r\n") if head else []:
        name, _, value = line.decode("ascii").partition(":")
        headers[name] = value.strip()
    return Response(status.decode("ascii"), headers, body)
