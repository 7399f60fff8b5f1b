"""Cancelling a batch, for every interface: the service's cancel, then the announcement.

A batch that nobody runs is cancelled at once, and nobody else will tell its webhooks: the call
that cancelled it delivers them (Prefect task runs), each subscription at once; the CLI and the
Python API wait for the slowest one's retries, the REST API answers first and delivers
after. Nobody subscribed: no wait, and Prefect is not even imported.
"""

from __future__ import annotations

import uuid

from regbatch.services import lifecycle
from regbatch.services.webhooks import plan_batch_event
from regbatch.statuses import BatchStatus
from regbatch.views import BatchDetail


def cancel_batch(
    batch_id: str | uuid.UUID, actor: str = "user", organisation_id: uuid.UUID | None = None
) -> BatchDetail:
    """Cancel the batch (now, or at its runner's next step boundary); announce a cancel now."""
    detail = lifecycle.cancel_batch(batch_id, actor, organisation_id)
    announce_cancel(detail)
    return detail


def announce_cancel(detail: BatchDetail) -> None:
    """Deliver the webhooks of a batch that `detail` shows cancelled (a batch still running is
    announced by its runner when it stops)."""
    planned = plan_batch_event(detail.id) if detail.status == BatchStatus.CANCELLED else []
    if planned:
        from regbatch.tasks.webhooks import announce_batch_outcome

        announce_batch_outcome(detail.id, planned)
