"""The runner's lease on a batch, renewed by a heartbeat thread whatever a step is doing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from regbatch.lease import Lease
from regbatch.services.lifecycle import release_lease, renew_lease

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews `lease` every third of `lease_seconds` until closed.

    `lost` is set, with `reason`, when the lease is gone: another runner took the batch over (or
    it was cancelled from Prefect), or the database could not be reached for as long as the
    lease lasts. The runner must then stop all of its work at once: two runners never run one
    batch, and the ledger refuses the writes of a stale lease anyway.
    """

    def __init__(self, lease: Lease, lease_seconds: float) -> None:
        self.lease, self.lease_seconds = lease, lease_seconds
        self.lost = threading.Event()
        self.reason: str | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{lease.batch_id}", daemon=True
        )

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread) once the lease is lost."""
        with self._guard:
            self._callbacks.append(callback)
            lost = self.lost.is_set()
        if lost:
            callback()

    def lose(self, reason: str) -> None:
        """Mark the lease lost (the heartbeat found out, or a write was refused)."""
        with self._guard:
            if self.lost.is_set():
                return
            self.reason = reason
            self.lost.set()
            callbacks = list(self._callbacks)
        log.error("%s", reason)
        for callback in callbacks:
            callback()

    def _beat(self) -> None:
        interval = max(self.lease_seconds / 3, 0.2)
        renewed = time.monotonic()
        while not self._stop.wait(interval):
            try:
                if not renew_lease(self.lease, self.lease_seconds):
                    self.lose(
                        f"the lease on batch {self.lease.batch_id} is no longer this runner's "
                        f"({self.lease.owner}, fencing token {self.lease.token}): another runner "
                        "took the batch over, or it was cancelled; this runner stops"
                    )
                    return
                renewed = time.monotonic()
            except Exception as exc:  # the database may be briefly unreachable: try again
                if time.monotonic() - renewed >= self.lease_seconds:
                    self.lose(
                        f"the lease on batch {self.lease.batch_id} could not be renewed for "
                        f"{self.lease_seconds:g} s ({type(exc).__name__}); this runner stops and "
                        "the next one resumes the batch"
                    )
                    return
                log.warning(
                    "could not renew the lease on batch %s (%s); trying again",
                    self.lease.batch_id,
                    type(exc).__name__,
                )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if not self.lost.is_set():
            try:
                release_lease(self.lease)
            except Exception:
                log.warning("could not release the lease on batch %s", self.lease.batch_id)
