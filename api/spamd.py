"""A TCP listener speaking SpamAssassin's spamd protocol, so an existing spamc setup (spamc, Postfix or Exim through
spamc, Haraka's spamassassin plugin, aiospamc) gets the e-mail model's verdicts. Owns the sockets, the limits and
the threads; the wire format and the score live in `api.spamd_protocol`.

    server = await start_spamd("127.0.0.1", 783, scorer, SpamdSettings(), feedback=None)
    ...
    await server.close()

`scorer(raw: bytes) -> EmailVerdict` and `feedback(raw: bytes, label) -> bool` are plain, possibly slow, functions:
they run on a thread pool of `max_children` threads owned by the server, never on the event loop, so a slow model
holds up neither other connections nor the rest of the application.

How it behaves, next to spamd (the reference daemon):

| situation                                             | answer                                   | spamd                |
|-------------------------------------------------------|------------------------------------------|----------------------|
| one request per connection; answer, then close        | as spamd                                 | same                 |
| more than `max_children` requests at once             | the extra connections wait their turn    | same (-m 5)          |
| more than `max_connections` open (working + waiting)  | 75 EX_TEMPFAIL at once                   | kernel backlog       |
| nothing (or no complete header section) in            | 79 EX_TIMEOUT                            | same (--timeout-tcp) |
|   `read_timeout` seconds                              |                                          |                      |
| a request taking over `request_timeout` seconds       | 79 EX_TIMEOUT                            | same                 |
|   (reading and scoring)                               |                                          | (--timeout-child)    |
| unknown command, garbage, a bad header line,          | 76 EX_PROTOCOL                           | same                 |
|   EOF inside the headers                              |                                          |                      |
| body shorter than Content-length (EOF, or idle for    | 76 EX_PROTOCOL "Content-length mismatch" | same on EOF          |
|   `read_timeout`)                                     |                                          |                      |
| no Content-length                                     | body runs to the client's end of input   | same (Haraka relies  |
|                                                       | (76 if it neither ends nor sends more    | on it)               |
|                                                       | within `read_timeout`)                   |                      |
| Content-length or body over `max_message_bytes`       | 69 EX_UNAVAILABLE "exceeds limit"        | same (msg_size_limit)|
| `Compress: zlib`                                      | inflated, bounded by `max_message_bytes` | same                 |
| `Compress: zlib` without Content-length; corrupt zlib | 76; 69                                   | 69; 69               |
| the scorer (or feedback) raises                       | 70 EX_SOFTWARE, and serving goes on      | child dies, respawns |
| ... raises ScorerNotReadyError (no model loaded yet)  | 75 EX_TEMPFAIL with its message          | -                    |
| ... raises MailError (not an e-mail, over a parse     | 65 EX_DATAERR with its message           | scores it anyway     |
|   limit: parts, depth, decoded size)                  |                                          |                      |
| TELL without a feedback function                      | 69 EX_UNAVAILABLE                        | same (no --allow-tell)|

Bytes past the declared Content-length are ignored. spamc never sends more than its -s limit (500 KB by default),
so with the default 1 MiB limit spamc's own skip applies first. After answering, the server shuts its side and reads
whatever the client still sends for up to `LINGER_SECONDS`, so closing does not reset the connection before the
client has read the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from api.spamd_protocol import (
    MAX_HEADERS,
    Command,
    EmailVerdict,
    ProtocolVersion,
    RequestError,
    RequestHeaders,
    Status,
    TellLabel,
    is_blank_line,
    parse_headers,
    parse_request_line,
    pong,
    scan_response,
    score_message,
    status_line,
    tell_request,
    tell_response,
)
from spamfilter.errors import ConfigError, SpamfilterError
from spamfilter.mail import MailError

log = logging.getLogger(__name__)

Scorer = Callable[[bytes], EmailVerdict]
# Learn the message as "spam" or "ham", or "forget" it; True when that changed something (spamc then prints
# "Message successfully un/learned"), False when it was already so ("Message was already un/learned").
Feedback = Callable[[bytes, TellLabel], bool]


class ScorerNotReadyError(SpamfilterError):
    """Raised by a scorer (or feedback) that cannot answer yet, e.g. no model loaded: the client gets 75
    EX_TEMPFAIL with this message, the protocol's "try again later" (the HTTP API's 503)."""


STREAM_LIMIT = 64 * 1024  # longest request or header line, and the reader's buffer before it pauses the socket
READ_CHUNK = 64 * 1024
LINGER_SECONDS = 2.0
_T = TypeVar("_T")


@dataclass(frozen=True)
class SpamdSettings:
    """The listener's knobs; defaults follow spamd's where spamd has one."""

    required_score: float = 5.0  # SpamAssassin's default; one decimal, as the protocol carries it
    max_message_bytes: int = 1024 * 1024
    read_timeout: float = 30.0  # spamd --timeout-tcp: the longest silence while a request is read
    request_timeout: float = 300.0  # spamd --timeout-child: reading plus scoring one request
    max_children: int = 5  # spamd --max-children: requests worked on at once (and scoring threads)
    max_connections: int = 64  # open connections, working and waiting, before new ones get EX_TEMPFAIL

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.required_score) and round(self.required_score, 1) == self.required_score):
            problems.append(f"required_score must be a finite number with one decimal, got {self.required_score!r}")
        if self.max_message_bytes < 1:
            problems.append(f"max_message_bytes must be at least 1, got {self.max_message_bytes}")
        for name in ("read_timeout", "request_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be a positive number of seconds, got {value!r}")
        if self.max_children < 1:
            problems.append(f"max_children must be at least 1, got {self.max_children}")
        if self.max_connections < self.max_children:
            problems.append(
                f"max_connections ({self.max_connections}) must be at least max_children ({self.max_children})"
            )
        if problems:
            raise ConfigError("spamd settings: " + "; ".join(problems))


class SpamdServer:
    """A running listener. `port` is the bound port (useful with port 0); `close()` stops it."""

    def __init__(self, scorer: Scorer, feedback: Feedback | None, settings: SpamdSettings) -> None:
        self._scorer = scorer
        self._feedback = feedback
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.max_children)
        # The model's own threads, sized like the slots: a scorer stuck past request_timeout keeps its thread, so
        # later requests queue here (and time out) instead of piling up threads without bound.
        self._executor = ThreadPoolExecutor(max_workers=settings.max_children, thread_name_prefix="spamd-score")
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def _listen(self, host: str, port: int, reuse_port: bool) -> None:
        self._server = await asyncio.start_server(
            self._handle, host, port, limit=STREAM_LIMIT, reuse_port=reuse_port or None
        )

    @property
    def port(self) -> int:
        assert self._server is not None, "not listening"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        """Connections being read, scored, answered or waiting for a slot."""
        return len(self._connections)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, give open requests `grace` seconds to finish, cancel the rest, release the threads."""
        if self._server is not None:
            self._server.close()
        pending = set(self._connections)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if len(self._connections) > self._settings.max_connections:
                log.warning("spamd: %d connections open, refusing one more", len(self._connections) - 1)
                answer: bytes | None = status_line(Status.EX_TEMPFAIL, "too many connections, try again later")
            else:
                async with self._slots:
                    answer = await self._answer(reader)
            if answer:
                writer.write(answer)
                await asyncio.wait_for(writer.drain(), self._settings.read_timeout)
        except (ConnectionError, TimeoutError) as error:
            log.debug("spamd: client went away before reading the answer: %r", error)
        finally:
            await self._linger_and_close(reader, writer)
            self._connections.discard(task)

    async def _linger_and_close(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, OSError, RuntimeError):
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
            async with asyncio.timeout(LINGER_SECONDS):
                while await reader.read(READ_CHUNK):
                    pass
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> bytes | None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._settings.request_timeout):
                return await self._serve(reader, started)
        except RequestError as error:
            log.log(
                logging.ERROR if error.status is Status.EX_SOFTWARE else logging.INFO,
                "spamd: %s %s",
                error.status.name,
                error.detail,
            )
            return status_line(error.status, error.detail)
        except TimeoutError:
            log.warning("spamd: request not done within %.0f s", self._settings.request_timeout)
            return status_line(Status.EX_TIMEOUT, f"request not done within {self._settings.request_timeout:g} s")
        except Exception:  # a bug here must cost one request, not the listener
            log.exception("spamd: unexpected failure")
            return status_line(Status.EX_SOFTWARE, "internal error (see the server log)")

    async def _serve(self, reader: asyncio.StreamReader, started: float) -> bytes | None:
        line = await self._read_line(reader, "the request line")
        if not line:
            raise RequestError(Status.EX_PROTOCOL, "closed before the request line")
        command, version = parse_request_line(line)
        if command is Command.PING:  # no headers to wait for: spamc before 1.5 sends none
            return pong()
        if command is Command.SKIP:  # the client changed its mind; spamd answers nothing
            return None
        headers = RequestHeaders() if version <= (1, 0) else parse_headers(await self._read_header_lines(reader))
        limit = self._settings.max_message_bytes
        if headers.content_length is not None and headers.content_length > limit:
            raise RequestError(
                Status.EX_UNAVAILABLE, f"Content-length exceeds limit ({headers.content_length} > {limit} bytes)"
            )
        if command is Command.TELL:
            if self._feedback is None:
                raise RequestError(Status.EX_UNAVAILABLE, "TELL commands have not been enabled")
            tell_request(headers)  # refuse a contradictory TELL before reading its body
        message = await self._read_message(reader, headers)
        if command is Command.TELL:
            return await self._tell(message, headers)
        return await self._scan(command, version, message, started)

    async def _scan(self, command: Command, version: ProtocolVersion, message: bytes, started: float) -> bytes:
        returned: object = await self._in_thread("scorer", self._scorer, message)
        if not isinstance(returned, EmailVerdict):  # a scorer written without type checks
            log.error("spamd: the scorer returned %r, not an EmailVerdict", type(returned).__name__)
            raise RequestError(Status.EX_SOFTWARE, "scoring failed (see the server log)")
        verdict = returned
        scored = score_message(verdict, self._settings.required_score)
        log.debug(
            "spamd: %s %s (%.1f/%.1f) %d bytes in %.3f s",
            command.value,
            "spam" if verdict.is_spam else "ham",
            scored.score,
            scored.required_score,
            len(message),
            time.monotonic() - started,
        )
        return scan_response(command, version, scored, message)

    async def _tell(self, message: bytes, headers: RequestHeaders) -> bytes:
        assert self._feedback is not None
        wanted = tell_request(headers)
        did_set: list[str] = []
        did_remove: list[str] = []
        if wanted.learn is not None and await self._in_thread("feedback", self._feedback, message, wanted.learn):
            did_set.append("local")
        if wanted.forget and await self._in_thread("feedback", self._feedback, message, "forget"):
            did_remove.append("local")
        return tell_response(did_set, did_remove)

    async def _in_thread(self, role: str, function: Callable[..., _T], *args: object) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function, *args)
        except ScorerNotReadyError as error:
            raise RequestError(Status.EX_TEMPFAIL, str(error)) from error
        except MailError as error:  # the client's message, refused by the parser: its fault, not the server's
            raise RequestError(Status.EX_DATAERR, str(error)) from error
        except Exception as error:  # the model's bug is this request's failure, never the server's
            log.exception("spamd: the %s raised", role)
            raise RequestError(Status.EX_SOFTWARE, f"{role} failed (see the server log)") from error

    # --- reading ------------------------------------------------------------------------------------------------

    async def _read_line(self, reader: asyncio.StreamReader, what: str) -> bytes:
        """One line (with its terminator), or what came before EOF; EX_TIMEOUT after `read_timeout` of silence."""
        try:
            return await asyncio.wait_for(reader.readuntil(b"\n"), self._settings.read_timeout)
        except asyncio.IncompleteReadError as eof:
            return eof.partial
        except asyncio.LimitOverrunError as error:
            raise RequestError(Status.EX_PROTOCOL, f"{what} is longer than {STREAM_LIMIT} bytes") from error
        except TimeoutError as error:
            raise RequestError(
                Status.EX_TIMEOUT, f"{self._settings.read_timeout:g} second socket timeout reading {what}"
            ) from error

    async def _read_header_lines(self, reader: asyncio.StreamReader) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            line = await self._read_line(reader, "the request headers")
            if is_blank_line(line):
                return lines
            if not line.endswith(b"\n"):
                raise RequestError(Status.EX_PROTOCOL, "EOF during headers")
            lines.append(line)
            if len(lines) > MAX_HEADERS:
                parse_headers(lines)  # raises: too many headers

    async def _read_message(self, reader: asyncio.StreamReader, headers: RequestHeaders) -> bytes:
        limit = self._settings.max_message_bytes
        if headers.content_length is None:
            if headers.compress:
                raise RequestError(Status.EX_PROTOCOL, "Compress: zlib needs a Content-length")
            body = await self._read_to_eof(reader, limit)
        else:
            body = await self._read_exactly(reader, headers.content_length)
        return _inflate(body, limit) if headers.compress else body

    async def _read_exactly(self, reader: asyncio.StreamReader, length: int) -> bytes:
        chunks: list[bytes] = []
        received = 0
        while received < length:
            try:
                chunk = await asyncio.wait_for(
                    reader.read(min(READ_CHUNK, length - received)), self._settings.read_timeout
                )
            except TimeoutError as error:
                raise RequestError(
                    Status.EX_PROTOCOL,
                    f"Content-length mismatch: expected {length} bytes, got {received} "
                    f"before {self._settings.read_timeout:g} s of silence",
                ) from error
            if not chunk:
                raise RequestError(
                    Status.EX_PROTOCOL, f"Content-length mismatch: expected {length} bytes, got {received}"
                )
            chunks.append(chunk)
            received += len(chunk)
        return b"".join(chunks)

    async def _read_to_eof(self, reader: asyncio.StreamReader, limit: int) -> bytes:
        chunks: list[bytes] = []
        received = 0
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(READ_CHUNK), self._settings.read_timeout)
            except TimeoutError as error:
                raise RequestError(
                    Status.EX_PROTOCOL,
                    f"no Content-length, and the client neither sent more nor ended its input "
                    f"within {self._settings.read_timeout:g} s",
                ) from error
            if not chunk:
                return b"".join(chunks)
            received += len(chunk)
            if received > limit:
                raise RequestError(Status.EX_UNAVAILABLE, f"message exceeds limit ({limit} bytes)")
            chunks.append(chunk)


def _inflate(compressed: bytes, limit: int) -> bytes:
    """zlib data inflated to at most `limit` bytes: a small bomb cannot expand past the size limit."""
    inflater = zlib.decompressobj()
    try:
        message = inflater.decompress(compressed, limit + 1)
    except zlib.error as error:
        raise RequestError(Status.EX_UNAVAILABLE, f"zlib: {error}") from error
    if len(message) > limit:
        raise RequestError(Status.EX_UNAVAILABLE, f"inflated message exceeds limit ({limit} bytes)")
    if not inflater.eof:
        raise RequestError(Status.EX_UNAVAILABLE, "zlib: failed to find end of zlib stream")
    return message


async def start_spamd(
    host: str,
    port: int,
    scorer: Scorer,
    settings: SpamdSettings | None = None,
    feedback: Feedback | None = None,
    *,
    reuse_port: bool = False,
) -> SpamdServer:
    """Listen on host:port (port 0: any free port, see `.port`) and serve until `await server.close()`.

    `reuse_port` lets several processes (uvicorn workers) bind the same port, the kernel spreading connections.
    """
    server = SpamdServer(scorer, feedback, settings or SpamdSettings())
    await server._listen(host, port, reuse_port)
    log.info("spamd: listening on %s:%d", host, server.port)
    return server
