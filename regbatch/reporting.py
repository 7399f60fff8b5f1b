"""What a batch looks like to people: the results table and the "Batch Results Summary"."""

from __future__ import annotations

from datetime import datetime

from regbatch.statuses import BatchStatus, JobStatus, StepStatus
from regbatch.steps import step_label
from regbatch.views import BatchDetail, JobView

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


def table_rows(detail: BatchDetail) -> list[dict[str, str | int]]:
    """One row per restaurant: status, current step, attempts, duration, error."""
    rows: list[dict[str, str | int]] = []
    for job in detail.jobs:
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
    if any(s.handler for job in detail.jobs for s in job.steps):
        for row, job in zip(rows, detail.jobs, strict=True):  # the steps plugins ran, and how
            row["plugin_steps"] = ", ".join(
                f"{step_label(s.step_number, s.step_key)}: {s.status}"
                for s in job.steps
                if s.handler is not None
            )
    return rows


def summary_markdown(detail: BatchDetail) -> str:
    """The seed's "Batch Results Summary": totals, each restaurant's result, failures named."""
    total = detail.total or 1
    failed_jobs = [j for j in detail.jobs if j.status == JobStatus.FAILED]
    end = detail.completed_at or detail.paused_at or detail.cancelled_at
    lines = [
        f'# Batch: "{detail.name}"  {BATCH_MARK.get(detail.status, detail.status)}',
        "",
        f"Duration: {duration_text(_span(detail.started_at, end)) or 'not started'}",
    ]
    if detail.pause_reason and detail.status == BatchStatus.PAUSED:
        lines += ["", f"Paused: {detail.pause_reason}"]
    lines += [
        "",
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| Total | {detail.total} |",
        f"| Successful | {detail.completed} ({detail.completed / total:.0%}) |",
        f"| Failed | {detail.failed} ({detail.failed / total:.0%}) |",
    ]
    if detail.cancelled:
        lines.append(f"| Cancelled | {detail.cancelled} ({detail.cancelled / total:.0%}) |")
    lines += ["", "## Results", "", "| Restaurant | Result |", "|---|---|"]
    for job in detail.jobs:
        result = STATUS_MARK.get(job.status, job.status)
        failure = failing_step(job)
        if failure:
            result += f" ({_cell(failure)})"
        lines.append(f"| {_cell(job.restaurant_name)} | {result} |")
    if failed_jobs:
        lines += [
            "",
            f"Retry the {len(failed_jobs)} failed restaurant(s): "
            f"`regbatch batch retry-failed {detail.id}`",
        ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]
