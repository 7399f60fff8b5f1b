"""The Prefect UI, in a real headless browser, shows a finished batch's flow run with its
progress and results artifacts; a screenshot is saved to test-artifacts/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from regbatch.api.running import run_batch
from tests.flows.conftest import new_batch

pytestmark = [pytest.mark.flow, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it",
)
def test_the_ui_shows_the_batch_run_with_its_artifacts(org_id, sandbox) -> None:
    from playwright.sync_api import sync_playwright

    batch_id, _, restaurant_ids = new_batch(org_id, 2)
    sandbox.set_faults(
        [{"restaurant": str(restaurant_ids[1]), "step": "menu_import", "kind": "permanent"}]
    )
    detail = run_batch(batch_id)

    run_id = detail.flow_run_id
    assert run_id is not None
    ui = os.environ["PREFECT_UI_URL"]
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
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{ui}/runs/flow-run/{run_id}", wait_until="networkidle", timeout=60000)
        page.get_by_text(f"batch: {detail.name}").first.wait_for(timeout=30000)
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text(f"batch-{batch_id}-summary").first.wait_for(timeout=30000)
        body = page.inner_text("body")
        page.screenshot(path=str(SHOTS / "prefect-ui-batch-artifacts.png"), full_page=True)
        browser.close()
    for kind in ("progress", "restaurants", "summary"):
        assert f"batch-{batch_id}-{kind}" in body
