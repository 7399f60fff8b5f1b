"""API keys: how a program proves which organisation it acts for.

A key is `rk_` and 43 URL-safe random characters (256 bits from `secrets`). Only its SHA-256 hex
digest is stored, with its first 8 characters as a `prefix` that lets people tell keys apart in
lists and logs; the clear key is returned once, by `create_api_key`, and never again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from regbatch.db.models import ApiKey
from regbatch.db.types import utcnow
from regbatch.errors import InvalidInputError, NotFoundError, Problem

KEY_PREFIX = "rk_"
PREFIX_LENGTH = 8
NAME_MAX = 200
# Under steady polling (every few seconds) last_used_at moves at most once a minute: an exact
# time is not worth a row write on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def generate_key() -> str:
    """A new clear key: 'rk_' and 43 URL-safe characters of 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(clear_key: str) -> str:
    """The SHA-256 hex digest stored in place of the key."""
    return hashlib.sha256(clear_key.encode()).hexdigest()


def create_api_key(session: Session, organisation_id: uuid.UUID, name: str) -> tuple[ApiKey, str]:
    """A new key of the organisation: (its row, the clear key, to be shown once)."""
    name = name.strip()
    if not name:
        raise InvalidInputError(
            "API key not created: its name is empty",
            [Problem("name", "is empty; name the key after its user, e.g. 'crm-sync'")],
        )
    if len(name) > NAME_MAX:
        raise InvalidInputError(
            "API key not created: its name is too long",
            [Problem("name", f"has {len(name)} characters; use at most {NAME_MAX}")],
        )
    clear = generate_key()
    row = ApiKey(
        organisation_id=organisation_id,
        name=name,
        prefix=clear[:PREFIX_LENGTH],
        key_hash=hash_key(clear),
    )
    session.add(row)
    session.flush()
    return row, clear


def authenticate(session: Session, clear_key: str) -> ApiKey | None:
    """The live key whose hash matches `clear_key` (its last_used_at updated), else None.

    The lookup is by the digest, so how long it takes tells nothing about the stored keys (an
    attacker controls the input, not its hash); the final comparison is constant-time anyway.
    """
    if not clear_key.startswith(KEY_PREFIX) or len(clear_key) > 200:
        return None
    digest = hash_key(clear_key)
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    if row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.flush()
    return row


def list_api_keys(session: Session, organisation_id: uuid.UUID) -> list[ApiKey]:
    """The organisation's keys, revoked ones included, oldest first."""
    query = select(ApiKey).where(ApiKey.organisation_id == organisation_id)
    return list(session.scalars(query.order_by(ApiKey.created_at, ApiKey.id)))


def revoke(session: Session, key_id: uuid.UUID, organisation_id: uuid.UUID) -> ApiKey:
    """Revoke the key (at once: the next request with it fails); revoking twice changes nothing.

    NotFoundError when the key does not exist in the organisation.
    """
    row = session.scalar(
        select(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.organisation_id == organisation_id)
        .with_for_update()
    )
    if row is None:
        raise NotFoundError(
            f"API key {key_id} does not exist in this organisation; list them with "
            "`regbatch org key list ORG`"
        )
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def is_live(session: Session, key_id: uuid.UUID, organisation_id: uuid.UUID) -> bool:
    """True when the organisation's key `key_id` exists and is not revoked."""
    revoked = session.execute(
        select(ApiKey.revoked_at).where(
            ApiKey.id == key_id, ApiKey.organisation_id == organisation_id
        )
    ).first()
    return revoked is not None and revoked[0] is None
