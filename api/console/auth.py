"""Signing in and out of the console, and the dependencies its pages use to know who is signed
in and that a form POST carries the session's CSRF token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from regbatch.api.console import session as cookies
from regbatch.api.console.render import page
from regbatch.api.console.session import ConsoleSession
from regbatch.api.rest.auth import Caller

router = APIRouter(prefix="/console")

BAD_KEY = (
    "That API key was not accepted: it is unknown or revoked. Paste a live key of your "
    "organisation (create one with `regbatch org key create ORG`)."
)
BAD_FORM = (
    "The sign-in form expired or came from another site (its CSRF token did not match). "
    "Sign in again from this page."
)


class NotSignedIn(Exception):
    """Raised when a console page is asked for without a live session (answered by a redirect
    to the sign-in page)."""


class CsrfRefused(Exception):
    """Raised when a console POST lacks the session's CSRF token (answered 403, nothing done)."""


def _live(request: Request) -> ConsoleSession:
    from regbatch.services.api_keys import key_is_live

    found = cookies.read_session(request)
    if found is None or not key_is_live(found.key_id, found.organisation_id):
        raise NotSignedIn()
    return found


SessionDep = Annotated[ConsoleSession, Depends(_live)]


async def checked(request: Request, session: SessionDep) -> ConsoleSession:
    """The session of a form POST whose CSRF token is the session's.

    The form is read here with room for a batch's worth of restaurant ids (Starlette's default
    stops at 1,000 fields); the route reads the same parsed form again.
    """
    from regbatch.settings import get_settings

    form = await request.form(max_fields=get_settings().max_batch_size + 100, max_files=0)
    if not cookies.csrf_matches(session, str(form.get("csrf_token", ""))[:200]):
        raise CsrfRefused()
    return session


CheckedDep = Annotated[ConsoleSession, Depends(checked)]


def caller_of(session: ConsoleSession) -> Caller:
    """The session as the REST layer's caller (same organisation scoping, same audit actor)."""
    return Caller(
        organisation_id=session.organisation_id, key_id=session.key_id, actor=session.actor
    )


@router.get("/sign-in", response_class=HTMLResponse, include_in_schema=False)
def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request, None, 200)


@router.post("/sign-in", include_in_schema=False)
async def sign_in(
    request: Request,
    api_key: Annotated[str, Form(max_length=300)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Exchange a live API key for a session cookie; the key itself is neither kept nor shown."""
    from regbatch.services.api_keys import authenticate

    if not cookies.sign_in_token_matches(request, csrf_token):
        return _refused(request, BAD_FORM, 403)
    key = await run_in_threadpool(authenticate, api_key.strip()) if api_key.strip() else None
    if key is None:
        return _refused(request, BAD_KEY, 401)
    actor = f"console:{key.name}"[:180] + f" ({key.prefix})"
    response = RedirectResponse("/console/batches", status_code=303)
    session = cookies.new_session(key.organisation_id, key.id, actor)
    cookies.write_session(response, session, secure=request.url.scheme == "https")
    response.delete_cookie(cookies.SIGN_IN_COOKIE, path=cookies.PATH)
    return response


def _refused(request: Request, message: str, status_code: int) -> Response:
    return _sign_in_page(request, message, status_code)


def _sign_in_page(request: Request, error: str | None, status_code: int) -> Response:
    token = cookies.sign_in_token(request)
    response = page(request, "sign_in.html", status_code=status_code, error=error, csrf=token)
    cookies.set_sign_in_cookie(response, token)
    return response


@router.post("/sign-out", include_in_schema=False)
def sign_out(session: CheckedDep) -> Response:
    response = RedirectResponse("/console/sign-in", status_code=303)
    cookies.clear_session(response)
    return response
