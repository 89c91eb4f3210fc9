"""A limit on the size of request bodies, enforced before the body is read into memory.

Routes read their bodies whole (``await request.body()``: a bundle batch, a CSV import), so
without a limit one request can make the platform hold, and then parse, as much as a client cares
to send. :class:`BodyLimit` is an ASGI middleware: a ``Content-Length`` above the limit is
answered 413 at once, without reading anything; a body without one (chunked) is counted as its
chunks arrive, and the request is answered 413 as soon as the count passes the limit, so at most
the limit plus one chunk is ever held.

The default (``GLA_MAX_BODY_BYTES``, 64 MiB) is the CSV imports' size limit and some 9 times the
largest batch a receiver's delivery sends (1,000 bundles, the batch route's maximum, of 12 copies
each with five band amplitudes: 7.0 MB; the demo captures' 3-copy bundles make 2.2 MB).
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit. An HTTPException, so that
    FastAPI's body reading lets it through and the app answers it (413) like any other."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_detail(limit))


def _detail(limit: int) -> str:
    return f"request body larger than {limit} bytes (GLA_MAX_BODY_BYTES); split it"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the server refuses a malformed length before we see it
                if declared > limit:
                    await _refuse(send, limit)
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:  # pragma: no cover - a route that answers before reading its body
                raise
            await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = ('{"detail":"' + _detail(limit) + '"}').encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
