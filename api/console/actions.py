"""A batch action asked from the console, done by the same services as the REST API's
(api/rest/actions.py): start and resume submit to Prefect through api/rest/starting.py, cancel
announces through api/lifecycle.py, pause and retry failed are services/lifecycle.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from regbatch.api.console.auth import caller_of
from regbatch.api.console.session import ConsoleSession
from regbatch.api.lifecycle import cancel_batch
from regbatch.api.rest.starting import submit
from regbatch.batch_rules import BatchAction
from regbatch.errors import RegbatchError
from regbatch.services import lifecycle
from regbatch.services.overview import batch_header
from regbatch.statuses import BatchStatus


@dataclass(frozen=True)
class Outcome:
    """What the user is told after an action."""

    ok: bool
    message: str


async def perform(
    batch_id: uuid.UUID, action: str, session: ConsoleSession
) -> tuple[Outcome, uuid.UUID]:
    """Do `action` to the batch; (what to tell the user, the batch to show next)."""
    try:
        chosen = BatchAction(action)
    except ValueError:
        names = ", ".join(a.value for a in BatchAction)
        return Outcome(False, f"action {action!r} does not exist; use one of {names}"), batch_id
    try:
        return await _do(batch_id, chosen, session)
    except RegbatchError as exc:
        return Outcome(False, f"{chosen.value} refused: {exc}"), batch_id


async def _do(
    batch_id: uuid.UUID, action: BatchAction, session: ConsoleSession
) -> tuple[Outcome, uuid.UUID]:
    org, actor = session.organisation_id, session.actor
    if action == BatchAction.START:
        started = await submit(batch_id, caller_of(session))
        return Outcome(
            True, f"Batch submitted to Prefect (flow run {started.flow_run_id})."
        ), batch_id
    if action == BatchAction.RESUME:
        return await _resume(batch_id, session), batch_id
    if action == BatchAction.PAUSE:
        await run_in_threadpool(lifecycle.pause_batch, batch_id, actor, org)
        return Outcome(True, "Pause requested: running steps finish, nothing new starts."), batch_id
    if action == BatchAction.CANCEL:
        detail = await run_in_threadpool(cancel_batch, batch_id, actor, org)
        said = (
            "Batch cancelled."
            if detail.status == BatchStatus.CANCELLED
            else ("Cancel requested: it takes effect at the next step boundary.")
        )
        return Outcome(True, said), batch_id
    outcome = await run_in_threadpool(lifecycle.retry_failed, batch_id, actor, org)
    if outcome.existed:
        said = "These failures are already in this retry batch, made earlier; nothing new was made."
    else:
        said = "Retry batch made of the failed restaurants: start it below."
    return Outcome(True, said), outcome.batch_id


async def _resume(batch_id: uuid.UUID, session: ConsoleSession) -> Outcome:
    """A paused batch is submitted again; a running one with a pause request keeps running."""
    current = await run_in_threadpool(batch_header, batch_id, session.organisation_id)
    if current.status == BatchStatus.PAUSED:
        started = await submit(batch_id, caller_of(session))
        return Outcome(True, f"Batch resumed (flow run {started.flow_run_id}).")
    await run_in_threadpool(
        lifecycle.resume_batch, batch_id, session.actor, session.organisation_id
    )
    return Outcome(True, "Pause request withdrawn: the batch keeps running.")
