"""Console sessions: an organisation's API key, checked once at sign-in, is exchanged for a
signed cookie that names the key (never holds it) and carries the session's CSRF token.

The cookie is `base64url(JSON) "." base64url(HMAC-SHA256)` keyed by REGBATCH_CONSOLE_SECRET, or
by a random secret made when the process starts when that is unset. It is HttpOnly,
SameSite=Strict, Path=/console and expires with the session. Every form POST carries the
session's CSRF token, compared in constant time. The key stays revocable: a session whose key
was revoked ends at its next request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache

from fastapi import Request, Response

from regbatch.settings import get_settings

COOKIE = "regbatch_console"
SIGN_IN_COOKIE = "regbatch_console_signin"
"""Holds the sign-in form's CSRF token before a session exists."""
PATH = "/console"


@dataclass(frozen=True)
class ConsoleSession:
    """Who is signed in: the organisation, the key it signed in with, and the CSRF token."""

    organisation_id: uuid.UUID
    key_id: uuid.UUID
    actor: str
    csrf: str
    expires: int


@lru_cache(maxsize=1)
def _process_secret() -> bytes:
    return secrets.token_bytes(32)


def _secret() -> bytes:
    configured = get_settings().console_secret
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value().encode()
    return _process_secret()


def _sign(payload: bytes) -> str:
    mac = hmac.new(_secret(), payload, hashlib.sha256).digest()
    encode = base64.urlsafe_b64encode
    return encode(payload).decode().rstrip("=") + "." + encode(mac).decode().rstrip("=")


def _unsign(value: str) -> bytes | None:
    body, _, mac = value.partition(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
    except (binascii.Error, ValueError):
        return None
    expected = hmac.new(_secret(), payload, hashlib.sha256).digest()
    return payload if hmac.compare_digest(given, expected) else None


def new_session(organisation_id: uuid.UUID, key_id: uuid.UUID, actor: str) -> ConsoleSession:
    """A session of the organisation's key, lasting REGBATCH_CONSOLE_SESSION_MINUTES."""
    minutes = get_settings().console_session_minutes
    return ConsoleSession(
        organisation_id=organisation_id,
        key_id=key_id,
        actor=actor,
        csrf=secrets.token_urlsafe(32),
        expires=int(time.time()) + minutes * 60,
    )


def write_session(response: Response, session: ConsoleSession, secure: bool) -> None:
    """Set the session cookie on the response (`secure`: only over HTTPS, as it came)."""
    payload = json.dumps(
        {
            "o": str(session.organisation_id),
            "k": str(session.key_id),
            "a": session.actor,
            "c": session.csrf,
            "e": session.expires,
        },
        separators=(",", ":"),
    ).encode()
    response.set_cookie(
        COOKIE,
        _sign(payload),
        max_age=max(0, session.expires - int(time.time())),
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def read_session(request: Request) -> ConsoleSession | None:
    """The request's session when its cookie is genuine and unexpired, else None."""
    payload = _unsign(request.cookies.get(COOKIE, ""))
    if payload is None:
        return None
    try:
        data = json.loads(payload)
        session = ConsoleSession(
            organisation_id=uuid.UUID(data["o"]),
            key_id=uuid.UUID(data["k"]),
            actor=str(data["a"]),
            csrf=str(data["c"]),
            expires=int(data["e"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires > time.time() else None


def clear_session(response: Response) -> None:
    """Remove the session cookie."""
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")


def sign_in_token(request: Request) -> str:
    """The sign-in form's CSRF token: the one the browser's cookie holds, else a new one (the
    caller sets it with `set_sign_in_cookie`)."""
    token = _unsign(request.cookies.get(SIGN_IN_COOKIE, ""))
    return token.decode() if token is not None else secrets.token_urlsafe(32)


def set_sign_in_cookie(response: Response, token: str) -> None:
    """Remember the sign-in form's token in a signed cookie for an hour."""
    response.set_cookie(
        SIGN_IN_COOKIE,
        _sign(token.encode()),
        max_age=3600,
        path=PATH,
        httponly=True,
        samesite="strict",
    )


def sign_in_token_matches(request: Request, given: str) -> bool:
    """True when `given` is the sign-in form's token of this browser."""
    token = _unsign(request.cookies.get(SIGN_IN_COOKIE, ""))
    return token is not None and bool(given) and hmac.compare_digest(token, given.encode())


def csrf_matches(session: ConsoleSession, given: str) -> bool:
    """True when `given` is the session's CSRF token."""
    return bool(given) and hmac.compare_digest(session.csrf.encode(), given.encode())
