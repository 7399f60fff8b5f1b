"""Idempotency keys of REST requests: claim a key for a request, then store its answer or release
the key. Functions take a session and never commit.

A key belongs to one organisation and names one request (route, query and body). Claiming it
inserts a row without an answer; the one insert that wins the unique (organisation_id, key)
decides which of several concurrent requests runs. Rows live 24 hours; a claim still unanswered
after 5 minutes is taken to be abandoned (its process died) and may be claimed again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from regbatch.db.models import IdempotencyKey

KEPT_FOR = timedelta(hours=24)
ABANDONED_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class KeyedRequest:
    """A request carrying an Idempotency-Key, as the key store compares requests."""

    organisation_id: uuid.UUID
    key: str
    method: str
    path: str
    request_hash: str  # SHA-256 of the query and body; the body itself is never stored


@dataclass(frozen=True)
class Answer:
    """A stored answer: what the first request with the key was told."""

    status_code: int
    body: str  # JSON text, exactly as sent
    location: str | None = None


@dataclass(frozen=True)
class Claimed:
    """This request now holds the key: run it, then `complete` or `release`."""

    claim_id: uuid.UUID


@dataclass(frozen=True)
class Answered:
    """The same request was answered before: send its answer again."""

    answer: Answer


@dataclass(frozen=True)
class InProgress:
    """The same request is still being processed (or its key was just released): ask again."""


@dataclass(frozen=True)
class UsedElsewhere:
    """The key was first used by another request: this route, or another one."""

    method: str
    path: str


ClaimResult = Claimed | Answered | InProgress | UsedElsewhere


def claim(session: Session, request: KeyedRequest, now: datetime) -> ClaimResult:
    """Claim the key for `request`, or say what holds it (removing expired keys first)."""
    _forget_expired(session, now)
    claim_id = uuid.uuid4()
    if _insert_if_absent(session, request, claim_id, now):
        return Claimed(claim_id)
    row = session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.organisation_id == request.organisation_id,
            IdempotencyKey.key == request.key,
        )
    )
    if row is None:  # released between the insert and this read
        return InProgress()
    if (row.method, row.path, row.request_hash) != (
        request.method,
        request.path,
        request.request_hash,
    ):
        return UsedElsewhere(row.method, row.path)
    if row.completed_at is None or row.status_code is None or row.response_body is None:
        return InProgress()
    return Answered(Answer(row.status_code, row.response_body, row.response_location))


def complete(session: Session, claim_id: uuid.UUID, answer: Answer, now: datetime) -> bool:
    """Store the answer of a claimed key; False when the claim was lost (abandoned, expired)."""
    stored = session.scalar(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == claim_id, IdempotencyKey.completed_at.is_(None))
        .values(
            status_code=answer.status_code,
            response_body=answer.body,
            response_location=answer.location,
            completed_at=now,
        )
        .returning(IdempotencyKey.id)
    )
    return stored is not None


def release(session: Session, claim_id: uuid.UUID) -> None:
    """Give a claimed key up unanswered, so that the client may send the request again."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.id == claim_id, IdempotencyKey.completed_at.is_(None)
        )
    )


def _forget_expired(session: Session, now: datetime) -> None:
    # Opportunistic: every claim sweeps, and the created_at index keeps it cheap.
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.created_at < now - ABANDONED_AFTER,
            or_(
                IdempotencyKey.completed_at.is_(None),
                IdempotencyKey.created_at < now - KEPT_FOR,
            ),
        )
    )


def _insert_if_absent(
    session: Session, request: KeyedRequest, claim_id: uuid.UUID, now: datetime
) -> bool:
    values = {
        "id": claim_id,
        "organisation_id": request.organisation_id,
        "key": request.key,
        "method": request.method,
        "path": request.path,
        "request_hash": request.request_hash,
        "created_at": now,
    }
    # ON CONFLICT DO NOTHING: a concurrent claimer waits for the winner's commit, then inserts
    # nothing instead of failing the transaction.
    conflict = ["organisation_id", "key"]
    if session.get_bind().dialect.name == "postgresql":
        statement: Any = postgresql.insert(IdempotencyKey).values(values)
    else:
        statement = sqlite.insert(IdempotencyKey).values(values)
    statement = statement.on_conflict_do_nothing(index_elements=conflict)
    # RETURNING: psycopg reports no row count for an INSERT ... ON CONFLICT DO NOTHING
    inserted = session.scalar(statement.returning(IdempotencyKey.id))
    return inserted is not None
