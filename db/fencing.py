"""Fencing: every write a runner makes for a batch first proves that its lease still holds.

`hold(session, lease, mode)` reads the batch's lease owner and token and raises LeaseLostError
when they are not the runner's own. On PostgreSQL it first takes the batch's advisory lock for
the rest of the transaction: shared for a runner's writes (they never wait for one another),
exclusive for whatever changes who holds the batch or what it was asked to do (a takeover, a
pause, a cancel: `db.batches.get_batch(lock=True)` takes it). So a takeover, a pause or a cancel
waits for the runner's writes in flight, and every later write sees its result. Advisory locks
live in the lock manager only: no row is rewritten, nothing is logged, whatever the concurrency.
On SQLite every write transaction is exclusive already (BEGIN IMMEDIATE, see db/engine.py).

    READ      no lock          a read that a stale lease must not outlive (requested_action)
    SHARE     shared           step attempts, their outcomes, job status changes
    BATCH     exclusive        the runner's batch-level changes (finish, breaker, pause)

A transaction takes the strongest lock it will need here, first, and never upgrades it later
(two upgrades would deadlock each other).

A step's moves take the lock and then check the lease inside their own UPDATE (`fenced` builds
such a statement, `fenced_move` runs it): the row moves only if the lease holds, and the batch's
status and request come back with it. When it matches nothing, the caller explains why with
`hold` and the plain move (a lost lease, a pause or cancel, a move the state machine forbids, a
repeated write); the common case costs one statement fewer, and the check is the same one.

Every `hold` or `fenced_move` that finds the lease valid leaves what it read in the session
(`sighting`): the runner's ledger answers "was a pause or cancel asked?" from a sighting a few
milliseconds old instead of a transaction of its own (runner/ledger.py).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

from sqlalchemy import Row, Table, Update, bindparam, exists, func, select
from sqlalchemy.orm import Session

from regbatch.db.models import Batch
from regbatch.errors import BatchStoppingError, LeaseLostError, NotFoundError
from regbatch.lease import Lease
from regbatch.statuses import BatchStatus, RequestedAction


class LockMode(Enum):
    READ = "read"
    SHARE = "share"
    BATCH = "batch"


@dataclass(frozen=True)
class Held:
    """The batch as a fenced transaction sees it."""

    status: BatchStatus
    requested_action: RequestedAction | None


@dataclass(frozen=True)
class Sighting:
    """What a `hold` read for `lease`, and when (time.monotonic(), taken before the read)."""

    lease: Lease
    held: Held
    at: float


_SIGHTING = "regbatch.fencing.sighting"  # the key of the latest one in session.info


# Every step attempt and outcome runs these two: built once, run with parameters on the
# session's connection (building a statement anew costs more CPU than running it).
_BATCHES = cast(Table, Batch.__table__)
_LOCK_SHARED = select(func.pg_advisory_xact_lock_shared(bindparam("p_key")))
_LEASE = select(
    _BATCHES.c.lease_owner,
    _BATCHES.c.lease_token,
    _BATCHES.c.status,
    _BATCHES.c.requested_action,
).where(_BATCHES.c.id == bindparam("p_batch"))


def advisory_key(batch_id: uuid.UUID) -> int:
    """The batch's advisory lock key: its id's first 64 bits, as PostgreSQL's signed bigint."""
    return int.from_bytes(batch_id.bytes[:8], "big", signed=True)


def lock_batch_exclusively(session: Session, batch_id: uuid.UUID) -> None:
    """Wait for every runner write of the batch in flight; hold off new ones until commit."""
    if _postgresql(session):
        session.execute(select(func.pg_advisory_xact_lock(advisory_key(batch_id))))


def fenced(statement: Update, to_start: bool = False) -> Update:
    """`statement` (an UPDATE of one row) made to match only while the lease given as p_batch,
    p_token and p_owner holds its batch (and, `to_start`, nothing was asked of it), returning
    the batch's status and request as `batch_status` and `batch_action` after its own columns."""
    batch = _BATCHES.c.id == bindparam("p_batch")
    holds = [batch, _BATCHES.c.lease_token == bindparam("p_token")]
    holds.append(_BATCHES.c.lease_owner == bindparam("p_owner"))
    if to_start:
        holds.append(_BATCHES.c.requested_action.is_(None))
    return statement.where(exists().where(*holds)).returning(
        select(_BATCHES.c.status).where(batch).scalar_subquery().label("batch_status"),
        select(_BATCHES.c.requested_action).where(batch).scalar_subquery().label("batch_action"),
    )


def fenced_move(
    session: Session, lease: Lease, statement: Update, parameters: dict[str, Any]
) -> Row[Any] | None:
    """Run a `fenced` statement under the batch's shared lock; its row, or None when it matched
    nothing (the caller's `hold` and plain move then say why)."""
    connection = session.connection()
    _lock_shared(session, lease)
    at = time.monotonic()
    lease_parameters = {"p_batch": lease.batch_id, "p_token": lease.token, "p_owner": lease.owner}
    row = connection.execute(statement, {**parameters, **lease_parameters}).one_or_none()
    if row is not None:
        held = _held(row.batch_status, row.batch_action)
        session.info[_SIGHTING] = Sighting(lease, held, at)
    return row


def _lock_shared(session: Session, lease: Lease) -> None:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK_SHARED, {"p_key": advisory_key(lease.batch_id)})


def hold(session: Session, lease: Lease, mode: LockMode = LockMode.SHARE) -> Held:
    """Check that `lease` still holds its batch and keep it held until this transaction ends."""
    if mode is LockMode.BATCH:
        lock_batch_exclusively(session, lease.batch_id)
    connection = session.connection()
    if mode is LockMode.SHARE:
        _lock_shared(session, lease)
    at = time.monotonic()
    row = connection.execute(_LEASE, {"p_batch": lease.batch_id}).one_or_none()
    if row is None:
        raise NotFoundError(f"batch {lease.batch_id} does not exist; it was deleted while running")
    if row.lease_token != lease.token or row.lease_owner != lease.owner:
        raise LeaseLostError(_lost_message(lease, row.status, row.lease_owner, row.lease_token))
    held = _held(row.status, row.requested_action)
    session.info[_SIGHTING] = Sighting(lease, held, at)
    return held


def _held(status: str, requested_action: str | None) -> Held:
    """The batch's status and request columns, as a fenced transaction read them."""
    return Held(
        BatchStatus(status), RequestedAction(requested_action) if requested_action else None
    )


def sighting(session: Session) -> Sighting | None:
    """The latest valid lease this session's `hold` found (the read stays true of its moment
    whether or not the transaction then commits); None if it found none."""
    found = session.info.get(_SIGHTING)
    return found if isinstance(found, Sighting) else None


def hold_to_start(session: Session, lease: Lease) -> Held:
    """`hold` for a step about to start: refused once a pause or cancel has been asked."""
    held = hold(session, lease)
    if held.requested_action is not None:
        raise BatchStoppingError(
            f"batch {lease.batch_id} was asked to {held.requested_action}; no new step starts "
            "(the steps already running finish)"
        )
    return held


def _postgresql(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "postgresql"


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
