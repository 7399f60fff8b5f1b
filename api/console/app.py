"""Mounting the operations console on the REST application: its pages under /console, its
static files, `/` redirecting to it, and its error pages (a console page never answers JSON)."""

from __future__ import annotations

import inspect

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from regbatch.api.console.auth import CsrfRefused, NotSignedIn
from regbatch.api.console.render import STATIC, page
from regbatch.api.rest.errors import validation_problems
from regbatch.errors import NotFoundError, RegbatchError


def install(app: FastAPI) -> None:
    """Add the console's routes and error handlers to `app`."""
    from regbatch.api.console import auth, batches, extras, restaurants

    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    for module in (auth, batches, restaurants, extras):
        app.include_router(module.router)
    app.add_api_route("/", _root, include_in_schema=False)
    app.add_exception_handler(NotSignedIn, _sign_in_first)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    _wrap_domain_errors(app)


def _root() -> Response:
    return RedirectResponse("/console", status_code=307)


def _sign_in_first(request: Request, exc: Exception) -> Response:
    if request.headers.get("HX-Request"):
        # a poll after the session ended: htmx follows HX-Redirect with a full page load
        return Response(status_code=401, headers={"HX-Redirect": "/console/sign-in"})
    return RedirectResponse("/console/sign-in", status_code=303)


def _csrf_refused(request: Request, exc: Exception) -> Response:
    message = (
        "This form's CSRF token is missing or not this session's, so nothing was done. "
        "Reload the page and submit the form again."
    )
    return page(request, "error.html", status_code=403, title="Refused", message=message)


def _wrap_domain_errors(app: FastAPI) -> None:
    """Console paths answer domain errors and rejected parameters as pages; the REST API keeps
    its JSON handlers."""
    for kind in (RegbatchError, RequestValidationError):
        _wrap(app, kind)


def _wrap(app: FastAPI, kind: type[Exception]) -> None:
    previous = app.exception_handlers.get(kind)

    async def handle(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith("/console") or previous is None:
            assert previous is not None, f"the REST API handles {kind.__name__} first"
            answer = previous(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        code = 404 if isinstance(exc, NotFoundError) else 400
        title = "Not found" if code == 404 else "Not possible"
        message = str(exc)
        if isinstance(exc, RequestValidationError):
            message = "; ".join(str(p) for p in validation_problems(exc.errors()))
        return page(request, "error.html", status_code=code, title=title, message=message)

    app.add_exception_handler(kind, handle)
