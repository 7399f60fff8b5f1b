"""Request bodies over REGBATCH_MAX_REQUEST_BODY_BYTES are refused with 413 before they are read.

A declared Content-Length over the limit is answered at once, before the application (or even
authentication) runs and before one byte of the body is received. A body without one (chunked)
is counted while it streams in: the read that crosses the limit raises BodyTooLargeError, which
the error handlers answer with 413, so no request holds more than the limit in memory and none
keeps the event loop busy parsing a huge document while other requests wait.
"""

from __future__ import annotations

import json

from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regbatch.settings import get_settings

BODY_TOO_LARGE = "body_too_large"
INVALID_CONTENT_LENGTH = "invalid_content_length"
SETTING = "REGBATCH_MAX_REQUEST_BODY_BYTES"


class BodyTooLargeError(HTTPException):
    """Raised while a request body streams in, when it crosses the limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, too_large(limit, "sent chunked"))


def too_large(limit: int, size: str) -> str:
    """The message of a 413: the body's size, the limit, and what to do."""
    return (
        f"the request body {size} is over the limit of {limit} bytes ({SETTING}); send a "
        "smaller body (create large batches in several requests)"
    )


class BodyLimitMiddleware:
    """Answers 413 for a Content-Length over the limit; counts a streamed body as it comes."""

    def __init__(self, app: ASGIApp, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes or get_settings().max_request_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            refusal = _declared_refusal(declared, limit)
            if refusal is not None:
                await _answer(send, *refusal)
                return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _counting(receive, limit), tracked)
        except BodyTooLargeError as exc:  # read outside a route, where no handler answers it
            if started:
                raise
            await _answer(send, exc.status_code, BODY_TOO_LARGE, exc.detail)


def _declared_refusal(declared: str, limit: int) -> tuple[int, str, str] | None:
    """(status, code, message) refusing a Content-Length header, or None to go on."""
    if not declared.isdigit():
        return (
            status.HTTP_400_BAD_REQUEST,
            INVALID_CONTENT_LENGTH,
            f"the Content-Length header {declared[:40]!r} is not a number of bytes; send the "
            "body's length in bytes, or send it chunked",
        )
    if int(declared) > limit:
        return (
            status.HTTP_413_CONTENT_TOO_LARGE,
            BODY_TOO_LARGE,
            too_large(limit, f"of {int(declared)} bytes"),
        )
    return None


def _counting(receive: Receive, limit: int) -> Receive:
    """`receive`, raising BodyTooLargeError once the body received crosses `limit`."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLargeError(limit)
        return message

    return counted


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1").strip())
    return None


async def _answer(send: Send, status_code: int, code: str, detail: str) -> None:
    body = json.dumps({"detail": detail, "code": code}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread body is not worth waiting for
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
