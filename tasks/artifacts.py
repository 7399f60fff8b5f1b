"""The batch flow run's artifacts in the Prefect UI: progress, restaurants table, summary.

Best effort: an artifact is a view of the ledger, so a Prefect API that is briefly away costs
an update (logged), never the batch.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from regbatch.reporting import summary_markdown, table_rows
from regbatch.runner.ledger import ledger
from regbatch.views import BatchDetail

log = logging.getLogger(__name__)
P = ParamSpec("P")


def _best_effort(
    method: Callable[P, Coroutine[Any, Any, None]],
) -> Callable[P, Coroutine[Any, Any, None]]:
    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await method(*args, **kwargs)
        except Exception as exc:
            log.warning("artifact not written (%s: %s)", type(exc).__name__, exc)

    return guarded


def artifact_key(batch_id: uuid.UUID, kind: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes: 'batch-<uuid>-progress'."""
    return f"batch-{batch_id}-{kind}"


class ProgressReporter:
    """Keeps the progress artifact current and refreshes the table as restaurants finish.

    Each write is an API call the Prefect server must handle, so the progress is written at most
    every `progress_interval_s` and the table (it holds every restaurant) at most every
    `table_interval_s`, longer for big batches; both are always written at the end.
    """

    def __init__(
        self,
        batch_id: uuid.UUID,
        total: int,
        progress_interval_s: float = 1.0,
        table_interval_s: float = 5.0,
    ) -> None:
        self.batch_id, self.total = batch_id, max(total, 1)
        self.progress_interval_s = progress_interval_s
        self.table_interval_s = max(table_interval_s, total / 20)
        self._progress_id: uuid.UUID | None = None
        self._last_progress = 0.0
        self._last_table = 0.0

    @_best_effort
    async def start(self, finished: int) -> None:
        self._progress_id = await acreate_progress_artifact(
            progress=100 * finished / self.total,
            key=artifact_key(self.batch_id, "progress"),
            description=f"restaurants finished of {self.total}",
        )
        await self.refresh_table(force=True)

    @_best_effort
    async def job_finished(self, finished: int) -> None:
        now = time.monotonic()
        if self._progress_id is not None and now - self._last_progress >= self.progress_interval_s:
            self._last_progress = now
            await aupdate_progress_artifact(self._progress_id, progress=100 * finished / self.total)
        await self.refresh_table()

    @_best_effort
    async def refresh_table(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_table < self.table_interval_s:
            return
        self._last_table = time.monotonic()
        await self._write_table(await ledger().batch_detail(self.batch_id))

    async def _write_table(self, detail: BatchDetail) -> None:
        await acreate_table_artifact(
            table=table_rows(detail),
            key=artifact_key(self.batch_id, "restaurants"),
            description=f"{detail.name}: restaurants",
        )

    @_best_effort
    async def finish(self, detail: BatchDetail) -> None:
        finished = detail.completed + detail.failed + detail.cancelled
        if self._progress_id is not None:
            await aupdate_progress_artifact(self._progress_id, progress=100 * finished / self.total)
        await self._write_table(detail)
        await acreate_markdown_artifact(
            markdown=summary_markdown(detail),
            key=artifact_key(self.batch_id, "summary"),
            description=f"{detail.name}: results summary",
        )
