"""Who is calling: `Authorization: Bearer <API key>` names the caller's organisation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An organisation's API key (`regbatch org key create ORG`), as a bearer token.",
)

UNAUTHORIZED = (
    "missing or invalid API key: send 'Authorization: Bearer <key>' with a live key of your "
    "organisation (create one with `regbatch org key create ORG`)"
)


@dataclass(frozen=True)
class Caller:
    """The organisation a request acts for, and the key it used (for the audit log)."""

    organisation_id: uuid.UUID
    key_id: uuid.UUID
    actor: str


def current_caller(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller of a request, or 401 when it has no live key."""
    from regbatch.services.api_keys import authenticate

    key = authenticate(credentials.credentials) if credentials else None
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"}
        )
    actor = f"api:{key.name}"[:180] + f" ({key.prefix})"
    return Caller(organisation_id=key.organisation_id, key_id=key.id, actor=actor)


CallerDep = Annotated[Caller, Depends(current_caller)]
