"""The runner's lease on a batch, renewed by a heartbeat while the runner works."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from types import TracebackType

from regbatch.errors import LeaseLostError, LedgerUnavailableError
from regbatch.lease import Lease
from regbatch.ledger import Ledger

log = logging.getLogger(__name__)


def runner_identity(flow_run_id: uuid.UUID | str | None = None) -> str:
    """Who holds a batch's lease: host, process and (if any) the Prefect flow run."""
    suffix = f":{str(flow_run_id)[:8]}" if flow_run_id else ""
    return f"{socket.gethostname()}:{os.getpid()}{suffix}"


class LeaseKeeper:
    """Renews `lease` every third of `lease_seconds` until the block ends.

    `lost` is set, with `reason`, when the lease is gone: another runner took the batch over
    (or it was cancelled from Prefect), or the ledger could not be written for as long as the
    lease lasts. The runner must then stop all of its work at once: two runners never run one
    batch, and the ledger refuses the writes of a stale lease anyway.
    """

    def __init__(self, ledger: Ledger, lease: Lease, lease_seconds: float) -> None:
        self.ledger, self.lease, self.lease_seconds = ledger, lease, lease_seconds
        self.lost = asyncio.Event()
        self.reason: str | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._beat: asyncio.Task[None] | None = None

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the lease is lost (at once if it already is)."""
        self._callbacks.append(callback)
        if self.lost.is_set():
            callback()

    def lose(self, reason: str) -> None:
        """Mark the lease lost (the heartbeat found out, or a write was refused)."""
        if self.lost.is_set():
            return
        self.reason = reason
        self.lost.set()
        log.error("%s", reason)
        for callback in self._callbacks:
            callback()

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(max(self.lease_seconds / 3, 0.2))
            try:
                renewed = await self.ledger.renew_lease(self.lease)
            except (LeaseLostError, LedgerUnavailableError) as exc:
                self.lose(str(exc))
                return
            if not renewed:
                self.lose(
                    f"the lease on batch {self.lease.batch_id} is no longer this runner's "
                    f"({self.lease.owner}, fencing token {self.lease.token}): another runner "
                    "took the batch over, or it was cancelled; this runner stops"
                )
                return

    async def __aenter__(self) -> LeaseKeeper:
        self._beat = asyncio.create_task(self._keep(), name=f"lease-{self.lease.batch_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._beat is not None:
            self._beat.cancel()
            await asyncio.gather(self._beat, return_exceptions=True)
        if not self.lost.is_set():
            try:
                await self.ledger.release_lease(self.lease)
            except Exception:
                log.warning("could not release the lease on batch %s", self.lease.batch_id)
