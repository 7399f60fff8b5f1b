"""The operations console in a real headless browser (Debian's Chromium) against a real
`regbatch api serve` process, with `regbatch serve` running the started batches on the session's
Prefect server and the sandbox platform: sign in, filter restaurants, register a selection and
start it, watch its matrix reach the end with one planted failure, retry the failure, pause and
resume another batch. Screenshots of each page go to test-artifacts/console/."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regbatch.db.engine import session_scope
from regbatch.services.api_keys import create_api_key
from tests.cli import REGBATCH
from tests.conftest import free_port
from tests.factories import make_restaurants
from tests.flows.test_deployments import served  # noqa: F401 - a fixture
from tests.processes import stop_group, wait_answering

pytestmark = [pytest.mark.flow, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture()
def console(sandbox_server: Any, tmp_path: Path) -> Iterator[str]:
    """`regbatch api serve` on a free port (its own process, this session's settings)."""
    port = free_port()
    log = tmp_path / "api.log"
    process = subprocess.Popen(
        [REGBATCH, "api", "serve", "--port", str(port)],
        stdout=open(log, "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env={**os.environ},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_answering(f"{url}/console/sign-in", process, 60, "regbatch api serve", log, 0.3)
    try:
        yield url
    finally:
        stop_group(process)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_status(page: Any, *statuses: str, timeout_s: float = 120) -> str:
    """Wait until the live section (polled by htmx every 2 s) shows one of `statuses`."""
    selector = ", ".join(f'#live[data-status="{s}"]' for s in statuses)
    page.wait_for_selector(selector, timeout=timeout_s * 1000)
    return str(page.get_attribute("#live", "data-status"))


def register(page: Any, url: str, city: str, name: str, mode: str, pick: str) -> None:
    """Filter restaurants by city, choose them (`all` matching, or tick `each`), fill the
    batch form and create and start the batch."""
    page.goto(f"{url}/console/restaurants")
    page.fill("#f-city", city)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_selector("text=3 match")
    if pick == "all":
        page.check("#all-matching")
    else:
        for box in page.locator("input[name=restaurant_id]").all():
            box.check()
    shot(page, f"restaurants-{pick}")
    page.click("#register-selected")
    page.wait_for_selector("text=Register 3 restaurants")
    page.fill("#b-name", name)
    page.select_option("#b-mode", mode)
    page.fill("#b-conc", "3" if mode == "parallel" else "1")
    page.fill("#b-settings", '{"onboarding": {"create_user": true, "sync": true}}')
    page.get_by_role("button", name="Check again").click()
    page.wait_for_selector("text=0 of 3 with problems")
    shot(page, f"batch-form-{pick}")
    page.click("#create-and-start")
    page.wait_for_selector("text=Batch submitted to Prefect")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it",
)
def test_the_console_registers_watches_retries_pauses_and_resumes(
    org_id: uuid.UUID,
    sandbox: Any,
    served: None,  # noqa: F811 - the fixture imported above
    console: str,
) -> None:
    from playwright.sync_api import sync_playwright

    tag = uuid.uuid4().hex[:6]
    first_city, second_city = f"Tauranga {tag}", f"Napier {tag}"
    with session_scope() as session:
        first = make_restaurants(session, org_id, 3, city=first_city)
        make_restaurants(session, org_id, 3, city=second_city)
    sandbox.set_faults([{"restaurant": str(first[1]), "step": "menu_import", "kind": "permanent"}])
    key = create_api_key(org_id, "console-ui").api_key
    SHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{console}/")
        page.wait_for_selector("#api_key")
        shot(page, "sign-in")
        page.fill("#api_key", "rk_not-a-key")
        page.keyboard.press("Enter")
        page.wait_for_selector("text=was not accepted")
        page.fill("#api_key", key)
        page.keyboard.press("Enter")
        page.wait_for_selector("h1:has-text('Batches')")
        assert key not in page.content()

        # A selection of all matching restaurants, one of which fails at menu_import.
        register(page, console, first_city, f"Tauranga {tag}", "parallel", "all")
        assert wait_status(page, "completed", "failed") == "completed"  # 2 of 3 succeeded
        assert page.locator("td.cell.s-failed").count() == 1
        assert page.locator("td.cell.s-completed").count() >= 2 * 12 - 2
        failed_row = page.locator("tr.r-failed")
        assert failed_row.count() == 1
        assert "menu" in (failed_row.locator("td.error").inner_text()).lower()
        failed_row.locator("button.linkish").click()
        page.wait_for_selector("#restaurant-panel >> text=09-menu_import")
        shot(page, "batch-matrix")

        # Retry failed, with the fault gone: only the failed restaurant runs again.
        sandbox.clear_faults()
        page.get_by_role("button", name="Retry failed").click()
        page.wait_for_selector("text=Retry batch made of the failed restaurants")
        page.get_by_role("button", name="Start").click()
        page.wait_for_selector("text=Batch submitted to Prefect")
        assert wait_status(page, "completed", "failed") == "completed"
        assert page.locator("td.cell.s-failed").count() == 0
        shot(page, "batch-retry")

        # Another batch, sequential and slow enough to pause mid-way, then resume.
        sandbox.set_latency(default_ms=250)
        register(page, console, second_city, f"Napier {tag}", "sequential", "each")
        wait_status(page, "in_progress")
        shot(page, "batch-running")
        page.get_by_role("button", name="Pause").click()
        page.wait_for_selector("text=Pause requested")
        assert wait_status(page, "paused", "completed") == "paused"
        shot(page, "batch-paused")
        page.get_by_role("button", name="Resume").click()
        page.wait_for_selector("text=Batch resumed")
        assert wait_status(page, "completed", "failed") == "completed"
        sandbox.set_latency(default_ms=0)

        page.goto(f"{console}/console/batches?q={tag}")
        page.wait_for_selector(f"text=Napier {tag}")
        shot(page, "batches")
        page.goto(f"{console}/console/templates")
        page.fill("#t-name", f"Tauranga hot {tag}")
        page.fill("#t-city", first_city)
        page.select_option("#t-stage", "hot")
        page.fill("#t-limit", "5")
        page.get_by_role("button", name="Save template").click()
        page.wait_for_selector(f"text=Template 'Tauranga hot {tag}' saved.")
        shot(page, "templates")
        page.goto(f"{console}/console/webhooks")
        page.fill("#w-url", f"https://hooks.example.com/{tag}")
        page.check("input[value='batch.failed']")
        page.get_by_role("button", name="Add webhook").click()
        page.wait_for_selector("#secret")
        shot(page, "webhooks")
        page.goto(f"{console}/console/webhooks")
        assert page.locator("#secret").count() == 0  # shown once
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_selector("#api_key")
        browser.close()
