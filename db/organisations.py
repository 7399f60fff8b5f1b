"""Organisations: the tenants every other row belongs to."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from regbatch.db.models import Organisation
from regbatch.errors import InvalidInputError, NotFoundError, Problem


def create_organisation(session: Session, name: str) -> Organisation:
    """A new organisation; its name must be new and non-empty."""
    name = name.strip()
    if not name:
        raise InvalidInputError("organisation name is empty; give it a name, e.g. 'Acme Foods'")
    if session.scalar(select(Organisation.id).where(Organisation.name == name)):
        raise InvalidInputError(
            f"organisation {name!r} already exists",
            [Problem("name", f"{name!r} is taken; choose another name or use the existing one")],
        )
    organisation = Organisation(name=name)
    session.add(organisation)
    session.flush()
    return organisation


def find_organisation(session: Session, ref: str) -> Organisation:
    """The organisation whose id or name is `ref`; NotFoundError says how to list them."""
    query = select(Organisation)
    try:
        query = query.where(Organisation.id == uuid.UUID(ref))
    except ValueError:
        query = query.where(Organisation.name == ref)
    organisation = session.scalar(query)
    if organisation is None:
        raise NotFoundError(
            f"organisation {ref!r} does not exist; create it with `regbatch org create NAME` "
            "or pass an existing id or name"
        )
    return organisation
