"""Request and response bodies of the REST API that are not the services' own views."""

from __future__ import annotations

import math
import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    WithJsonSchema,
)

from regbatch.batch_rules import BREAKER_MIN_FINISHED, BREAKER_THRESHOLD, MAX_CONCURRENCY
from regbatch.restaurant import LeadStage, LeadType, RegistrationStatus
from regbatch.statuses import BatchStatus, ExecutionMode, RequestedAction
from regbatch.views import BatchListItem
from regbatch.webhooks import WebhookEvent

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, and halves of surrogate pairs


def _bad_text(value: str) -> bool:
    return _UNSTORABLE.search(value) is not None


def _clean_text(value: str) -> str:
    if _bad_text(value):
        raise ValueError("contains a NUL character or an unpaired surrogate; remove it")
    return value


_PLAIN = frozenset({int, bool, type(None)})


def _clean_json(value: dict[str, Any]) -> dict[str, Any]:
    """Reject what PostgreSQL cannot store in JSON: NUL characters, lone surrogates, NaN."""
    # Iterative, and a value's path is spelled out only when it is wrong: a body of a million
    # small values is walked in a few tens of milliseconds.
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        children = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in children:
            if type(child) in _PLAIN and (not isinstance(key, str) or not _bad_text(key)):
                continue  # the common case, decided at once
            problem = _unstorable(path, key, child)
            if problem is not None:
                raise ValueError(problem)
            if isinstance(child, dict | list):
                stack.append((child, (*path, key)))
    return value


def _unstorable(path: tuple[Any, ...], key: Any, child: Any) -> str | None:
    """What PostgreSQL cannot store in `key` (of the object at `path`) or its value, or None."""
    if isinstance(key, str) and _bad_text(key):
        where = ".".join(str(part) for part in path) or "the object"
        return f"a key in {where} has a NUL character or a lone surrogate"
    if isinstance(child, str) and _bad_text(child):
        return f"{_spelled(path, key)} contains a NUL character or a lone surrogate"
    if isinstance(child, float) and not math.isfinite(child):
        return f"{_spelled(path, key)} is {child}; use a finite number"
    return None


def _spelled(path: tuple[Any, ...], key: Any) -> str:
    return ".".join(str(part) for part in (*path, key))


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is blank; give it a name with at least one visible character")
    return value


Text = Annotated[str, AfterValidator(_clean_text)]
# A name: at least one character that is not white space (the schema's pattern says the same).
Name = Annotated[
    str,
    AfterValidator(_clean_text),
    AfterValidator(_not_blank),
    Field(min_length=1, json_schema_extra={"pattern": r"\S"}),
]
JsonObject = Annotated[dict[str, Any], AfterValidator(_clean_json)]
# Strict: JSON false is not the number 0, nor 1 the boolean true (lax parsing stored both).
Fraction = Annotated[float, Field(strict=True, ge=0, le=1)]
Flag = Annotated[bool, Field(strict=True)]

ISO_MOMENT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?$"
)


def _iso_only(value: Any) -> Any:
    """Refuse what lax parsing reads as a Unix timestamp (0.5, 1700000000): dates are dates."""
    if isinstance(value, str) and not re.fullmatch(ISO_MOMENT, value):
        raise ValueError(
            f"{value[:40]!r} is not an ISO 8601 date or date-time; give e.g. 2026-11-29 or "
            "2026-11-29T09:00:00Z (UTC when it has no zone)"
        )
    return value


# A date or date-time in ISO 8601 form, and only that (the schema's pattern says the same).
Moment = Annotated[
    datetime,
    BeforeValidator(_iso_only),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": ISO_MOMENT,
            "description": "ISO 8601 date or date-time; UTC when it has no zone.",
        }
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemOut(BaseModel):
    """One invalid field: where it is, what is wrong, and for which item (e.g. a restaurant)."""

    field: str
    message: str
    subject: str | None = None


class ErrorBody(BaseModel):
    """Every error response: a sentence saying what went wrong and what to do."""

    detail: str
    errors: list[ProblemOut] | None = None
    batch_id: uuid.UUID | None = Field(
        default=None, description="The batch the request created before it failed, if any."
    )
    code: str = Field(
        description="A stable, machine-readable code: validation_error, invalid_input, "
        "malformed_json, body_too_large, unauthorized, not_found, method_not_allowed, conflict, "
        "unstorable_value, unavailable, database_unavailable, prefect_unavailable, "
        "internal_error; for the Idempotency-Key: IDEMPOTENCY_KEY_INVALID, "
        "IDEMPOTENCY_KEY_REUSED, IDEMPOTENCY_KEY_IN_PROGRESS.",
    )


class CreateBatchRequest(_Request):
    """A new batch of the caller's restaurants (the seed's `{restaurant_ids, common_config}`)."""

    name: Name | None = Field(
        default=None, max_length=200, description="Default: 'Batch <YYYY-MM-DD HH:MM>' (UTC)."
    )
    restaurant_ids: list[uuid.UUID] = Field(
        min_length=1, description="The restaurants, in order (at least one)."
    )
    common_config: JsonObject = Field(
        default_factory=dict, description="Registration settings laid over every restaurant's."
    )
    execution_mode: ExecutionMode = ExecutionMode.SEQUENTIAL
    concurrency: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_CONCURRENCY,
        description="Restaurants at once; default 1 in sequential mode, else the server's.",
    )
    breaker_threshold: Fraction = BREAKER_THRESHOLD
    breaker_min_finished: StrictInt = Field(default=BREAKER_MIN_FINISHED, ge=1, le=1000)
    auto_start: Flag = Field(default=False, description="Submit the batch to Prefect at once.")


class RegistrationRequest(_Request):
    """Register one restaurant: a batch of one named 'Single: <restaurant name>'."""

    restaurant_id: uuid.UUID
    config: JsonObject = Field(default_factory=dict, description="Registration settings.")
    auto_start: Flag = True


class SortOrder(StrEnum):
    """Ascending or descending."""

    ASC = "asc"
    DESC = "desc"


class BatchList(BaseModel):
    """One page of batches and how many match the filters in all."""

    items: list[BatchListItem]
    total_count: int
    limit: int
    offset: int
    next_cursor: str | None
    """Pass it back as `cursor` for the next page; null on the last page."""


class BatchCreated(BaseModel):
    """A created batch; the start fields are set when it was started too."""

    batch_id: uuid.UUID
    jobs_count: int
    status: BatchStatus
    started_at: datetime | None = None
    first_job_id: uuid.UUID | None = None
    flow_run_id: uuid.UUID | None = None


class RetryCreated(BaseModel):
    """The linked batch of a batch's failed restaurants (started when asked), or the one an
    earlier call made (`already_existed`; then it is answered as it is, never started)."""

    new_batch_id: uuid.UUID
    status: BatchStatus
    already_existed: bool = Field(
        default=False, description="True when an earlier call had made this retry batch."
    )
    started_at: datetime | None = None
    first_job_id: uuid.UUID | None = None
    flow_run_id: uuid.UUID | None = None


class TemplateRun(BaseModel):
    """The batch a template made now; batch_id is null when no restaurant matches."""

    batch_id: uuid.UUID | None
    jobs_count: int = 0
    status: BatchStatus | None = None
    started_at: datetime | None = None
    first_job_id: uuid.UUID | None = None
    flow_run_id: uuid.UUID | None = None


class PauseResult(BaseModel):
    """A pause takes effect at the next step boundary: paused_at is null until it has."""

    batch_id: uuid.UUID
    status: BatchStatus
    requested_action: RequestedAction | None
    paused_at: datetime | None


class ResumeResult(BaseModel):
    """A paused batch is submitted to Prefect again; a pending pause request is withdrawn."""

    batch_id: uuid.UUID
    status: BatchStatus
    requested_action: RequestedAction | None
    started_at: datetime | None = None
    flow_run_id: uuid.UUID | None = None


class CancelResult(BaseModel):
    """A batch nothing runs is cancelled at once; a running one at its next step boundary."""

    batch_id: uuid.UUID
    status: BatchStatus
    requested_action: RequestedAction | None
    cancelled_at: datetime | None


class CreateTemplateRequest(_Request):
    """A saved restaurant selection and the options of the batches made from it."""

    name: Name = Field(max_length=120)
    city: Text | None = Field(default=None, max_length=120)
    lead_stage: LeadStage | None = None
    lead_type: LeadType | None = None
    min_icp_score: StrictInt | None = Field(default=None, ge=0, le=10)
    registration_status: RegistrationStatus | None = None
    limit: StrictInt = Field(default=10, ge=1, le=1000)
    execution_mode: ExecutionMode = ExecutionMode.SEQUENTIAL
    concurrency: StrictInt | None = Field(default=None, ge=1, le=MAX_CONCURRENCY)
    settings: JsonObject = Field(default_factory=dict)
    breaker_threshold: Fraction = BREAKER_THRESHOLD
    breaker_min_finished: StrictInt = Field(default=BREAKER_MIN_FINISHED, ge=1, le=1000)


class PreviewRow(BaseModel):
    """A restaurant a template would pick now."""

    id: uuid.UUID
    name: str
    city: str | None
    lead_stage: LeadStage
    lead_type: LeadType
    icp_score: int
    registration_status: RegistrationStatus


class CreateWebhookRequest(_Request):
    """Where to POST batch outcomes; no events means every event."""

    url: Text = Field(min_length=1, max_length=2000)
    events: list[WebhookEvent] = Field(default_factory=list)


_DESCRIPTIONS = {
    400: "A query parameter the route does not take (code unknown_query_parameter), or a body "
    "that is not JSON or not UTF-8 (code malformed_json).",
    401: "No valid API key.",
    404: "No such object in the caller's organisation.",
    409: "The object's status does not allow the action (the message names it).",
    413: "The body is over the server's limit (code body_too_large); it was not read.",
    422: "Invalid request: every invalid field is listed.",
    503: "Prefect cannot take the run (no deployment, server down) or the database is down.",
}


_IDEMPOTENCY_NOTES = {
    400: "A malformed Idempotency-Key (code IDEMPOTENCY_KEY_INVALID).",
    409: "A request with the same Idempotency-Key is still being processed (code "
    "IDEMPOTENCY_KEY_IN_PROGRESS): send it again in a moment.",
    422: "An Idempotency-Key already used for a different request (code IDEMPOTENCY_KEY_REUSED).",
}


def error_responses(*codes: int, idempotent: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer (400, 401, 413, 422 always); an
    `idempotent` route also answers the Idempotency-Key's own errors."""
    chosen = sorted({400, 401, 413, 422, *codes, *(_IDEMPOTENCY_NOTES if idempotent else ())})

    def describe(code: int) -> str:
        if not idempotent or code not in _IDEMPOTENCY_NOTES:
            return _DESCRIPTIONS[code]
        if code not in codes and code != 422:
            return _IDEMPOTENCY_NOTES[code]
        note = _IDEMPOTENCY_NOTES[code]
        return f"{_DESCRIPTIONS[code]} Or {note[0].lower()}{note[1:]}"

    return {code: {"model": ErrorBody, "description": describe(code)} for code in chosen}
