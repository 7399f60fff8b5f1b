"""Which batches recovery takes over: in progress with an expired lease, of one organisation
when an organisation is given."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

import regbatch
from regbatch.db import lifecycle
from regbatch.db.engine import session_scope
from regbatch.db.types import utcnow
from regbatch.errors import NotFoundError
from regbatch.services.batches import get_batch
from tests.cli import cli
from tests.factories import lease_of, make_org
from tests.integration.rest_support import new_draft, set_status


def _stalled(organisation_id: uuid.UUID) -> uuid.UUID:
    """A batch in progress whose runner's lease expired a minute ago."""
    batch_id = new_draft(organisation_id)
    set_status(batch_id, "in_progress", lease_expires_at=utcnow() - timedelta(minutes=1))
    return batch_id


def test_stalled_batches_are_the_expired_ones_and_an_organisation_sees_only_its_own(
    org_id: uuid.UUID,
) -> None:
    with session_scope() as session:
        other_org = make_org(session)
    ours, theirs = _stalled(org_id), _stalled(other_org)
    live = new_draft(org_id)
    set_status(live, "in_progress")  # a live lease: its runner is still there
    draft = new_draft(org_id)

    with session_scope() as session:
        everyone = lifecycle.stalled_batches(session)
        only_ours = lifecycle.stalled_batches(session, organisation=str(org_id))
        only_theirs = lifecycle.stalled_batches(session, organisation=str(other_org))
    assert {ours, theirs} <= set(everyone)
    assert live not in everyone and draft not in everyone
    assert only_ours == [ours]
    assert only_theirs == [theirs]


def test_recover_of_an_unknown_organisation_names_it_and_takes_over_nothing(
    org_id: uuid.UUID,
) -> None:
    stalled = _stalled(org_id)
    before = lease_of(stalled)

    result = cli("recover", "--org", "No Such Organisation", check=False)

    assert result.returncode == 1
    assert "No Such Organisation" in result.stderr and "organisation" in result.stderr
    assert get_batch(stalled).status == "in_progress"
    assert lease_of(stalled) == before  # nobody took it over


@pytest.mark.parametrize("unknown", ["No Such Organisation", uuid.UUID(int=7)])
def test_the_python_api_refuses_an_unknown_organisation_before_taking_anything_over(
    org_id: uuid.UUID, unknown: str | uuid.UUID
) -> None:
    stalled = _stalled(org_id)
    before = lease_of(stalled)

    with pytest.raises(NotFoundError, match=f"organisation '{unknown}' does not exist"):
        regbatch.recover(organisation=unknown)

    assert lease_of(stalled) == before
