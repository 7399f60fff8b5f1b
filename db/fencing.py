"""Fencing: every write a runner makes for a batch first proves that its lease still holds.

`hold(session, lease, mode)` reads the batch's lease owner and token under a row lock that lasts
until the transaction ends, and raises LeaseLostError when they are not the runner's own. The
lock modes are chosen so that a runner's concurrent writes never wait for one another, while a
takeover, a pause or a cancel (which lock the batch FOR UPDATE) waits for the writes in flight and
every later write sees its result:

    SHARE     FOR KEY SHARE      step attempts and their outcomes
    COUNTERS  FOR NO KEY UPDATE  job status changes (they recompute the batch's counters)
    BATCH     FOR UPDATE         the runner's batch-level changes (finish, breaker, pause)

A transaction takes the strongest lock it will need here, first, and never upgrades it later
(an upgrade queued behind a waiting takeover would deadlock with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Batch
from regbatch.errors import BatchStoppingError, LeaseLostError, NotFoundError
from regbatch.lease import Lease
from regbatch.statuses import BatchStatus, RequestedAction


class LockMode(Enum):
    SHARE = "share"
    COUNTERS = "counters"
    BATCH = "batch"


@dataclass(frozen=True)
class Held:
    """The batch as a fenced transaction sees it."""

    status: BatchStatus
    requested_action: RequestedAction | None


def hold(session: Session, lease: Lease, mode: LockMode = LockMode.SHARE) -> Held:
    """Check that `lease` still holds its batch and keep it held until this transaction ends."""
    query = select(
        Batch.lease_owner, Batch.lease_token, Batch.status, Batch.requested_action
    ).where(Batch.id == lease.batch_id)
    if mode is LockMode.SHARE:
        query = query.with_for_update(read=True, key_share=True)
    elif mode is LockMode.COUNTERS:
        query = query.with_for_update(key_share=True)
    else:
        query = query.with_for_update()
    row = session.execute(query).one_or_none()
    if row is None:
        raise NotFoundError(f"batch {lease.batch_id} does not exist; it was deleted while running")
    if row.lease_token != lease.token or row.lease_owner != lease.owner:
        raise LeaseLostError(_lost_message(lease, row.status, row.lease_owner, row.lease_token))
    action = RequestedAction(row.requested_action) if row.requested_action else None
    return Held(BatchStatus(row.status), action)


def hold_to_start(session: Session, lease: Lease) -> Held:
    """`hold` for a step about to start: refused once a pause or cancel has been asked."""
    held = hold(session, lease)
    if held.requested_action is not None:
        raise BatchStoppingError(
            f"batch {lease.batch_id} was asked to {held.requested_action}; no new step starts "
            "(the steps already running finish)"
        )
    return held


def _lost_message(lease: Lease, status: str, owner: str | None, token: int) -> str:
    mine = f"this runner ({lease.owner}, fencing token {lease.token})"
    if status != BatchStatus.IN_PROGRESS:
        return (
            f"batch {lease.batch_id} is now {status!r}; {mine} no longer holds it and stops "
            "without writing anything more"
        )
    return (
        f"batch {lease.batch_id} was taken over by {owner or 'another runner'} (fencing token "
        f"{token}); {mine} lost its lease and stops at once, and the new owner resumes the batch"
    )
