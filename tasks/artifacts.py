"""The batch flow run's artifacts in the Prefect UI: three cards at most.

* progress (`batch-<name>-<id8>-progress`): "7 of 12 restaurants finished", updated in place;
* restaurants (`...-restaurants`): one table, created once and updated in place;
* summary (`...-summary`): the results summary, written once when the run ends.

Prefect keeps every `create_*_artifact` call under a key as a new version and the flow run's
Artifacts tab shows each one as a card, so nothing here is created twice in a run: the progress
and the table are patched by id (`update_artifact`), and only when what they show changed.

Best effort: an artifact is a view of the ledger, so a Prefect API that is briefly away costs
an update (logged), never the batch.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

from prefect.artifacts import (
    TableArtifact,
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate

from regbatch.reporting import (
    TABLE_ROWS_MAX,
    every_restaurant_command,
    summary_markdown,
    table_rows,
)
from regbatch.runner.ledger import ledger
from regbatch.views import BatchDetail

log = logging.getLogger(__name__)
P = ParamSpec("P")
SLUG_MAX = 40
Rows = list[dict[str, str | int]]


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


def artifact_key(batch_id: uuid.UUID, batch_name: str, kind: str) -> str:
    """'batch-auckland-q4-7f3c9a2b-progress': the batch's name, readable, and the first 8 hex
    digits of its id, since two batches may share a name (Prefect keys: a-z, 0-9 and dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", batch_name.lower()).strip("-")[:SLUG_MAX].strip("-")
    return "-".join(part for part in ("batch", slug, batch_id.hex[:8], kind) if part)


def progress_text(finished: int, total: int) -> str:
    return f"{finished} of {total} restaurants finished"


def table_text(detail: BatchDetail) -> str:
    """The restaurants table's description: the numbers first, as a card shows one line
    (the batch's name is in the key and the run's title)."""
    counts = f"{detail.completed} completed, {detail.failed} failed"
    if detail.cancelled:
        counts += f", {detail.cancelled} cancelled"
    text = f"{progress_text(detail.finished, detail.total)}: {counts}"
    if detail.total > TABLE_ROWS_MAX:
        text += (
            f" (the table shows {TABLE_ROWS_MAX:,} of them, failed first; every one: "
            f"`{every_restaurant_command(detail.id)}`)"
        )
    return text


def summary_text(detail: BatchDetail) -> str:
    return (
        f"{detail.status}: {detail.completed} of {detail.total} restaurants registered, "
        f"{detail.failed} failed"
    )


class ProgressReporter:
    """Keeps the progress artifact current and the restaurants table up to date.

    Each write is an API call the Prefect server must handle, so the progress is written at most
    every `progress_interval_s` and the table (it holds every restaurant) at most every
    `table_interval_s`, longer for big batches; both are brought up to date at the end. A write
    that would not change what the card shows is skipped.
    """

    def __init__(
        self,
        batch_id: uuid.UUID,
        batch_name: str,
        total: int,
        progress_interval_s: float = 1.0,
        table_interval_s: float = 5.0,
    ) -> None:
        self.batch_id, self.batch_name, self.total = batch_id, batch_name, total
        self.progress_interval_s = progress_interval_s
        self.table_interval_s = max(table_interval_s, total / 20)
        self._progress_id: uuid.UUID | None = None
        self._table_id: uuid.UUID | None = None
        self._shown_finished: int | None = None
        self._shown_table: tuple[Rows, str] | None = None
        self._last_progress = 0.0
        self._last_table = 0.0

    def key(self, kind: str) -> str:
        return artifact_key(self.batch_id, self.batch_name, kind)

    @_best_effort
    async def start(self, finished: int) -> None:
        self._progress_id = await acreate_progress_artifact(
            progress=self._percent(finished),
            key=self.key("progress"),
            description=progress_text(finished, self.total),
        )
        self._shown_finished = finished
        await self.refresh_table(force=True)

    @_best_effort
    async def job_finished(self, finished: int) -> None:
        now = time.monotonic()
        if now - self._last_progress >= self.progress_interval_s:
            self._last_progress = now
            await self._write_progress(finished)
        await self.refresh_table()

    @_best_effort
    async def refresh_table(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_table < self.table_interval_s:
            return
        self._last_table = time.monotonic()
        await self._write_table(await ledger().batch_report(self.batch_id))

    @_best_effort
    async def finish(self, detail: BatchDetail) -> None:
        await self._write_progress(detail.finished)
        await self._write_table(detail)
        await acreate_markdown_artifact(
            markdown=summary_markdown(detail),
            key=self.key("summary"),
            description=summary_text(detail),
        )

    def _percent(self, finished: int) -> float:
        return 100 * finished / max(self.total, 1)

    async def _write_progress(self, finished: int) -> None:
        if self._progress_id is None or finished == self._shown_finished:
            return
        await aupdate_progress_artifact(
            self._progress_id,
            progress=self._percent(finished),
            description=progress_text(finished, self.total),
        )
        self._shown_finished = finished

    async def _write_table(self, detail: BatchDetail) -> None:
        shown = (table_rows(detail), table_text(detail))
        if shown == self._shown_table:
            return
        rows, description = shown
        if self._table_id is None:
            self._table_id = await acreate_table_artifact(
                table=rows, key=self.key("restaurants"), description=description
            )
        else:
            await self._patch_table(self._table_id, rows, description)
        self._shown_table = shown

    @staticmethod
    async def _patch_table(artifact_id: uuid.UUID, rows: Rows, description: str) -> None:
        """Replace the table's rows and description in place (no new version, no new card)."""
        data = await TableArtifact(table=rows).aformat()
        async with get_client() as client:
            await client.update_artifact(
                artifact_id, ArtifactUpdate(data=data, description=description)
            )
