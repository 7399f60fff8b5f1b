"""Errors as JSON: every RegbatchError and every rejected request get a status, a message and a
stable machine-readable `code`.

InvalidInputError                       422 invalid_input {"detail", "code", "errors": [...]}
request validation                      422 validation_error (every invalid field in "errors")
a body that is not JSON                 400 malformed_json
a body over the limit (api/rest/limits) 413 body_too_large
a query parameter the route does not take 400 unknown_query_parameter
NotFoundError, an unknown path          404 not_found (also for another organisation's objects)
ConflictError                           409 conflict (the message names the current status)
no valid API key                        401 unauthorized
a method the path does not have         405 method_not_allowed (with the Allow header)
ConfigurationError                      503 unavailable; the database down: database_unavailable
a value the database cannot store       422 unstorable_value
ApiError (a problem of the HTTP request itself, e.g. its Idempotency-Key)
                                        its own status and code, e.g. IDEMPOTENCY_KEY_REUSED
anything else                           500 internal_error, logged with a reference
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError, StatementError
from starlette.exceptions import HTTPException

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

STATUS_OF: tuple[tuple[type[RegbatchError], int, str], ...] = (
    (InvalidInputError, status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_input"),
    (NotFoundError, status.HTTP_404_NOT_FOUND, "not_found"),
    (ConflictError, status.HTTP_409_CONFLICT, "conflict"),
    (ConfigurationError, status.HTTP_503_SERVICE_UNAVAILABLE, "unavailable"),
    (DatabaseUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE, "database_unavailable"),
    (PrefectUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE, "prefect_unavailable"),
)
# The codes of the HTTP layer's own refusals, by status.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}
MALFORMED_JSON = "malformed_json"
_BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's, for a body not UTF-8


def status_and_code(exc: RegbatchError) -> tuple[int, str]:
    """The HTTP status and the error code of a RegbatchError."""
    return next(((s, c) for kind, s, c in STATUS_OF if isinstance(exc, kind)), (400, "bad_request"))


class ApiError(Exception):
    """Raised by the REST layer when the HTTP request itself is unacceptable (not its content),
    with a stable `code` a client can act on, e.g. IDEMPOTENCY_KEY_REUSED.

    It is not a RegbatchError: those are the domain's errors, raised whatever the interface.
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        problems: Sequence[Problem] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code, self.code, self.detail = status_code, code, detail
        self.headers = headers or {}
        self.problems = problems


def _error(
    status_code: int,
    code: str,
    detail: str,
    problems: Sequence[Problem] | None = None,
    batch_id: uuid.UUID | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if problems is not None:
        body["errors"] = [
            {"field": p.field, "message": p.message, "subject": p.subject} for p in problems
        ]
    if batch_id is not None:
        body["batch_id"] = str(batch_id)
    return JSONResponse(body, status_code=status_code, headers=headers)


def error_response(exc: RegbatchError, batch_id: uuid.UUID | None = None) -> JSONResponse:
    """The JSON response of a RegbatchError (naming the batch a request made before it, if any)."""
    status_code, code = status_and_code(exc)
    if isinstance(exc, InvalidInputError):
        return _error(status_code, code, exc.summary, exc.problems, batch_id)
    return _error(status_code, code, str(exc), None, batch_id)


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
    return _error(exc.status_code, exc.code, exc.detail, exc.problems, headers=exc.headers)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        return _malformed_json(malformed)
    problems = validation_problems(errors)
    fields = ", ".join(dict.fromkeys(p.field for p in problems))
    return _error(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "validation_error",
        f"request is invalid: check {fields}",
        problems,
    )


def _malformed_json(error: Any) -> JSONResponse:
    location = error.get("loc", ())
    position = location[-1] if len(location) > 1 else None
    reason = (error.get("ctx") or {}).get("error") or "JSON decode error"
    where = f" at character {position}" if isinstance(position, int) else ""
    return _error(
        status.HTTP_400_BAD_REQUEST,
        MALFORMED_JSON,
        f"the request body is not valid JSON ({reason}{where}); send a JSON object with "
        "Content-Type: application/json",
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own refusals (401, 404 path, 405, 413) with a code."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    if exc.status_code == status.HTTP_400_BAD_REQUEST and detail == _BODY_PARSE_ERROR:
        code = MALFORMED_JSON
        detail = "the request body is not UTF-8 JSON; send a JSON object encoded in UTF-8"
    elif exc.status_code == status.HTTP_404_NOT_FOUND and detail == "Not Found":
        detail = f"no such path: {request.url.path}; the API's paths are listed at /docs"
    elif exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed on {request.url.path}; use {headers['Allow']}"
    return _error(exc.status_code, code, detail, headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method the API documents on the request's path."""
    methods: set[str] = set()
    for template, item in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in item}
    return sorted(methods)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StatementError)
    if isinstance(exc, OperationalError):
        logger.warning("database unavailable on %s %s", request.method, request.url.path)
        return _error(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is unavailable or busy; try again shortly",
        )
    if isinstance(exc, DataError) or isinstance(exc.orig, ValueError | TypeError | OverflowError):
        logger.info("rejected a value the database cannot store (%s)", type(exc.orig).__name__)
        return _error(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "unstorable_value",
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
        "internal_error",
        f"internal error (reference {reference}); the server's log has the details",
    )


def install(app: FastAPI) -> None:
    """Map every error above onto its response."""
    app.add_exception_handler(RegbatchError, _regbatch_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StatementError, _database_error)
    app.add_exception_handler(Exception, _unexpected)


UNKNOWN_QUERY_PARAMETER = "unknown_query_parameter"


def refuse_unknown_query(request: Request) -> None:
    """A dependency of every route: a query parameter the route does not take is a 400 (code
    unknown_query_parameter), not silently ignored (`?stauts=paused` would list every batch)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = {param.alias for param in _query_params(dependant)}
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in known]
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise ApiError(
            status.HTTP_400_BAD_REQUEST,
            UNKNOWN_QUERY_PARAMETER,
            f"unknown query parameter {', '.join(map(repr, unknown))}; this route takes: {takes}",
            problems=[
                Problem(
                    name or "(empty name)",
                    f"is not a query parameter of this route; it takes: {takes}",
                )
                for name in unknown
            ],
        )


def _query_params(dependant: Any) -> list[Any]:
    found = list(dependant.query_params)
    for child in dependant.dependencies:
        found.extend(_query_params(child))
    return found
