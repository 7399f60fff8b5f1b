"""The Prefect UI, in a real headless browser, shows a finished batch's flow run with its
progress and results artifacts, a weekly schedule with its timezone, and a saved view of batch
runs without their restaurants; screenshots are saved to test-artifacts/."""

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


@needs_chromium
def test_a_saved_view_on_the_batch_tag_lists_batches_without_their_restaurants(
    org_id, sandbox
) -> None:
    """The README's recipe: Runs page, Tags filter `regbatch-batch`, Save View."""
    import httpx

    batch_id, _, _ = new_batch(org_id, 2, name="UI saved view")
    detail = run_batch(batch_id)
    ui, api = os.environ["PREFECT_UI_URL"], os.environ["PREFECT_API_URL"]
    view = f"regbatch batches {batch_id.hex[:8]}"
    with browser_page() as page:
        page.goto(f"{ui}/runs", wait_until="networkidle", timeout=60000)
        page.get_by_text("register-restaurant").first.wait_for(timeout=30000)  # unfiltered
        page.locator("button.p-select-button__control").filter(has_text="All tags").click()
        page.keyboard.type("regbatch-batch")
        page.locator(".p-select-option").filter(has_text="regbatch-batch").first.click()
        page.keyboard.press("Escape")
        page.wait_for_url("**tag=regbatch-batch**", timeout=30000)
        page.wait_for_load_state("networkidle")
        page.get_by_text(f"batch: {detail.name}").first.wait_for(timeout=30000)
        page.wait_for_timeout(1000)  # the list re-renders after the filter's query
        listed = page.inner_text("body")
        page.screenshot(path=str(SHOTS / "prefect-ui-runs-batch-tag.png"), full_page=True)
        page.locator(".p-icon-button-menu").first.click()
        page.get_by_text("Save View").first.click()
        page.locator(".save-filter-modal input").fill(view)
        page.locator(".save-filter-modal").get_by_role("button", name="Save").click()
        page.wait_for_load_state("networkidle")
    assert f"batch: {detail.name}" in listed
    # restaurant subflows are runs of the register-restaurant flow: none is listed
    assert "register-restaurant" not in listed, listed
    saved = httpx.post(f"{api}/saved_searches/filter", json={}).json()
    (mine,) = [s for s in saved if s["name"] == view]
    assert any("regbatch-batch" in str(f.get("value")) for f in mine["filters"]), mine
