"""Idempotency-Key on the REST POSTs that create things: a request sent again (a timeout, a
retrying client) gets the first answer again instead of making a second batch.

A route calls `begin` once its input has validated, so a request rejected before it runs stores
nothing. `begin` claims the key for this request, or returns the answer the key's first request
got, or refuses (another request's key, or still in progress after a bounded wait). The route
then runs, and `IdempotencyMiddleware` stores what it answered (2xx, 4xx) or releases the key
(5xx, an exception) so that the client can send the request again.

Keys belong to the caller's organisation. The request is compared by route and by a SHA-256 of
its query and body; bodies are never stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from typing import Annotated
from urllib.parse import parse_qsl, quote, urlencode

import anyio
from fastapi import Header, Request, status
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regbatch.api.rest.auth import Caller
from regbatch.api.rest.errors import ApiError
from regbatch.db import idempotency as store
from regbatch.db.engine import session_scope
from regbatch.db.types import utcnow

logger = logging.getLogger("regbatch.api")

HEADER = "Idempotency-Key"
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.1
REPLAYED_HEADER = "Idempotent-Replayed"
_CLAIM = "idempotency_claim"  # the request's claim, in the ASGI scope's state
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")

DESCRIPTION = (
    "Makes the request safe to send again. 1 to 200 printable ASCII characters, unique per "
    "request (a UUID is a good key), scoped to your organisation and kept 24 hours. The same key "
    "with the same body answers the first answer again (status and body, with "
    "`Idempotent-Replayed: true`) and creates nothing; with another body or on another route it "
    "is a 422 `IDEMPOTENCY_KEY_REUSED`; while the first request is still running the second "
    "waits up to 10 s, then gets its answer or a 409 `IDEMPOTENCY_KEY_IN_PROGRESS`. A 5xx "
    "answer is not kept: send the request again with the same key."
)
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description=DESCRIPTION,
        # documented, not enforced by validation: a malformed key is a 400 with its own code
        json_schema_extra={"minLength": 1, "maxLength": 200, "pattern": "^[\\x20-\\x7e]+$"},
    ),
]


async def begin(request: Request, caller: Caller, key: str | None) -> Response | None:
    """None when the route should run (no key, or the key is now this request's); else the
    response to send instead: the answer the key's first request got."""
    if key is None:
        return None
    keyed = store.KeyedRequest(
        organisation_id=caller.organisation_id,
        key=_checked(key),
        method=request.method,
        path=quote(request.url.path, safe="/", errors="replace"),
        request_hash=fingerprint(request.url.query, await request.body()),
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = await run_in_threadpool(_claim, keyed)
        if isinstance(found, store.Claimed):
            setattr(request.state, _CLAIM, found.claim_id)
            return None
        if isinstance(found, store.Answered):
            return _replay(found.answer)
        if isinstance(found, store.UsedElsewhere):
            raise _reused(keyed, found)
        if time.monotonic() >= deadline:
            raise _in_progress(keyed.key)
        await anyio.sleep(POLL_SECONDS)


def fingerprint(query: str, body: bytes) -> str:
    """SHA-256 of the query (in key order) and the body (canonical when it is JSON)."""
    digest = hashlib.sha256()
    digest.update(urlencode(sorted(parse_qsl(query, keep_blank_values=True))).encode())
    digest.update(b"\n")
    try:  # the same JSON sent with other spacing or key order is the same request
        digest.update(json.dumps(json.loads(body), sort_keys=True).encode())
    except ValueError:
        digest.update(body)
    return digest.hexdigest()


class IdempotencyMiddleware:
    """Keeps the answer of a request that claimed an Idempotency-Key (2xx, 4xx), or releases the
    key (5xx, an exception, a non-JSON answer); the answer reaches the client once it is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        held: list[Message] = []

        async def hold(message: Message) -> None:
            if _CLAIM in state:
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold)
        except BaseException:
            if _CLAIM in state:
                await _settle(state[_CLAIM], None)
            raise
        if _CLAIM in state:
            await _settle(state[_CLAIM], _answer(held))
            for message in held:
                await send(message)


def _checked(key: str) -> str:
    if 1 <= len(key) <= 200 and _PRINTABLE_ASCII.fullmatch(key):
        return key
    if not key:
        problem = "is empty"
    elif len(key) > 200:
        problem = f"has {len(key)} characters"
    else:
        problem = "has a character that is not printable ASCII"
    raise ApiError(
        status.HTTP_400_BAD_REQUEST,
        "IDEMPOTENCY_KEY_INVALID",
        f"the {HEADER} header {problem}; send 1 to 200 printable ASCII characters (e.g. a UUID "
        "made for this request), or leave the header out",
    )


def _reused(keyed: store.KeyedRequest, first: store.UsedElsewhere) -> ApiError:
    if (first.method, first.path) == (keyed.method, keyed.path):
        what = f"{first.method} {first.path} with a different body or query"
    else:
        what = f"another request, {first.method} {first.path}"
    return ApiError(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "IDEMPOTENCY_KEY_REUSED",
        f"{HEADER} {keyed.key!r} was already used for {what}; a key names one request: send a "
        "new key for a new request, or that request unchanged to get its answer again",
    )


def _in_progress(key: str) -> ApiError:
    return ApiError(
        status.HTTP_409_CONFLICT,
        "IDEMPOTENCY_KEY_IN_PROGRESS",
        f"the request with {HEADER} {key!r} is still being processed after {WAIT_SECONDS:g} s; "
        "send it again in a moment to get its answer",
        headers={"Retry-After": "1"},
    )


def _replay(answer: store.Answer) -> Response:
    headers = {REPLAYED_HEADER: "true"}
    if answer.location:
        headers["Location"] = answer.location
    return Response(
        answer.body,
        status_code=answer.status_code,
        headers=headers,
        media_type="application/json",
    )


def _answer(held: list[Message]) -> store.Answer | None:
    """The answer to keep from the response's messages; None when it is not to be kept."""
    start = next((m for m in held if m["type"] == "http.response.start"), None)
    if start is None or not 200 <= start["status"] < 500:
        return None
    body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
    try:
        text = body.decode()
        json.loads(text)
    except ValueError:
        return None  # only JSON answers are replayed; every route here answers JSON
    headers = {name.lower(): value for name, value in start.get("headers", [])}
    location = headers.get(b"location")
    return store.Answer(start["status"], text, location.decode("latin-1") if location else None)


async def _settle(claim_id: uuid.UUID, answer: store.Answer | None) -> None:
    # Shielded: a client that hung up must not leave its key claimed until it is abandoned.
    with anyio.CancelScope(shield=True):
        try:
            await run_in_threadpool(_keep_or_release, claim_id, answer)
        except Exception:  # the answer still goes out; the claim expires as abandoned
            logger.warning("could not settle Idempotency-Key claim %s", claim_id, exc_info=True)


def _claim(keyed: store.KeyedRequest) -> store.ClaimResult:
    with session_scope() as session:
        return store.claim(session, keyed, utcnow())


def _keep_or_release(claim_id: uuid.UUID, answer: store.Answer | None) -> None:
    with session_scope() as session:
        if answer is None:
            store.release(session, claim_id)
        elif not store.complete(session, claim_id, answer, utcnow()):
            logger.warning("Idempotency-Key claim %s was abandoned before its answer", claim_id)
