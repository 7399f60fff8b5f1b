"""The REST API application: `create_app()` (uvicorn: `api.rest:create_app --factory`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from regbatch.heap import claim_process, freeze_start_up_heap
from regbatch.offline import apply_offline_defaults

DESCRIPTION = """\
Register restaurants on the ordering platform in batches, orchestrated by Prefect.

Every request carries `Authorization: Bearer <API key>` (create a key with
`regbatch org key create ORG`) and sees only its organisation's objects: another organisation's
batch, template or webhook answers 404. Errors are JSON `{"detail": ..., "code": ...}` with a
stable `code` (`validation_error`, `invalid_input`, `malformed_json`, `body_too_large`,
`not_found`, `conflict`, `unauthorized`, ...); rejected input also lists every invalid field in
`errors`. A request body over the server's limit (1 MB by default) is refused with 413; a query
parameter the route does not take is refused with 400 (`unknown_query_parameter`); a number or
boolean sent as another type (`false` is not `0`) and a date that is not ISO 8601 with 422.

The POSTs that create batches (`/registration-batches`, `.../retry-failed`, `/registrations`,
`/templates/{ref}/run`) take an `Idempotency-Key` header: the same key and body sent again answer
the first answer again and create nothing more. Its errors carry a `code`:
`IDEMPOTENCY_KEY_INVALID` (400), `IDEMPOTENCY_KEY_REUSED` (422), `IDEMPOTENCY_KEY_IN_PROGRESS`
(409).
"""


def _allow_browsers(app: FastAPI) -> None:
    """CORS for the configured origins only (REGBATCH_CORS_ORIGINS; none by default). Outermost,
    so refusals (401, 413, ...) carry the headers too and browsers can show them."""
    from fastapi.middleware.cors import CORSMiddleware

    from regbatch.api.rest.idempotency import REPLAYED_HEADER
    from regbatch.settings import get_settings

    origins = get_settings().cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", REPLAYED_HEADER],
            max_age=600,
        )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At start-up, after every import and route: what exists now, out of the collector's walks
    (regbatch.heap; a full collection of this heap took 70 ms, a request about 15). It claims
    the process that runs the app, a test's included."""
    claim_process()
    freeze_start_up_heap()
    yield


def create_app() -> FastAPI:
    """A new application with every route and error handler."""
    apply_offline_defaults()  # before anything imports Prefect

    from regbatch.api.rest import (
        actions,
        batches,
        errors,
        jobs,
        restaurants,
        templates,
        webhooks,
    )
    from regbatch.api.rest.idempotency import IdempotencyMiddleware
    from regbatch.api.rest.limits import BodyLimitMiddleware
    from regbatch.api.rest.openapi import install as install_openapi
    from regbatch.api.rest.openapi import operation_id

    app = FastAPI(
        title="regbatch",
        version="1",
        description=DESCRIPTION,
        dependencies=[Depends(errors.refuse_unknown_query)],
        generate_unique_id_function=operation_id,
        lifespan=_lifespan,
    )
    errors.install(app)
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodyLimitMiddleware)  # a body over the limit is never read
    _allow_browsers(app)
    for module in (batches, actions, jobs, restaurants, templates, webhooks):
        app.include_router(module.router)
    from regbatch.api.console.app import install as install_console

    install_console(app)  # the operations console, at /console
    install_openapi(app)
    return app
