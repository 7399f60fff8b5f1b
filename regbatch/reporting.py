"""What a batch looks like to people: the results table and the "Batch Results Summary"."""

from __future__ import annotations

import textwrap
import uuid
from collections import Counter
from datetime import UTC, datetime

from regbatch.statuses import BATCH_FINISHED, JOB_FINISHED, BatchStatus, JobStatus, StepStatus
from regbatch.steps import step_label
from regbatch.views import BatchDetail, BatchReport, BatchView, JobView

STATUS_MARK = {
    JobStatus.COMPLETED: "✓ Complete",
    JobStatus.FAILED: "✗ Failed",
    JobStatus.CANCELLED: "– Cancelled",
    JobStatus.SKIPPED: "– Skipped",
    JobStatus.IN_PROGRESS: "⏳ In progress",
    JobStatus.PENDING: "○ Pending",
}
BATCH_MARK = {
    BatchStatus.COMPLETED: "✓ Completed",
    BatchStatus.FAILED: "✗ Failed",
    BatchStatus.CANCELLED: "– Cancelled",
    BatchStatus.PAUSED: "⏸ Paused",
    BatchStatus.IN_PROGRESS: "⏳ In progress",
    BatchStatus.PENDING: "○ Pending",
    BatchStatus.DRAFT: "○ Draft",
}


def duration_text(seconds: float | None) -> str:
    """'47m 23s', '1h 02m', '5s'."""
    if seconds is None:
        return ""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _span(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def every_restaurant_command(batch_id: uuid.UUID) -> str:
    """The command that lists every restaurant of a batch, for views that show a few of them."""
    return f"regbatch batch show {batch_id} --all"


def shown_of(shown: int, total: int) -> str:
    """What a capped list of a batch's restaurants holds, for its caller to follow with
    `every_restaurant_command`: '100 shown of 10,000, failed first; every one: '."""
    return f"{shown:,} shown of {total:,}, failed first; every one: "


def batch_end(detail: BatchView) -> datetime | None:
    """When the batch stopped: finished, cancelled or (while paused) paused; None if it runs."""
    if detail.status == BatchStatus.PAUSED:
        return detail.paused_at
    if detail.status == BatchStatus.CANCELLED:
        return detail.cancelled_at or detail.completed_at
    if detail.status in (BatchStatus.COMPLETED, BatchStatus.FAILED):
        return detail.completed_at
    return None


def batch_duration(detail: BatchView, now: datetime | None = None) -> float | None:
    """The batch's one clock: from its recorded start to its recorded end (or `now` while it
    runs); None before it started. Every display of a batch's duration reads it."""
    end = batch_end(detail)
    if end is None and detail.status not in BATCH_FINISHED | {BatchStatus.PAUSED}:
        end = now or datetime.now(UTC)
    return _span(detail.started_at, end)


def counts_text(detail: BatchDetail) -> str:
    """'12/12 finished (3 ok, 0 failed, 9 cancelled, 0 skipped)'. Of a report that holds a few of
    its jobs, from the batch's counters, which count the skipped among the completed."""
    if isinstance(detail, BatchReport) and len(detail.jobs) < detail.total:
        return (
            f"{detail.finished}/{detail.total} finished ({detail.completed - detail.skipped} ok, "
            f"{detail.failed} failed, {detail.cancelled} cancelled, {detail.skipped} skipped)"
        )
    by_status = Counter(job.status for job in detail.jobs)
    finished = sum(by_status[s] for s in JOB_FINISHED)
    return (
        f"{finished}/{detail.total} finished ({by_status[JobStatus.COMPLETED]} ok, "
        f"{by_status[JobStatus.FAILED]} failed, {by_status[JobStatus.CANCELLED]} cancelled, "
        f"{by_status[JobStatus.SKIPPED]} skipped)"
    )


def failing_step(job: JobView) -> str | None:
    """'09-menu_import: <error>' for a failed job, else None."""
    for step in job.steps:
        if step.status == StepStatus.FAILED:
            label = step_label(step.step_number, step.step_key)
            return f"{label}: {step.error_message or step.status}"
    return None


def current_step(job: JobView) -> str:
    if job.current_step is None:
        return ""
    keys = {s.step_number: s.step_key for s in job.steps}
    return step_label(job.current_step, keys.get(job.current_step))


# Prefect refuses to emit an event over 1.5 MB and a table artifact travels as one: the table
# of a 10,000-restaurant batch (1.7 MB) was never written. Rows are about 170 bytes.
TABLE_ROWS_MAX = 2_000


def table_jobs(detail: BatchDetail) -> list[JobView]:
    """The restaurants the table shows: all of them, in the batch's order, up to TABLE_ROWS_MAX;
    past it the failed ones first, then the others in the batch's order (a BatchReport holds
    just those already, in that order)."""
    if len(detail.jobs) <= TABLE_ROWS_MAX:
        return list(detail.jobs)
    failed = [j for j in detail.jobs if j.status == JobStatus.FAILED]
    others = [j for j in detail.jobs if j.status != JobStatus.FAILED]
    return (failed + others)[:TABLE_ROWS_MAX]


def table_rows(detail: BatchDetail) -> list[dict[str, str | int]]:
    """One row per restaurant shown (`table_jobs`): status, current step, attempts, duration,
    error."""
    jobs = table_jobs(detail)
    rows: list[dict[str, str | int]] = []
    for job in jobs:
        rows.append(
            {
                "restaurant": job.restaurant_name,
                "status": job.status,
                "current_step": current_step(job),
                "attempts": sum(s.attempts for s in job.steps),
                "duration": duration_text(_span(job.started_at, job.completed_at)),
                "error": failing_step(job) or "",
            }
        )
    if any(s.handler for job in jobs for s in job.steps):
        for row, job in zip(rows, jobs, strict=True):  # the steps plugins ran, and how
            row["plugin_steps"] = ", ".join(
                f"{step_label(s.step_number, s.step_key)}: {s.status}"
                for s in job.steps
                if s.handler is not None
            )
    return rows


def summary_markdown(detail: BatchDetail) -> str:
    """The seed's "Batch Results Summary": totals, each restaurant's result, failures named."""
    lines = [
        f'# Batch: "{detail.name}"  {BATCH_MARK.get(detail.status, detail.status)}',
        "",
        f"Duration: {duration_text(batch_duration(detail)) or 'not started'}",
    ]
    if detail.pause_reason and detail.status == BatchStatus.PAUSED:
        lines += ["", f"Paused: {detail.pause_reason}"]
    lines += ["", "## Summary", "", *_count_lines(detail), "", "## Results", ""]
    lines += _result_lines(detail)
    if detail.failed:
        lines += [
            "",
            f"Retry the {detail.failed} failed restaurant(s): "
            f"`regbatch batch retry-failed {detail.id}`",
        ]
    return "\n".join(lines) + "\n"


def _count_lines(detail: BatchDetail) -> list[str]:
    """The summary's table of counts, each with its share of the batch."""
    total = detail.total or 1
    skipped = (
        detail.skipped
        if isinstance(detail, BatchReport)  # of the whole batch; its jobs may be a few
        else sum(1 for job in detail.jobs if job.status == JobStatus.SKIPPED)
    )
    shares = [  # (label, count, shown when 0)
        ("Successful", detail.completed, True),
        ("Failed", detail.failed, True),
        ("Cancelled", detail.cancelled, False),
        ("Skipped", skipped, False),
    ]
    lines = ["| | |", "|---|---|", f"| Total | {detail.total} |"]
    for label, count, always in shares:
        if count or always:
            lines.append(f"| {label} | {count} ({count / total:.0%}) |")
    return lines


def _result_lines(detail: BatchDetail) -> list[str]:
    """Each restaurant's result (those `table_jobs` shows), its failure named."""
    jobs = table_jobs(detail)
    lines = []
    if len(jobs) < detail.total:
        lines += [
            f"The {shown_of(len(jobs), detail.total)}`{every_restaurant_command(detail.id)}`",
            "",
        ]
    lines += ["| Restaurant | Result |", "|---|---|"]
    for job in jobs:
        result = STATUS_MARK.get(job.status, job.status)
        failure = failing_step(job)
        if failure:
            result += f" ({_cell(failure)})"
        lines.append(f"| {_cell(job.restaurant_name)} | {result} |")
    return lines


def _cell(text: str) -> str:
    """Text for a Markdown table cell: one line, at most ~300 characters, cut between words
    (the export and `regbatch batch show BATCH RESTAURANT` have the full text)."""
    flat = textwrap.shorten(text, width=300, placeholder=" …")
    return flat.replace("|", "\\|")
