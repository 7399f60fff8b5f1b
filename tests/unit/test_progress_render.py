"""The live progress reads the batch's own clock and counts, like its summary."""

from __future__ import annotations

from rich.console import Console

from regbatch.api.cli.progress import progress_bar, render
from tests.unit.test_reporting import seed_example


def test_the_progress_bar_shows_the_batch_duration_not_the_watchers() -> None:
    console = Console(width=120, record=True, force_terminal=False)
    progress, task_id = progress_bar(console)
    console.print(render(seed_example(), progress, task_id))
    text = console.export_text()
    assert "3/3" in text and "47m 23s" in text
    assert "Burger House" in text and "09-menu_import: CSV rejected" in text
