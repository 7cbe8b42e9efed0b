"""Request bodies: capped in size before they are read whole, and required to be UTF-8.

JSON is UTF-8 (RFC 8259); Python's json would also guess UTF-16 and UTF-32 from the first bytes,
so the check is made here, incrementally as the body streams in. Raw bodies (a posted e-mail: bytes
as received, 8-bit included) have a limit of their own and no encoding check.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping

from api.errors import BodyTooLargeError
from api.metrics import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    """`max_bytes` for every JSON body; `raw_bodies` maps a path whose body is raw bytes to its limit and
    the setting that sets it (named in the 413)."""

    def __init__(self, app: ASGIApp, max_bytes: int, raw_bodies: Mapping[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.raw_bodies = dict(raw_bodies or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = self.raw_bodies.get(scope["path"])
        limit, setting = raw if raw is not None else (self.max_bytes, "")
        too_large = f"request body is larger than {limit} bytes" + (f" ({setting})" if setting else "")
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _reject(send, too_large)
                return
        received = 0
        decoder = None if raw is not None else codecs.getincrementaldecoder("utf-8")()

        async def checked_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:  # chunked bodies have no Content-Length to check up front
                    raise BodyTooLargeError(too_large)
                if decoder is not None:
                    # Raises UnicodeDecodeError, which becomes a 400 saying where the bad byte is.
                    decoder.decode(chunk, final=not message.get("more_body", False))
            return message

        await self.app(scope, checked_receive, send)


async def _reject(send: Send, message: str) -> None:
    body = json.dumps({"error": "too_large", "message": message, "details": []}, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
