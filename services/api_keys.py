"""API keys of organisations: create (the clear key shown once), list, revoke, authenticate.
Each call is one transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from regbatch.db import api_keys as data
from regbatch.db.engine import session_scope
from regbatch.db.organisations import find_organisation
from regbatch.services.batches import parse_uuid


class ApiKeyView(BaseModel):
    """A key as listed: never the key itself, nor its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organisation_id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class CreatedApiKey(ApiKeyView):
    """A new key with its clear value, shown this once and never again."""

    api_key: str


def create_api_key(organisation: str | uuid.UUID, name: str = "default") -> CreatedApiKey:
    """A new key for the organisation (id or name); the result holds the clear key, once."""
    with session_scope() as session:
        row, clear = data.create_api_key(session, _org_id(session, organisation), name)
        return CreatedApiKey(**ApiKeyView.model_validate(row).model_dump(), api_key=clear)


def list_api_keys(organisation: str | uuid.UUID) -> list[ApiKeyView]:
    """The organisation's keys (revoked ones too), without their values."""
    with session_scope() as session:
        rows = data.list_api_keys(session, _org_id(session, organisation))
        return [ApiKeyView.model_validate(row) for row in rows]


def revoke_api_key(organisation: str | uuid.UUID, key_id: str | uuid.UUID) -> ApiKeyView:
    """Revoke a key of the organisation; requests with it fail from now on."""
    with session_scope() as session:
        row = data.revoke(session, parse_uuid(key_id, "key_id"), _org_id(session, organisation))
        return ApiKeyView.model_validate(row)


def authenticate(clear_key: str) -> ApiKeyView | None:
    """The live key `clear_key` is (its use recorded), or None when unknown or revoked."""
    with session_scope() as session:
        row = data.authenticate(session, clear_key)
        return ApiKeyView.model_validate(row) if row is not None else None


def _org_id(session: Session, organisation: str | uuid.UUID) -> uuid.UUID:
    if isinstance(organisation, uuid.UUID):
        return organisation
    return find_organisation(session, organisation).id


def key_is_live(key_id: uuid.UUID, organisation_id: uuid.UUID) -> bool:
    """True while the key exists in the organisation and is not revoked (sessions made with
    it end when it is revoked)."""
    with session_scope() as session:
        return data.is_live(session, key_id, organisation_id)
