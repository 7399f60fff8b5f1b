"""A batch's results as a file: one row per restaurant, as CSV or as JSON with the batch summary.

Rows hold what people act on: the outcome, the failing step and its error, and the ids and URLs
the platform returned. Nothing secret is exported: owners' passwords never reach a step's
results, and only the named fields of `result_data` are read (no code injections, no emails).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from regbatch.db.batches import batch_detail
from regbatch.db.engine import session_scope
from regbatch.errors import InvalidInputError, Problem, not_one_of
from regbatch.services.batches import parse_uuid
from regbatch.statuses import StepStatus
from regbatch.steps import StepKey, step_label
from regbatch.views import BatchView, JobView

ExportFormat = Literal["csv", "json"]
CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}

# (column, step, key path in that step's result_data)
PLATFORM_FIELDS: tuple[tuple[str, StepKey, tuple[str, ...]], ...] = (
    ("platform_account_id", StepKey.ACCOUNT_REGISTRATION, ("account_id",)),
    ("platform_restaurant_id", StepKey.RESTAURANT_REGISTRATION, ("platform_restaurant_id",)),
    ("subdomain", StepKey.RESTAURANT_REGISTRATION, ("subdomain",)),
    ("ordering_url", StepKey.RESTAURANT_REGISTRATION, ("urls", "ordering")),
    ("admin_url", StepKey.RESTAURANT_REGISTRATION, ("urls", "admin")),
    ("website_url", StepKey.WEBSITE_CONFIGURATION, ("website_url",)),
    ("stripe_connect_url", StepKey.PAYMENT_CONFIGURATION, ("stripe_connect_url",)),
    ("platform_menu_id", StepKey.MENU_IMPORT, ("platform_menu_id",)),
    ("onboarding_user_id", StepKey.ONBOARDING_USER, ("onboarding_user_id",)),
)


class ExportRow(BaseModel):
    """One restaurant of an exported batch."""

    restaurant_id: uuid.UUID
    restaurant_name: str
    status: str
    failing_step: str | None
    error: str | None
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    platform_account_id: str | None = None
    platform_restaurant_id: str | None = None
    subdomain: str | None = None
    ordering_url: str | None = None
    admin_url: str | None = None
    website_url: str | None = None
    stripe_connect_url: str | None = None
    platform_menu_id: str | None = None
    onboarding_user_id: str | None = None
    plugin_results: dict[str, Any] | None = None
    """The results of the steps plugins ran (their extra steps, the built-in steps their
    handlers replaced), by step key; a JSON cell in CSV."""


class ExportDocument(BaseModel):
    """The JSON export: the batch (without its jobs) and one row per restaurant."""

    batch: BatchView
    rows: list[ExportRow]


COLUMNS = tuple(ExportRow.model_fields)


def export_rows(detail_jobs: list[JobView]) -> list[ExportRow]:
    """The export rows of a batch's jobs, in batch order."""
    return [_row(job) for job in detail_jobs]


def export_batch(
    batch_id: str | uuid.UUID, organisation_id: uuid.UUID | None, fmt: str = "csv"
) -> tuple[str, str]:
    """(content type, body) of the batch's results in `fmt` ('csv' or 'json').

    NotFoundError when the batch is not in `organisation_id`; InvalidInputError for another
    format.
    """
    if fmt not in CONTENT_TYPES:
        raise InvalidInputError(
            f"cannot export as {fmt!r}",
            [Problem("format", not_one_of("format", fmt, ("csv", "json")))],
        )
    bid = parse_uuid(batch_id, "batch_id")
    with session_scope() as session:
        detail = batch_detail(session, bid, organisation_id)
    rows = export_rows(detail.jobs)
    if fmt == "json":
        document = ExportDocument(
            batch=BatchView.model_validate(detail.model_dump(exclude={"jobs"})), rows=rows
        )
        return CONTENT_TYPES["json"], document.model_dump_json(indent=2)
    return CONTENT_TYPES["csv"], _csv(rows)


def _row(job: JobView) -> ExportRow:
    by_key = {step.step_key: step for step in job.steps}
    failed = next((s for s in job.steps if s.status == StepStatus.FAILED), None)
    duration = None
    if job.started_at is not None and job.completed_at is not None:
        duration = round((job.completed_at - job.started_at).total_seconds(), 3)
    platform: dict[str, str | None] = {}
    for column, key, path in PLATFORM_FIELDS:
        step = by_key.get(key)
        platform[column] = _dig(step.result_data, path) if step is not None else None
    plugin_results = {s.step_key: s.result_data for s in job.steps if s.handler is not None}
    return ExportRow(
        restaurant_id=job.restaurant_id,
        restaurant_name=job.restaurant_name,
        status=job.status,
        failing_step=step_label(failed.step_number, failed.step_key) if failed else None,
        error=(failed.error_message if failed else None) or job.error_message,
        attempts=sum(step.attempts for step in job.steps),
        started_at=job.started_at,
        completed_at=job.completed_at,
        duration_seconds=duration,
        plugin_results=plugin_results or None,
        **platform,
    )


def _dig(data: dict[str, Any] | None, path: tuple[str, ...]) -> str | None:
    value: Any = data
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return None if value is None else str(value)


def _csv(rows: list[ExportRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in json.loads(row.model_dump_json()).items()})
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula is prefixed with a quote."""
    if isinstance(value, dict):
        value = json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
