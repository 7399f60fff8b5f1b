"""regbatch's Python API: everything the CLI and the REST API do, as plain functions.

    import regbatch
    batch_id = regbatch.create_batch("Acme Foods", name="Auckland Q4",
                                     restaurant_ids=[...], execution_mode="parallel",
                                     concurrency=5)
    detail = regbatch.run_batch(batch_id)        # run it here, blocking, until it ends or pauses
    # or: regbatch.start_batch(batch_id)         # queue it on Prefect (`regbatch serve` runs it)
    print(detail.status, detail.completed, detail.failed)
    if detail.failed:
        retry_id = regbatch.retry_failed(batch_id)

Organisations are given by name or id. When `organisation` is given to a function that takes a
batch id, a batch of another organisation is reported as not found (as the REST API does).
Errors are the same as everywhere: `regbatch.errors.InvalidInputError` (every problem listed),
`NotFoundError`, `ConflictError` (the batch's status does not allow it; names the status),
`ConfigurationError`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from regbatch.batch_rules import BREAKER_MIN_FINISHED, BREAKER_THRESHOLD
from regbatch.services import batches as _batches
from regbatch.services import lifecycle as _lifecycle
from regbatch.services.starts import StartResult
from regbatch.views import BatchDetail, BatchPage

__all__ = [
    "cancel_batch",
    "create_batch",
    "export_batch",
    "get_batch",
    "list_batches",
    "pause_batch",
    "recover",
    "register_restaurant",
    "resume_batch",
    "retry_failed",
    "run_batch",
    "start_batch",
]


def _org_id(organisation: str | uuid.UUID | None) -> uuid.UUID | None:
    if organisation is None or isinstance(organisation, uuid.UUID):
        return organisation
    from regbatch.services.catalog import organisation_id

    return organisation_id(organisation)


def create_batch(
    organisation: str | uuid.UUID,
    *,
    name: str,
    restaurant_ids: Sequence[str | uuid.UUID],
    settings: Mapping[str, Any] | None = None,
    execution_mode: Literal["sequential", "parallel", "distributed"] = "sequential",
    concurrency: int | None = None,
    breaker_threshold: float = BREAKER_THRESHOLD,
    breaker_min_finished: int = BREAKER_MIN_FINISHED,
    created_by: str = "user:python",
) -> uuid.UUID:
    """Create a draft batch (one job and its steps per restaurant); every check first."""
    return _batches.create_batch(
        organisation,
        name=name,
        restaurant_ids=restaurant_ids,
        settings=settings,
        execution_mode=execution_mode,
        concurrency=concurrency,
        breaker_threshold=breaker_threshold,
        breaker_min_finished=breaker_min_finished,
        created_by=created_by,
    )


def start_batch(
    batch_id: str | uuid.UUID,
    *,
    organisation: str | uuid.UUID | None = None,
    actor: str = "user:python",
) -> StartResult:
    """Queue the batch on Prefect (the `registration-batch` deployment runs it)."""
    from regbatch.offline import apply_offline_defaults
    from regbatch.services.starts import start_batch as start

    apply_offline_defaults()  # this is where a Python program starts talking to Prefect
    return start(batch_id, actor, _org_id(organisation))


def run_batch(batch_id: str | uuid.UUID, *, actor: str = "user:python") -> BatchDetail:
    """Run the batch in this process until it completes, fails, pauses or is cancelled."""
    from regbatch.api.running import run_batch as run

    return run(batch_id, started_by=actor)


def pause_batch(
    batch_id: str | uuid.UUID,
    *,
    organisation: str | uuid.UUID | None = None,
    actor: str = "user:python",
) -> BatchDetail:
    """Ask a running batch to pause at its next step boundary."""
    return _lifecycle.pause_batch(batch_id, actor, _org_id(organisation))


def resume_batch(
    batch_id: str | uuid.UUID,
    *,
    organisation: str | uuid.UUID | None = None,
    actor: str = "user:python",
) -> BatchDetail:
    """Make a paused batch runnable again; run it (`run_batch`) or start it (`start_batch`)."""
    return _lifecycle.resume_batch(batch_id, actor, _org_id(organisation))


def cancel_batch(
    batch_id: str | uuid.UUID,
    *,
    organisation: str | uuid.UUID | None = None,
    actor: str = "user:python",
) -> BatchDetail:
    """Cancel now if nothing runs the batch, else at its runner's next step boundary."""
    from regbatch.api.lifecycle import cancel_batch as cancel_and_announce

    return cancel_and_announce(batch_id, actor, _org_id(organisation))


def retry_failed(
    batch_id: str | uuid.UUID,
    *,
    organisation: str | uuid.UUID | None = None,
    actor: str = "user:python",
) -> uuid.UUID:
    """The linked batch of the failed restaurants (a draft), or the one an earlier call made;
    returns its id."""
    return _lifecycle.retry_failed(batch_id, actor, _org_id(organisation)).batch_id


def get_batch(
    batch_id: str | uuid.UUID, *, organisation: str | uuid.UUID | None = None
) -> BatchDetail:
    """The batch with its jobs and their steps."""
    return _batches.get_batch(batch_id, _org_id(organisation))


def list_batches(
    organisation: str | uuid.UUID,
    *,
    statuses: Sequence[str] = (),
    created_after: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> BatchPage:
    """One page of the organisation's batches, newest first (pass `next_cursor` on)."""
    return _batches.list_batches(
        organisation, statuses=statuses, created_after=created_after, limit=limit, cursor=cursor
    )


def export_batch(
    batch_id: str | uuid.UUID,
    fmt: Literal["csv", "json"] = "json",
    *,
    organisation: str | uuid.UUID | None = None,
) -> str:
    """The batch's results, one row per restaurant, as CSV or JSON text."""
    from regbatch.services.exporting import export_batch as export

    _content_type, body = export(
        _batches.parse_uuid(batch_id, "batch_id"), _org_id(organisation), fmt
    )
    return body


def recover(*, organisation: str | uuid.UUID | None = None) -> list[BatchDetail]:
    """Take over every stalled batch (its runner's lease expired) and run it to its end here;
    only the organisation's when one is given. Each takeover is recorded as `system:recovery`."""
    from regbatch.api.running import recover as recover_here

    return recover_here(None if organisation is None else str(organisation))


def register_restaurant(
    organisation: str | uuid.UUID,
    restaurant_id: str | uuid.UUID,
    *,
    settings: Mapping[str, Any] | None = None,
    run_here: bool = True,
    actor: str = "user:python",
) -> BatchDetail | StartResult:
    """Register one restaurant: a batch of one, run here (default) or started on Prefect."""
    batch_id = _batches.create_single(
        organisation, restaurant_id, settings=settings, created_by=actor
    )
    if run_here:
        return run_batch(batch_id, actor=actor)
    return start_batch(batch_id, actor=actor)
