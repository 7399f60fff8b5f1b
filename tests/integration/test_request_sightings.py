"""The runner's ledger answers "was a pause or cancel asked?" from its latest fenced read.

Every fenced transaction reads the batch's request with the lease (db/fencing.py). The runner's
ledger (runner/ledger.py) answers `requested_action` from that read while it is at most
SIGHTING_FRESH_S old, without a transaction; an older read, another lease's, or a request the
runner made itself sends it to the database. A refused step start is a read too, so a request
that arrives between two reads stops the next step, and the one after it is not even tried.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from regbatch.db import lifecycle
from regbatch.db import steps as ledger_rows
from regbatch.db.engine import session_scope
from regbatch.errors import BatchStoppingError
from regbatch.lease import Lease
from regbatch.ledger import Completed
from regbatch.runner import ledger as runner_ledger
from regbatch.runner.ledger import SqlLedger, recent_hold
from regbatch.statuses import RequestedAction
from regbatch.steps import StepKey
from tests.integration.sql_support import running_batch, sql_sent

pytestmark = pytest.mark.anyio

ACCOUNT, CODE = StepKey.ACCOUNT_REGISTRATION, StepKey.CODE_GENERATION


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fresh_for_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sightings stay fresh for 60 s: what these tests check does not hang on a busy machine."""
    monkeypatch.setattr(runner_ledger, "SIGHTING_FRESH_S", 60.0)


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """The SQL statements this process sends while the test runs."""
    with sql_sent() as sent:
        yield sent


def _running() -> tuple[uuid.UUID, Lease]:
    """A batch of one restaurant that a runner holds: its job and the lease."""
    _, [job_id], lease = running_batch(None, 1)
    return job_id, lease


async def _begun() -> tuple[uuid.UUID, Lease, SqlLedger]:
    """A running batch of one restaurant whose job the runner's ledger has begun."""
    job_id, lease = _running()
    ledger = SqlLedger()
    await ledger.begin_job(lease, job_id)
    return job_id, lease, ledger


def _ask_pause(batch_id: uuid.UUID) -> None:
    """A user's pause, from another connection (the REST API's, say)."""
    with session_scope() as session:
        lifecycle.request_pause(session, batch_id, "someone")


@pytest.mark.usefixtures("fresh_for_a_minute")
async def test_a_read_right_after_a_fenced_write_needs_no_transaction(
    statements: list[str],
) -> None:
    job_id, lease, ledger = await _begun()
    await ledger.start_attempt(lease, job_id, ACCOUNT)
    statements.clear()
    assert await ledger.requested_action(lease) is None
    assert statements == []


async def test_an_old_sighting_is_read_again_and_sees_a_pause(
    statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_ledger, "SIGHTING_FRESH_S", 0.05)
    _, lease, ledger = await _begun()
    _ask_pause(lease.batch_id)
    time.sleep(0.06)
    statements.clear()
    assert await ledger.requested_action(lease) == RequestedAction.PAUSE
    assert len(statements) == 1  # the batch's row, read in a transaction of its own


@pytest.mark.usefixtures("fresh_for_a_minute")
async def test_a_refused_start_is_a_sighting_the_next_read_uses(statements: list[str]) -> None:
    job_id, lease, ledger = await _begun()
    # within the window, the sighting of begin_job (no request yet) is what a read answers
    _ask_pause(lease.batch_id)
    assert await ledger.requested_action(lease) is None
    with pytest.raises(BatchStoppingError):
        await ledger.start_attempt(lease, job_id, ACCOUNT)
    statements.clear()
    assert await ledger.requested_action(lease) == RequestedAction.PAUSE
    assert statements == []


@pytest.mark.usefixtures("fresh_for_a_minute")
async def test_the_runner_s_own_pause_is_read_back_from_the_database() -> None:
    _, lease, ledger = await _begun()
    await ledger.request_pause(lease, "the platform refused the service key")
    assert recent_hold(lease) is None
    assert await ledger.requested_action(lease) == RequestedAction.PAUSE


@pytest.mark.usefixtures("fresh_for_a_minute")
async def test_another_lease_never_uses_this_one_s_sighting() -> None:
    job_id, lease, ledger = await _begun()
    await ledger.start_attempt(lease, job_id, CODE)
    await ledger.record_outcome(lease, job_id, CODE, Completed({"code": "x"}))
    assert recent_hold(lease) is not None
    successor = lease.model_copy(update={"token": lease.token + 1, "owner": "another runner"})
    assert recent_hold(successor) is None


def test_a_sighting_is_left_only_when_the_lease_holds() -> None:
    """A lost lease leaves no sighting: the next read goes to the database and fails there."""
    from regbatch.db.fencing import sighting
    from regbatch.errors import LeaseLostError

    job_id, lease = _running()
    stale = lease.model_copy(update={"token": lease.token + 1})
    with session_scope() as session:
        with pytest.raises(LeaseLostError):
            ledger_rows.begin_job(session, stale, job_id)
        assert sighting(session) is None
    with session_scope() as session:
        ledger_rows.begin_job(session, lease, job_id)
        seen = sighting(session)
    assert seen is not None and seen.lease == lease and seen.held.requested_action is None


@pytest.mark.usefixtures("fresh_for_a_minute")
def test_a_read_made_earlier_never_replaces_a_later_one() -> None:
    """Transactions end in any order on the ledger's threads: the latest read is kept."""
    from regbatch.db.fencing import Held, Sighting
    from regbatch.statuses import BatchStatus

    lease = Lease(batch_id=uuid.uuid4(), owner="tests", token=1)
    now = time.monotonic()
    paused = Held(BatchStatus.IN_PROGRESS, RequestedAction.PAUSE)
    runner_ledger._remember(Sighting(lease, paused, now))
    runner_ledger._remember(Sighting(lease, Held(BatchStatus.IN_PROGRESS, None), now - 0.01))
    assert recent_hold(lease) == paused
    runner_ledger.forget_sightings(lease.batch_id)
    assert recent_hold(lease) is None


@pytest.mark.usefixtures("fresh_for_a_minute")
def test_a_read_from_before_the_runner_s_own_request_is_not_kept() -> None:
    """A read in flight while the runner asked for a pause ends after it: it is not kept."""
    from regbatch.db.fencing import Held, Sighting
    from regbatch.statuses import BatchStatus

    lease = Lease(batch_id=uuid.uuid4(), owner="tests", token=1)
    read_at = time.monotonic()
    runner_ledger.forget_sightings(lease.batch_id)  # the runner's own request has committed
    runner_ledger._remember(Sighting(lease, Held(BatchStatus.IN_PROGRESS, None), read_at))
    assert recent_hold(lease) is None
