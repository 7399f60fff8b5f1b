"""API keys: stored as hashes, shown once, revocable; `regbatch org key ...`."""

from __future__ import annotations

import hashlib
import secrets
import uuid

import pytest
from sqlalchemy import select

from regbatch.db.engine import session_scope
from regbatch.db.models import ApiKey
from regbatch.errors import InvalidInputError
from regbatch.services.api_keys import authenticate, create_api_key, revoke_api_key
from tests.cli import cli, cli_json


def test_create_list_and_revoke_from_the_cli() -> None:
    org = cli_json("org", "create", f"Keys {secrets.token_hex(3)}")
    created = cli_json("org", "key", "create", org["name"], "--name", "crm")
    assert set(created) == {"id", "api_key", "prefix", "organisation_id"}
    assert created["organisation_id"] == org["id"]
    assert created["api_key"].startswith("rk_") and len(created["api_key"]) >= 3 + 32
    assert created["prefix"] == created["api_key"][:8]
    with session_scope() as session:
        row = session.get(ApiKey, uuid.UUID(created["id"]))
        assert row is not None
        assert row.key_hash == hashlib.sha256(created["api_key"].encode()).hexdigest()
        assert created["api_key"] not in (row.key_hash, row.prefix, row.name)

    listed = cli_json("org", "key", "list", org["id"])
    assert [k["id"] for k in listed] == [created["id"]]
    assert "api_key" not in listed[0] and "key_hash" not in listed[0]
    assert listed[0]["last_used_at"] is None
    assert authenticate(created["api_key"]) is not None
    assert cli_json("org", "key", "list", org["id"])[0]["last_used_at"] is not None
    assert created["api_key"] not in cli("org", "key", "list", org["id"]).stdout

    revoked = cli_json("org", "key", "revoke", created["id"], "--org", org["id"])
    assert revoked["revoked_at"] is not None
    assert authenticate(created["api_key"]) is None
    human = cli("org", "key", "create", org["id"])
    assert human.stdout.strip().startswith("rk_") and "not shown again" in human.stderr


def test_cli_errors() -> None:
    org = cli_json("org", "create", f"Keys {secrets.token_hex(3)}")
    other = cli_json("org", "create", f"Other {secrets.token_hex(3)}")
    theirs = cli_json("org", "key", "create", other["id"])
    missing = cli("org", "key", "revoke", theirs["id"], "--org", org["id"], check=False)
    assert missing.returncode == 1 and "does not exist in this organisation" in missing.stderr
    assert authenticate(theirs["api_key"]) is not None
    nobody = cli("org", "key", "create", "no such org", check=False)
    assert nobody.returncode == 1 and "does not exist" in nobody.stderr


def test_keys_are_random_and_their_names_checked(org_id: uuid.UUID) -> None:
    first, second = create_api_key(org_id, "a"), create_api_key(org_id, "b")
    assert first.api_key != second.api_key and first.id != second.id
    assert authenticate(first.api_key).organisation_id == org_id  # type: ignore[union-attr]
    for bad in ("", "rk_", "rk_" + "x" * 43, first.api_key + "x", first.api_key.upper()):
        assert authenticate(bad) is None
    with pytest.raises(InvalidInputError, match="name is empty"):
        create_api_key(org_id, "  ")
    with pytest.raises(InvalidInputError, match="too long"):
        create_api_key(org_id, "n" * 201)
    again = revoke_api_key(org_id, first.id)
    assert revoke_api_key(org_id, first.id).revoked_at == again.revoked_at
    with session_scope() as session:
        stored = session.scalars(select(ApiKey.key_hash).where(ApiKey.organisation_id == org_id))
        assert all(len(h) == 64 for h in stored)
