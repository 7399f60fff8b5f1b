"""Errors as JSON: every RegbatchError and every rejected request get a status and a message.

InvalidInputError, request validation   422 {"detail", "errors": [{field, message, subject}]}
NotFoundError                           404 (also for another organisation's objects)
ConflictError                           409 (the message names the current status)
ConfigurationError, database or Prefect down
                                        503
a value the database cannot store       422
ApiError (a problem of the HTTP request itself, e.g. its Idempotency-Key)
                                        its own status, {"detail", "code"}
anything else                           500, logged with a reference, no internals shown
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError, StatementError

from regbatch.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    PrefectUnavailableError,
    Problem,
    RegbatchError,
)

logger = logging.getLogger("regbatch.api")

STATUS_OF: tuple[tuple[type[RegbatchError], int], ...] = (
    (InvalidInputError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (ConflictError, status.HTTP_409_CONFLICT),
    (ConfigurationError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (DatabaseUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (PrefectUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
)


class ApiError(Exception):
    """Raised by the REST layer when the HTTP request itself is unacceptable (not its content),
    with a stable `code` a client can act on, e.g. IDEMPOTENCY_KEY_REUSED.

    It is not a RegbatchError: those are the domain's errors, raised whatever the interface.
    """

    def __init__(
        self, status_code: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code, self.code, self.detail = status_code, code, detail
        self.headers = headers or {}


def _error(
    code: int,
    detail: str,
    problems: Sequence[Problem] | None = None,
    batch_id: uuid.UUID | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if problems is not None:
        body["errors"] = [
            {"field": p.field, "message": p.message, "subject": p.subject} for p in problems
        ]
    if batch_id is not None:
        body["batch_id"] = str(batch_id)
    return JSONResponse(body, status_code=code)


def error_response(exc: RegbatchError, batch_id: uuid.UUID | None = None) -> JSONResponse:
    """The JSON response of a RegbatchError (naming the batch a request made before it, if any)."""
    code = next((c for kind, c in STATUS_OF if isinstance(exc, kind)), 400)
    if isinstance(exc, InvalidInputError):
        return _error(code, exc.summary, exc.problems, batch_id)
    return _error(code, str(exc), None, batch_id)


def validation_problems(errors: Sequence[Any]) -> list[Problem]:
    """One Problem per invalid request field: 'restaurant_ids.2', 'limit', 'batch_id'."""
    problems = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        if location and location[0] in ("body", "query", "path", "header"):
            location = location[1:]
        field = ".".join(location) or "body"
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        problems.append(Problem(field, message))
    return problems


async def _regbatch_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RegbatchError)
    return error_response(exc)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        {"detail": exc.detail, "code": exc.code}, status_code=exc.status_code, headers=exc.headers
    )


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = validation_problems(exc.errors())
    fields = ", ".join(dict.fromkeys(p.field for p in problems))
    return _error(
        status.HTTP_422_UNPROCESSABLE_CONTENT, f"request is invalid: check {fields}", problems
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StatementError)
    if isinstance(exc, OperationalError):
        logger.warning("database unavailable on %s %s", request.method, request.url.path)
        return _error(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the database is unavailable or busy; try again shortly",
        )
    if isinstance(exc, DataError) or isinstance(exc.orig, ValueError | TypeError | OverflowError):
        logger.info("rejected a value the database cannot store (%s)", type(exc.orig).__name__)
        return _error(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "a value in the request cannot be stored (out of range, or a character the "
            "database refuses); check the request's numbers and text",
        )
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    reference = uuid.uuid4().hex[:12]
    logger.error(
        "unexpected error %s on %s %s", reference, request.method, request.url.path, exc_info=exc
    )
    return _error(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        f"internal error (reference {reference}); the server's log has the details",
    )


def install(app: FastAPI) -> None:
    """Map every error above onto its response."""
    app.add_exception_handler(RegbatchError, _regbatch_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StatementError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
