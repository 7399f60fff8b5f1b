"""The operations console over HTTP (httpx through FastAPI's TestClient, against the ASGI app)
on the session's PostgreSQL schema: sign-in, the session cookie, CSRF, organisation scoping,
the batches list, the batch detail matrix and which actions it offers."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from regbatch.api.rest import create_app
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch
from regbatch.services.api_keys import create_api_key, revoke_api_key
from tests.factories import make_org, make_restaurants
from tests.integration.rest_support import finish_with_failure, new_draft, row_counts, set_status
from tests.settings_env import settings_env

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def app() -> object:
    return create_app()


@pytest.fixture()
def browser(app: object) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as client:  # type: ignore[arg-type]
        yield client


def sign_in(client: TestClient, key: str) -> str:
    """Sign in with `key`; the session's CSRF token (read from a page, as a browser would)."""
    form = client.get("/console/sign-in")
    token = CSRF.search(form.text)
    assert token is not None
    answer = client.post("/console/sign-in", data={"api_key": key, "csrf_token": token[1]})
    assert answer.status_code == 303, answer.text
    page = client.get("/console/batches")
    assert page.status_code == 200
    found = CSRF.search(page.text)
    assert found is not None
    return found[1]


def status_of(batch_id: uuid.UUID) -> tuple[str, str | None]:
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return str(batch.status), batch.requested_action


def buttons(html: str) -> list[str]:
    return re.findall(r'<button type="submit" class="act-([a-z-]+)"', html)


def test_root_and_pages_without_a_session_lead_to_sign_in(browser: TestClient) -> None:
    assert browser.get("/").headers["location"] == "/console"
    assert browser.get("/console").headers["location"] == "/console/batches"
    answer = browser.get("/console/batches")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in"
    polled = browser.get(f"/console/batches/{uuid.uuid4()}/live", headers={"HX-Request": "true"})
    assert polled.status_code == 401
    assert polled.headers["HX-Redirect"] == "/console/sign-in"


def test_sign_in_refuses_a_bad_key_and_a_form_without_its_token(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    form = browser.get("/console/sign-in")
    token = CSRF.search(form.text)
    assert token is not None
    bad = browser.post("/console/sign-in", data={"api_key": "rk_nope", "csrf_token": token[1]})
    assert bad.status_code == 401
    assert "was not accepted" in bad.text
    assert "regbatch_console=" not in bad.headers.get("set-cookie", "")
    key = create_api_key(org_id, "console").api_key
    forged = browser.post("/console/sign-in", data={"api_key": key, "csrf_token": "forged"})
    assert forged.status_code == 403
    assert "regbatch_console=" not in forged.headers.get("set-cookie", "")
    assert browser.get("/console/batches").status_code == 303


def test_the_session_cookie_is_signed_httponly_strict_and_never_holds_the_key(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    key = create_api_key(org_id, "console").api_key
    form = browser.get("/console/sign-in")
    token = CSRF.search(form.text)
    assert token is not None
    answer = browser.post("/console/sign-in", data={"api_key": key, "csrf_token": token[1]})
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("regbatch_console=")
    )
    flags = cookie.lower()
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/console" in flags
    assert re.search(r"max-age=\d+", flags)
    assert key not in cookie and key[3:] not in cookie
    page = browser.get("/console/batches")
    assert key not in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert "secure" not in flags  # plain HTTP (localhost); over HTTPS it is Secure:
    with TestClient(browser.app, base_url="https://testserver", follow_redirects=False) as tls:
        form = tls.get("/console/sign-in")
        token = CSRF.search(form.text)
        assert token is not None
        signed = tls.post("/console/sign-in", data={"api_key": key, "csrf_token": token[1]})
        assert "secure" in signed.headers["set-cookie"].lower()
    # A tampered cookie is no session.
    value = cookie.split(";")[0].split("=", 1)[1]
    browser.cookies.clear()
    browser.cookies.set("regbatch_console", "x" + value, path="/console")
    assert browser.get("/console/batches").status_code == 303


def test_revoking_the_key_ends_its_sessions(browser: TestClient, org_id: uuid.UUID) -> None:
    key = create_api_key(org_id, "console")
    sign_in(browser, key.api_key)
    revoke_api_key(org_id, key.id)
    assert browser.get("/console/batches").headers["location"] == "/console/sign-in"


def test_a_post_without_the_csrf_token_changes_nothing(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    batch_id = new_draft(org_id)
    sign_in(browser, create_api_key(org_id, "console").api_key)
    before = row_counts()
    for data in ({}, {"csrf_token": "not-the-token"}):
        answer = browser.post(f"/console/batches/{batch_id}/cancel", data=data)
        assert answer.status_code == 403
        assert "CSRF token" in answer.text
    assert status_of(batch_id) == ("draft", None)
    assert row_counts() == before
    assert browser.post("/console/sign-out", data={}).status_code == 403


def test_another_organisations_batch_is_not_found_and_untouched(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    with session_scope() as session:
        other_org = make_org(session)
    theirs = new_draft(other_org)
    csrf = sign_in(browser, create_api_key(org_id, "console").api_key)
    for path in ("", "/live", "/export.csv"):
        assert browser.get(f"/console/batches/{theirs}{path}").status_code == 404
    answer = browser.post(f"/console/batches/{theirs}/cancel", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert "error=" in answer.headers["location"]
    assert browser.get(answer.headers["location"]).status_code == 404
    assert status_of(theirs) == ("draft", None)
    assert str(theirs) not in browser.get("/console/batches").text


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("draft", ["start", "cancel"]),
        ("in_progress", ["pause", "cancel"]),
        ("paused", ["resume", "cancel"]),
        ("cancelled", []),
    ],
)
def test_the_detail_page_offers_only_the_actions_the_status_allows(
    browser: TestClient, org_id: uuid.UUID, state: str, expected: list[str]
) -> None:
    batch_id = new_draft(org_id)
    if state != "draft":
        set_status(batch_id, state)
    sign_in(browser, create_api_key(org_id, "console").api_key)
    page = browser.get(f"/console/batches/{batch_id}")
    assert page.status_code == 200
    assert buttons(page.text) == expected
    if not expected:
        assert "No action is possible" in page.text


def test_a_failed_batch_offers_retry_failed_and_its_matrix_shows_the_failure(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    batch_id = new_draft(org_id)
    finish_with_failure(batch_id)
    csrf = sign_in(browser, create_api_key(org_id, "console").api_key)
    live = browser.get(f"/console/batches/{batch_id}/live")
    assert buttons(live.text) == ["retry-failed"]
    assert "hx-trigger" not in live.text  # a finished batch is not polled
    assert live.text.count('<td class="cell s-failed"') == 1
    assert "services refused: no pickup" in live.text
    assert "Retry failed: it re-runs only the failed steps" in live.text
    panel_link = re.search(r'hx-get="(/console/batches/[^"]+/restaurants/[^"]+)"', live.text)
    assert panel_link is not None
    panel = browser.get(panel_link[1])
    assert "01-account_registration" in panel.text
    with session_scope() as session:
        other_org = make_org(session)
    stranger = TestClient(browser.app, follow_redirects=False)
    sign_in(stranger, create_api_key(other_org, "console").api_key)
    assert stranger.get(panel_link[1]).status_code == 404
    failed_only = browser.get(f"/console/batches/{batch_id}?show=failed")
    assert failed_only.text.count('<tr class="r-') == 1
    retried = browser.post(f"/console/batches/{batch_id}/retry-failed", data={"csrf_token": csrf})
    assert retried.status_code == 303
    new_page = browser.get(retried.headers["location"])
    assert "Retry batch made" in new_page.text
    again = browser.post(f"/console/batches/{batch_id}/retry-failed", data={"csrf_token": csrf})
    assert again.headers["location"].split("?")[0] == retried.headers["location"].split("?")[0]
    assert "already+in+this+retry+batch" in again.headers["location"]
    assert buttons(new_page.text) == ["start", "cancel"]


def test_pause_and_resume_through_the_console(browser: TestClient, org_id: uuid.UUID) -> None:
    batch_id = new_draft(org_id)
    set_status(batch_id, "in_progress")
    csrf = sign_in(browser, create_api_key(org_id, "console").api_key)
    polled = browser.get(f"/console/batches/{batch_id}/live")
    assert 'hx-trigger="every 2s' in polled.text
    assert "<small>at 01</small>" in polled.text  # regbatch.steps.current_step
    paused = browser.post(f"/console/batches/{batch_id}/pause", data={"csrf_token": csrf})
    assert "notice=Pause+requested" in paused.headers["location"]
    assert status_of(batch_id) == ("in_progress", "pause")
    page = browser.get(f"/console/batches/{batch_id}")
    assert buttons(page.text) == ["resume", "cancel"]
    browser.post(f"/console/batches/{batch_id}/resume", data={"csrf_token": csrf})
    assert status_of(batch_id) == ("in_progress", None)
    refused = browser.post(f"/console/batches/{batch_id}/start", data={"csrf_token": csrf})
    assert "start+refused" in refused.headers["location"]
    unknown = browser.post(f"/console/batches/{batch_id}/explode", data={"csrf_token": csrf})
    assert "does+not+exist" in unknown.headers["location"]


def test_the_batches_list_filters_searches_sorts_and_pages_in_sql(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    tag = uuid.uuid4().hex[:6]
    ids = [new_draft(org_id, 1, name=f"Console {tag} {i:02d}") for i in range(55)]
    set_status(ids[0], "cancelled")
    sign_in(browser, create_api_key(org_id, "console").api_key)
    first = browser.get(
        "/console/batches", params={"q": tag.upper(), "sort": "name", "order": "asc"}
    )
    assert "55 found" in first.text
    names = re.findall(rf"Console {tag} (\d\d)</a>", first.text)
    assert names == [f"{i:02d}" for i in range(50)]
    second = browser.get(
        "/console/batches", params={"q": tag, "sort": "name", "order": "asc", "page": 2}
    )
    assert re.findall(rf"Console {tag} (\d\d)</a>", second.text) == [
        f"{i:02d}" for i in range(50, 55)
    ]
    cancelled = browser.get("/console/batches", params={"q": tag, "status": "cancelled"})
    assert "1 found" in cancelled.text
    bad = browser.get("/console/batches", params={"sort": "colour"})
    assert bad.status_code == 400
    assert "'colour' is not a sort order; use one of created, name" in html.unescape(bad.text)


def test_templates_are_saved_from_a_filter_run_and_deleted(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    csrf = sign_in(browser, create_api_key(org_id, "console").api_key)
    refused = browser.post(
        "/console/templates",
        data={"csrf_token": csrf, "name": "Bad", "min_icp_score": "ten", "limit": "5"},
    )
    assert refused.status_code == 400
    assert "'ten' is not a whole number" in html.unescape(refused.text)
    assert "Bad</td>" not in refused.text
    nothing = browser.post(
        "/console/templates",
        data={"csrf_token": csrf, "name": "Nowhere", "city": "Atlantis", "limit": "3"},
    )
    assert nothing.status_code == 303
    listing = browser.get("/console/templates")
    assert "Nowhere</td>" in listing.text
    template_id = re.search(r"/console/templates/([0-9a-f-]{36})/run", listing.text)
    assert template_id is not None
    ran = browser.post(f"/console/templates/{template_id[1]}/run", data={"csrf_token": csrf})
    assert "No+restaurant+matches" in ran.headers["location"]
    gone = browser.post(f"/console/templates/{template_id[1]}/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303
    assert "Nowhere</td>" not in browser.get("/console/templates").text


def test_webhooks_are_added_with_their_secret_shown_once_and_removed(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    csrf = sign_in(browser, create_api_key(org_id, "console").api_key)
    bad = browser.post("/console/webhooks", data={"csrf_token": csrf, "url": "ftp://x"})
    assert bad.status_code == 400
    url = f"https://hooks.example.com/{uuid.uuid4().hex}"
    added = browser.post(
        "/console/webhooks", data={"csrf_token": csrf, "url": url, "events": "batch.failed"}
    )
    assert added.status_code == 200
    secret = re.search(r'id="secret" type="text" readonly value="([^"]+)"', added.text)
    assert secret is not None
    listing = browser.get("/console/webhooks")
    assert url in listing.text
    assert secret[1] not in listing.text
    assert "Delivery log" in listing.text
    webhook_id = re.search(r"/console/webhooks/([0-9a-f-]{36})/delete", listing.text)
    assert webhook_id is not None
    browser.post(f"/console/webhooks/{webhook_id[1]}/delete", data={"csrf_token": csrf})
    assert url not in browser.get("/console/webhooks").text


def test_restaurants_are_filtered_and_a_selection_gets_a_batch_form_with_its_preflight(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    city = f"Testville {uuid.uuid4().hex[:6]}"
    with session_scope() as session:
        ready = make_restaurants(session, org_id, 2, city=city, restaurant_type="cafe")
        make_restaurants(session, org_id, 1, city=city, primary_color=None)
        make_restaurants(session, org_id, 1, city="Elsewhere")
    csrf = sign_in(browser, create_api_key(org_id, "console").api_key)
    listed = browser.get("/console/restaurants", params={"city": city.lower()})
    assert "3 match" in listed.text
    cafes = browser.get("/console/restaurants", params={"city": city, "restaurant_type": "cafe"})
    assert "2 match" in cafes.text
    bad = browser.get("/console/restaurants", params={"lead_stage": "boiling"})
    assert bad.status_code == 400
    assert "boiling" in html.unescape(bad.text)

    nothing = browser.post("/console/batch-form", data={"csrf_token": csrf})
    assert "No+restaurant+was+chosen" in nothing.headers["location"]
    every = browser.post(
        "/console/batch-form", data={"csrf_token": csrf, "all_matching": "1", "city": city}
    )
    assert "Register 3 restaurants" in every.text
    assert "1 of 3 with problems" in every.text
    assert "restaurants.primary_color" in every.text
    chosen = browser.post(
        "/console/batch-form",
        data={"csrf_token": csrf, "restaurant_id": [str(r) for r in ready]},
    )
    assert "Register 2 restaurants" in chosen.text
    assert "0 of 2 with problems" in chosen.text


def test_the_batch_form_offers_the_servers_default_concurrency_and_its_maximum(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    """The form is filled in as a batch made without a concurrency would run: parallel, at
    REGBATCH_DEFAULT_CONCURRENCY restaurants at once, up to the one maximum."""
    from regbatch.batch_rules import MAX_CONCURRENCY

    with session_scope() as session:
        ready = make_restaurants(session, org_id, 2)
    csrf = sign_in(browser, create_api_key(org_id, "console").api_key)
    with settings_env({"REGBATCH_DEFAULT_CONCURRENCY": "9"}):
        form = browser.post(
            "/console/batch-form",
            data={"csrf_token": csrf, "restaurant_id": [str(r) for r in ready]},
        )
    field = re.search(r'<input id="b-conc"[^>]*>', form.text)
    assert field is not None, form.text
    assert 'value="9"' in field[0] and f'max="{MAX_CONCURRENCY}"' in field[0]


def test_the_batch_form_creates_nothing_until_everything_is_right(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    with session_scope() as session:
        ready = make_restaurants(session, org_id, 2)
        (colourless,) = make_restaurants(session, org_id, 1, primary_color=None)
    csrf = sign_in(browser, create_api_key(org_id, "console").api_key)
    base = {"csrf_token": csrf, "name": "Console form", "execution_mode": "parallel",
            "concurrency": "2", "breaker_threshold": "0.5", "breaker_min_finished": "3",
            "intent": "create"}  # fmt: skip
    before = row_counts()
    attempts = [
        ({"restaurant_id": [str(r) for r in ready], "settings_text": "{oops"}, "is not JSON"),
        ({"restaurant_id": [str(r) for r in ready], "concurrency": "many"}, "not a whole number"),
        ({"restaurant_id": [str(colourless)], "settings_text": "{}"}, "primary_color"),
        ({"restaurant_id": [str(r) for r in ready], "name": " "}, "name: is empty"),
        (
            {"restaurant_id": [str(r) for r in ready], "execution_mode": "sequential"},
            "sequential mode runs one restaurant at a time",
        ),
    ]
    for changes, expected in attempts:
        answer = browser.post("/console/batch-form/create", data={**base, **changes})
        assert answer.status_code == 400, (changes, answer.status_code)
        assert "Nothing was created" in answer.text
        assert expected in html.unescape(answer.text), expected
    assert row_counts() == before
    checked = browser.post(
        "/console/batch-form/create",
        data={**base, "intent": "check", "restaurant_id": [str(r) for r in ready]},
    )
    assert checked.status_code == 200
    assert row_counts() == before
    made = browser.post(
        "/console/batch-form/create",
        data={**base, "settings_text": '{"onboarding": {"create_user": true}}',
              "restaurant_id": [str(r) for r in ready]},
    )  # fmt: skip
    assert made.status_code == 303
    page = browser.get(made.headers["location"])
    assert "Batch created as a draft" in page.text
    assert "Console form" in page.text
    assert buttons(page.text) == ["start", "cancel"]


def test_the_batch_form_takes_a_thousand_restaurants(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    csrf = sign_in(browser, create_api_key(org_id, "console").api_key)
    ids = [str(uuid.uuid4()) for _ in range(1000)]
    answer = browser.post(
        "/console/batch-form/create",
        data={"csrf_token": csrf, "intent": "check", "name": "Big", "restaurant_id": ids},
    )
    assert answer.status_code == 200, answer.text[:500]
    assert answer.text.count('name="restaurant_id"') == 1000


def test_a_poll_of_the_matrix_costs_seven_queries_whatever_the_batch_size(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    """The session's key check, then one transaction: the batch row, job counts, the step
    histogram, the ETA's averages (restaurants', then steps' as none completed yet) and one
    page of the matrix; no step results."""
    from tests.integration.sql_support import sql_sent

    sign_in(browser, create_api_key(org_id, "console").api_key)
    for size in (2, 30):
        batch_id = new_draft(org_id, size)
        set_status(batch_id, "in_progress")
        with sql_sent() as statements:
            assert browser.get(f"/console/batches/{batch_id}/live").status_code == 200
        assert len(statements) == 7, statements
        assert not any("result_data" in s for s in statements)


def test_the_matrix_has_a_column_for_each_plugin_step_the_batch_recorded(
    browser: TestClient, org_id: uuid.UUID
) -> None:
    from sqlalchemy import update

    from regbatch.db import batches as batch_data
    from regbatch.db.models import JobStep

    batch_id = new_draft(org_id, 2)
    record = {
        "extra_steps": [
            {"number": 13, "key": "crm_sync", "after": ["restaurant_registration"],
             "blocking": False, "handler": "trucks.crm:sync", "timeout_s": 60, "retries": 3,
             "retry_delays_s": [2, 4, 8], "plugin": "regbatch-trucks", "does": "CRM sync"}
        ],
        "handlers": {},
    }  # fmt: skip
    with session_scope() as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(step_graph=record))
        for job in session.scalars(batch_data.select_jobs(batch_id)):
            session.add(
                JobStep(organisation_id=org_id, job_id=job.id, step_number=13,
                        step_key="crm_sync", status="failed", attempts=2,
                        error_message="CRM answered 422: no owner email",
                        handler="trucks.crm:sync")
            )  # fmt: skip
    sign_in(browser, create_api_key(org_id, "console").api_key)
    live = browser.get(f"/console/batches/{batch_id}/live")
    assert live.status_code == 200
    assert re.findall(r'<th scope="col" class="step"[^>]*><span>(\d\d)</span>', live.text) == [
        f"{n:02d}" for n in range(1, 14)
    ]
    assert live.text.count('<td class="cell s-failed"') == 2
    assert "CRM answered 422: no owner email" in live.text


class _Controls(HTMLParser):
    """Every form control of a page, and whether a label names it."""

    def __init__(self) -> None:
        super().__init__()
        self.label_for: set[str] = set()
        self.in_label = 0
        self.controls: list[tuple[str, dict[str, str | None], bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "label":
            self.in_label += 1
            if found.get("for"):
                self.label_for.add(str(found["for"]))
        elif tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.controls.append((tag, found, self.in_label > 0))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.in_label -= 1

    def unlabelled(self) -> list[str]:
        return [
            f"{tag} {found}"
            for tag, found, wrapped in self.controls
            if not wrapped and found.get("id") not in self.label_for and not found.get("aria-label")
        ]


def test_every_control_of_every_page_has_a_label(browser: TestClient, org_id: uuid.UUID) -> None:
    with session_scope() as session:
        make_restaurants(session, org_id, 2)
    batch_id = new_draft(org_id)
    finish_with_failure(batch_id)
    pages = {"/console/sign-in": browser.get("/console/sign-in").text}
    csrf = sign_in(browser, create_api_key(org_id, "console").api_key)
    for path in ("/console/batches", f"/console/batches/{batch_id}", "/console/restaurants",
                 "/console/templates", "/console/webhooks"):  # fmt: skip
        pages[path] = browser.get(path).text
    pages["batch form"] = browser.post(
        "/console/batch-form", data={"csrf_token": csrf, "all_matching": "1"}
    ).text
    for path, text in pages.items():
        parser = _Controls()
        parser.feed(text)
        assert parser.controls or path == f"/console/batches/{batch_id}", path
        assert parser.unlabelled() == [], path
