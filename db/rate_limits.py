"""The turn of a platform rate limit shared by every process (account creation).

One row per limit. A process takes the turn when nobody holds it and the spacing since the last
request has passed, holds it while its one request is out (renewing `held_until`), and gives it
back saying when that request was answered: the next turn is due `spacing` after it. A holder that
died stops renewing and is replaced once its `held_until` has passed, never sooner than
`spacing` after it took the turn. Waiters ask again when the turn is due (every 0.2 s while
someone holds it, since it may be given back early; runner/account_turn.py sleeps at most 5 s
at a time), so the limit never idles while someone waits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from regbatch.db.models import RateLimitSlot
from regbatch.db.types import utcnow

# While the turn is held by a request in flight, ask again this often.
HELD_POLL_S = 0.2


def _ensure(session: Session, name: str) -> RateLimitSlot:
    """The limit's row, created on first use, locked for this transaction."""
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert  # type: ignore[union-attr]
    now = utcnow()
    session.execute(
        insert(RateLimitSlot)
        .values(name=name, next_free_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    row = session.scalar(
        select(RateLimitSlot)
        .where(RateLimitSlot.name == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def take_turn(session: Session, name: str, holder: str, hold_s: float, spacing_s: float) -> float:
    """Take the turn of limit `name` for `holder`: 0.0 when taken, else seconds to wait first.

    A taken turn is held for `hold_s` (renewed while its request is out), and the next turn is
    due `spacing_s` from now at the earliest, even if the holder dies before it says more.
    """
    row = _ensure(session, name)
    now = utcnow()
    if row.holder is not None and row.held_until is not None and row.held_until > now:
        return min(HELD_POLL_S, (row.held_until - now).total_seconds())
    if row.next_free_at > now:
        return (row.next_free_at - now).total_seconds()
    row.holder = holder
    row.held_until = now + timedelta(seconds=hold_s)
    row.next_free_at = now + timedelta(seconds=spacing_s)
    row.updated_at = now
    return 0.0


def keep_turn(session: Session, name: str, holder: str, hold_s: float) -> bool:
    """Extend `holder`'s turn by `hold_s`; False when it is no longer theirs."""
    row = _ensure(session, name)
    if row.holder != holder:
        return False
    row.held_until = utcnow() + timedelta(seconds=hold_s)
    return True


def give_back_turn(
    session: Session, name: str, holder: str, answered_at: datetime | None, spacing_s: float
) -> None:
    """Release `holder`'s turn; a request it made makes the next turn due `spacing_s` after
    its answer."""
    row = _ensure(session, name)
    if answered_at is not None:
        row.next_free_at = max(row.next_free_at, answered_at + timedelta(seconds=spacing_s))
    if row.holder == holder:
        row.holder = row.held_until = None
    row.updated_at = utcnow()
