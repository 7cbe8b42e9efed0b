"""Request bodies: capped in size before they are read whole, and required to be UTF-8.

JSON is UTF-8 (RFC 8259); Python's json would also guess UTF-16 and UTF-32 from the first bytes,
so the check is made here, incrementally as the body streams in.
"""

from __future__ import annotations

import codecs

from api.errors import BodyTooLargeError
from api.metrics import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _reject(send, limit)
                return
        received = 0
        decoder = codecs.getincrementaldecoder("utf-8")()

        async def checked_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:  # chunked bodies have no Content-Length to check up front
                    raise BodyTooLargeError(f"request body is larger than {limit} bytes")
                # Raises UnicodeDecodeError, which becomes a 400 saying where the bad byte is.
                decoder.decode(chunk, final=not message.get("more_body", False))
            return message

        await self.app(scope, checked_receive, send)


async def _reject(send: Send, limit: int) -> None:
    body = (
        b'{"error":"too_large","message":"request body is larger than ' + str(limit).encode() + b' bytes","details":[]}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
