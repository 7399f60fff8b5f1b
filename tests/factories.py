"""Test data with random suffixes, so tests never need an empty database."""

from __future__ import annotations

import copy
import json
import secrets
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from regbatch.db.organisations import create_organisation
from regbatch.db.restaurants import import_restaurants

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "restaurants.json"


def sample_rows() -> list[dict[str, Any]]:
    """The shipped sample restaurants (all pass pre-flight), as import rows."""
    return json.loads(EXAMPLES.read_text())


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def make_org(session: Session) -> uuid.UUID:
    return create_organisation(session, unique("org")).id


def restaurant_row(index: int = 0, **changes: Any) -> dict[str, Any]:
    """Sample row `index` with a unique name, email and subdomain, plus `changes`."""
    row = copy.deepcopy(sample_rows()[index % len(sample_rows())])
    tag = secrets.token_hex(3)
    row["name"] = f"{row['name']} {tag}"
    row["email"] = f"owner-{tag}@example.com"
    row.pop("subdomain", None)
    row.update(changes)
    return {k: v for k, v in row.items() if v is not None}


def make_restaurants(
    session: Session, org_id: uuid.UUID, count: int = 1, **changes: Any
) -> list[uuid.UUID]:
    rows = [restaurant_row(i, **changes) for i in range(count)]
    return [r.id for r in import_restaurants(session, org_id, rows)]


def lease_of(batch_id: uuid.UUID) -> tuple[str | None, datetime | None, int]:
    """The batch's lease as its row holds it: (owner, expiry, fencing token)."""
    from regbatch.db.engine import session_scope
    from regbatch.db.models import Batch

    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return batch.lease_owner, batch.lease_expires_at, batch.lease_token
