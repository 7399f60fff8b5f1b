"""The live progress reads the batch's own clock and counts, like its summary."""

from __future__ import annotations

from rich.console import Console

from regbatch.api.cli.progress import progress_bar, render
from regbatch.views import BatchJobsPage
from tests.unit.test_reporting import seed_example


def test_the_progress_bar_shows_the_batch_duration_not_the_watchers() -> None:
    console = Console(width=120, record=True, force_terminal=False)
    progress, task_id = progress_bar(console)
    console.print(render(seed_example(), progress, task_id))
    text = console.export_text()
    assert "3/3" in text and "47m 23s" in text
    assert "Burger House" in text and "09-menu_import: CSV rejected" in text


def test_a_big_batch_shows_the_restaurants_it_read_and_says_how_many_there_are() -> None:
    """The bar counts from the batch's counters, not from the restaurants read: the live page
    of a big batch holds only those running and the latest failed."""
    seed = seed_example()
    page = BatchJobsPage(
        **{**seed.model_dump(exclude={"jobs"}), "total": 10_000, "completed": 2_500},
        jobs=[j for j in seed.jobs if j.status == "failed"],
        jobs_total=10_000,
        next_cursor=None,
    )
    console = Console(width=200, record=True, force_terminal=False)
    progress, task_id = progress_bar(console)
    console.print(render(page, progress, task_id))
    text = console.export_text()
    finished = 2_500 + seed.failed + seed.cancelled
    assert f"{finished}/10000" in text
    assert "Burger House" in text and "09-menu_import: CSV rejected" in text
    assert (
        "1 of 10,000 restaurants shown: those running now, the latest that failed, then the "
        f"latest finished and the next to start; every one: regbatch batch show {seed.id} --all"
    ) in " ".join(text.split())
