"""The runner's lease on a batch, renewed by a heartbeat thread whatever a step is doing."""

from __future__ import annotations

import logging
import threading
import uuid
from types import TracebackType

from services.lifecycle import release_lease, renew_lease

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews `owner`'s lease every third of `lease_seconds` until closed.

    `lost` is set when the lease could not be renewed because another runner took the batch
    over; the runner must then stop dispatching (two runners never run one batch).
    """

    def __init__(self, batch_id: uuid.UUID, owner: str, lease_seconds: float) -> None:
        self.batch_id, self.owner, self.lease_seconds = batch_id, owner, lease_seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{batch_id}", daemon=True)

    def _beat(self) -> None:
        interval = max(self.lease_seconds / 3, 0.2)
        while not self._stop.wait(interval):
            try:
                if not renew_lease(self.batch_id, self.owner, self.lease_seconds):
                    log.error("lease on batch %s was taken over; this runner stops", self.batch_id)
                    self.lost.set()
                    return
            except Exception:  # the database may be briefly unreachable: try again next beat
                log.warning("could not renew the lease on batch %s", self.batch_id, exc_info=True)

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
                release_lease(self.batch_id, self.owner)
            except Exception:
                log.warning("could not release the lease on batch %s", self.batch_id, exc_info=True)
