"""Live progress for commands that run or watch a batch: a progress bar and a line per restaurant,
or (for a single restaurant) a line per step as it finishes. It reads the database, so it shows
the same thing whether the batch runs in this process or anywhere else.

At each tick it reads the batch's row and at most LIVE_ROWS restaurants with their steps: all of
them in a small batch; in a bigger one those running now, the latest that failed, then the
latest finished and the next to start (`db.batch_pages.live_jobs_page`). A batch of 10,000 is
never read whole while it runs: that read takes seconds of CPU, and `batch run` polls in the
runner's own process."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
)
from rich.table import Table
from rich.text import Text

from regbatch.api.cli._output import console
from regbatch.reporting import (
    STATUS_MARK,
    batch_duration,
    current_step,
    duration_text,
    every_restaurant_command,
    failing_step,
)
from regbatch.services.batches import get_batch
from regbatch.services.overview import batch_status, live_batch
from regbatch.statuses import BATCH_AT_REST, StepStatus
from regbatch.steps import step_label
from regbatch.views import BatchDetail, BatchJobsPage

LIVE_ROWS = 30
"""The most restaurants the live table shows."""

_S = StepStatus
_STEP_MARK = {_S.COMPLETED: "✓", _S.FAILED: "✗", _S.SKIPPED: "–", _S.RETRYING: "↻"}


def progress_bar(on: Console) -> tuple[Progress, TaskID]:
    """The bar of a batch: description, bar, share, finished/total and the batch's duration."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[took]}"),
        console=on,
    )
    return progress, progress.add_task("", total=1, took="")


def render(detail: BatchDetail | BatchJobsPage, progress: Progress, task_id: TaskID) -> Group:
    """The bar (from the batch's counters) and a line for each restaurant `detail` holds."""
    # the batch's own clock (its recorded start and end), the one its summary shows
    took = duration_text(batch_duration(detail)) or "not started"
    progress.update(
        task_id,
        completed=detail.finished,
        total=max(detail.total, 1),
        description=f"{escape(detail.name)} [{detail.status}]",
        took=took,
    )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("restaurant", overflow="fold")
    table.add_column("status")
    table.add_column("step / error", overflow="fold")
    for job in detail.jobs:
        info = failing_step(job) or current_step(job)
        table.add_row(job.restaurant_name, STATUS_MARK.get(job.status, job.status), info)
    total = detail.jobs_total if isinstance(detail, BatchJobsPage) else len(detail.jobs)
    if total <= len(detail.jobs):
        return Group(progress, table)
    note = (
        f"{len(detail.jobs)} of {total:,} restaurants shown: those running now, the latest that "
        f"failed, then the latest finished and the next to start; every one: "
        f"{every_restaurant_command(detail.id)}"
    )
    return Group(progress, table, Text(note, style="dim"))


class BatchWatcher:
    """Polls the batch every `interval_s` and shows it live until `stop()`."""

    def __init__(
        self, batch_id: uuid.UUID, interval_s: float = 0.5, steps: bool = False, show: bool = True
    ) -> None:
        self.batch_id, self.interval_s, self.steps, self.show = batch_id, interval_s, steps, show
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="batch-watcher")
        self.latest: BatchJobsPage | None = None

    def __enter__(self) -> BatchWatcher:
        if self.show:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        if self.steps:
            self._print_steps()
        else:
            self._live()

    def _read(self) -> BatchJobsPage | None:
        # the display must never break the run: on an error, try again next tick
        with contextlib.suppress(Exception):
            self.latest = live_batch(self.batch_id, LIVE_ROWS)
        return self.latest

    def _read_whole(self) -> BatchDetail | None:
        """Every restaurant with its steps: for the steps' lines of a batch of one."""
        with contextlib.suppress(Exception):
            return get_batch(self.batch_id)
        return None

    def _live(self) -> None:
        progress, task_id = progress_bar(console)
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while True:
                detail = self._read()
                if detail is not None:
                    live.update(render(detail, progress, task_id))
                if self._stop.wait(self.interval_s):
                    detail = self._read()
                    if detail is not None:
                        live.update(render(detail, progress, task_id))
                    break
        console.print()

    def _print_steps(self) -> None:
        seen: dict[tuple[uuid.UUID, int], StepStatus] = {}

        def emit(detail: BatchDetail) -> None:
            for job in detail.jobs:
                for step in job.steps:
                    key = (job.id, step.step_number)
                    if step.status == seen.get(key) or step.status in (_S.PENDING, _S.IN_PROGRESS):
                        continue
                    seen[key] = step.status
                    label = step_label(step.step_number, step.step_key)
                    extra = {
                        _S.COMPLETED: f"{(step.duration_ms or 0) / 1000:.1f}s",
                        _S.RETRYING: f"attempt {step.attempts} failed: {step.error_message}",
                        _S.FAILED: step.error_message or "",
                        _S.SKIPPED: step.skip_reason or "",
                    }.get(step.status, "")
                    mark = _STEP_MARK.get(step.status, "·")
                    console.print(
                        f"{mark} {label:<28} {step.status:<10} {extra}",
                        markup=False,
                        highlight=False,
                    )

        while not self._stop.wait(self.interval_s):
            detail = self._read_whole()
            if detail is not None:
                emit(detail)
        detail = self._read_whole()
        if detail is not None:
            emit(detail)


def watch_until_finished(batch_id: uuid.UUID, interval_s: float = 1.0) -> BatchDetail:
    """Block until the batch reaches completed, failed, cancelled or paused; then the batch
    with every restaurant (read once, at the end)."""
    while batch_status(batch_id) not in BATCH_AT_REST:
        time.sleep(interval_s)
    return get_batch(batch_id)
