"""The Prefect UI, in a real headless browser, shows a finished batch's flow run with its
progress and results artifacts, and a weekly schedule with its timezone; screenshots are saved
to test-artifacts/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from regbatch.api.running import run_batch
from tests.flows.conftest import new_batch

pytestmark = [pytest.mark.flow, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts"
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it",
)


@contextmanager
def browser_page() -> Iterator[Any]:
    """A page of headless Debian Chromium (Playwright never downloads a browser)."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


@needs_chromium
def test_the_ui_shows_the_batch_run_with_its_artifacts(org_id, sandbox) -> None:
    batch_id, _, restaurant_ids = new_batch(org_id, 2, name="UI artifacts")
    sandbox.set_faults(
        [{"restaurant": str(restaurant_ids[1]), "step": "menu_import", "kind": "permanent"}]
    )
    detail = run_batch(batch_id)

    run_id = detail.flow_run_id
    assert run_id is not None
    prefix = f"batch-ui-artifacts-{batch_id.hex[:8]}"
    ui = os.environ["PREFECT_UI_URL"]
    with browser_page() as page:
        page.goto(f"{ui}/runs/flow-run/{run_id}", wait_until="networkidle", timeout=60000)
        page.get_by_text(f"batch: {detail.name}").first.wait_for(timeout=30000)
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text(f"{prefix}-summary").first.wait_for(timeout=30000)
        page.wait_for_load_state("networkidle")
        body = page.inner_text("body")
        page.screenshot(path=str(SHOTS / "prefect-ui-batch-artifacts.png"), full_page=True)
    for kind in ("progress", "restaurants", "summary"):
        assert body.count(f"{prefix}-{kind}") == 1, body
    assert "2 of 2 restaurants finished" in body
    assert "completed: 1 of 2 restaurants registered, 1 failed" in body


@needs_chromium
def test_the_ui_shows_the_weekly_schedule_with_its_timezone(prefect_server) -> None:
    from regbatch.deployments.serve import served_deployments

    weekly = next(d for d in served_deployments() if d.name == "auckland-hot-leads-weekly")
    weekly.name = "ui-test-auckland-weekly"  # not the catalog's own: nothing else sees it
    weekly.paused = True  # shown, never run
    deployment_id = weekly.apply()
    ui = os.environ["PREFECT_UI_URL"]
    with browser_page() as page:
        page.goto(
            f"{ui}/deployments/deployment/{deployment_id}", wait_until="networkidle", timeout=60000
        )
        page.get_by_text("Mondays 09:00 (Pacific/Auckland)").first.wait_for(timeout=30000)
        page.screenshot(path=str(SHOTS / "prefect-ui-weekly-schedule.png"), full_page=True)
