"""The first CLI commands, run as the real console script against PostgreSQL."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.cli import cli, cli_json, run
from tests.factories import EXAMPLES

CSV = EXAMPLES.with_suffix(".csv")


def test_import_list_and_batch_round_trip() -> None:
    org = cli_json("org", "create", f"CLI Foods {secrets.token_hex(3)}")
    assert set(org) >= {"id"}
    assert cli_json("db", "upgrade")["revision"]
    imported = cli_json("restaurants", "import", str(EXAMPLES), "--org", org["id"])
    listed = cli_json("restaurants", "list", "--org", org["id"])
    assert imported["imported"] == len(listed) >= 10
    assert all(
        "account_password" not in row and "account_password_encrypted" not in row for row in listed
    )
    ids = [row["id"] for row in listed[:3]]
    created = cli_json(
        "batch",
        "create",
        "--org",
        org["id"],
        "--name",
        "Auckland Q4",
        "--mode",
        "parallel",
        "--concurrency",
        "2",
        *[arg for rid in ids for arg in ("--restaurant", rid)],
    )
    assert created["jobs_count"] == 3
    shown = cli_json("batch", "show", created["batch_id"])
    assert shown["status"] == "draft" and len(shown["jobs"]) == 3
    assert all(len(job["steps"]) == 12 for job in shown["jobs"])
    page = cli_json("batch", "list", "--org", org["id"])
    assert [b["id"] for b in page["items"]] == [created["batch_id"]]
    human = cli("batch", "show", created["batch_id"]).stdout
    assert "Auckland Q4" in human and "draft" in human


def test_csv_import(tmp_path: Path) -> None:
    org = cli_json("org", "create", f"CSV Foods {secrets.token_hex(3)}")
    assert cli_json("restaurants", "import", str(CSV), "--org", org["id"])["imported"] == 3


def test_errors_are_one_clear_line_on_stderr_and_a_non_zero_exit(tmp_path: Path) -> None:
    missing = run("batch", "show", "00000000-0000-0000-0000-000000000000", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith(
        "error: batch 00000000-0000-0000-0000-000000000000 does not exist"
    )
    assert missing.stdout == ""
    org = cli_json("org", "create", f"Bad Rows {secrets.token_hex(3)}")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "Ok Cafe"}, {"name": "", "email": "x"}, {"nme": "typo"}]')
    result = cli("restaurants", "import", str(bad), "--org", org["id"], check=False)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert (
        lines[0]
        == "error: 2 of 3 rows are invalid; nothing was imported, fix them and import again"
    )
    assert any(line.startswith("  - row 2: email:") for line in lines)
    assert any(line.startswith("  - row 3: nme: is not a restaurants column") for line in lines)
    assert cli_json("restaurants", "list", "--org", org["id"]) == []


def test_unreachable_database_names_the_variable() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    result = run("db", "upgrade", env={"REGBATCH_DATABASE_URL": url}, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: REGBATCH_DATABASE_URL={url} cannot be reached")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_database_url_names_the_variable() -> None:
    result = run("org", "create", "x", env={"REGBATCH_DATABASE_URL": "mysql://a@b/c"}, check=False)
    assert result.returncode == 1
    assert "REGBATCH_DATABASE_URL uses driver 'mysql'" in result.stderr


def _org_with_examples() -> tuple[str, list[dict[str, Any]]]:
    org = cli_json("org", "create", f"Pick Foods {secrets.token_hex(3)}")["id"]
    cli_json("restaurants", "import", str(EXAMPLES), "--org", org)
    return org, cli_json("restaurants", "list", "--org", org)


def _batches(org: str) -> list[Any]:
    return list(cli_json("batch", "list", "--org", org)["items"])


def test_batch_create_chooses_restaurants_by_filters_combined_with_ids(tmp_path: Path) -> None:
    org, listed = _org_with_examples()
    hot_auckland = [r["id"] for r in listed if r["city"] == "Auckland" and r["lead_stage"] == "hot"]
    created = cli("batch", "create", "--org", org, "--name", "Hot", "--city", "auckland",
                  "--stage", "hot")  # fmt: skip
    assert created.stderr.strip() == f"{len(hot_auckland)} restaurants match"
    batch = cli_json("batch", "show", created.stdout.strip())
    assert [j["restaurant_id"] for j in batch["jobs"]] == hot_auckland  # best ICP first
    cli("batch", "cancel", batch["id"])

    nelson = next(r["id"] for r in listed if r["city"] == "Nelson")
    ids = tmp_path / "ids.txt"
    ids.write_text(f"# chosen by hand\n{nelson}\n\n{hot_auckland[0]}\n")
    combined = cli_json("batch", "create", "--org", org, "--name", "Mixed", "--from-file",
                        str(ids), "--type", "inbound", "--limit", "2", "--restaurant", nelson)  # fmt: skip
    shown = cli_json("batch", "show", combined["batch_id"])
    inbound = [r["id"] for r in listed if r["lead_type"] == "inbound"]
    expected = list(dict.fromkeys([nelson, hot_auckland[0], *inbound[:2]]))
    assert [j["restaurant_id"] for j in shown["jobs"]] == expected
    assert combined["jobs_count"] == len(expected)


def test_batch_create_from_stdin_and_search_and_all() -> None:
    org, listed = _org_with_examples()
    from regbatch.api.cli import app

    ramen = next(r["id"] for r in listed if "Ramen" in r["name"])
    outcome = CliRunner().invoke(
        app, ["batch", "create", "--org", org, "--name", "Stdin", "--from-file", "-", "--json",
              "--dry-run"], input=f"{ramen}\n",
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    assert [r["id"] for r in json.loads(outcome.stdout)["restaurants"]] == [ramen]
    searched = cli_json("batch", "create", "--org", org, "--name", "S", "--search", "RAMEN",
                        "--dry-run")  # fmt: skip
    assert [r["id"] for r in searched["restaurants"]] == [ramen]
    everything = cli_json("batch", "create", "--org", org, "--name", "All", "--all", "--dry-run")
    assert everything["jobs_count"] == len(listed)
    assert _batches(org) == []  # dry runs write nothing


def test_batch_create_dry_run_shows_the_restaurants_and_writes_nothing() -> None:
    org, listed = _org_with_examples()
    result = cli("batch", "create", "--org", org, "--name", "Try", "--city", "Auckland",
                 "--dry-run")  # fmt: skip
    auckland = [r for r in listed if r["city"] == "Auckland"]
    assert result.stderr.strip() == f"{len(auckland)} restaurants match"
    assert all(r["id"] in result.stdout for r in auckland)  # whole ids at 80 columns
    assert "nothing was written" in result.stdout
    assert _batches(org) == []
    # a dry run still runs every check
    bad = cli("batch", "create", "--org", org, "--name", "Bad", "--all", "--mode", "parallel",
              "--concurrency", "0", "--dry-run", check=False)  # fmt: skip
    assert bad.returncode == 1 and "concurrency" in bad.stderr
    assert _batches(org) == []


def test_batch_create_refuses_no_choice_bad_filters_and_unknown_ids(tmp_path: Path) -> None:
    org, _ = _org_with_examples()
    nothing = cli("batch", "create", "--org", org, "--name", "X", check=False)
    assert nothing.returncode == 1
    assert "no restaurant chosen; pass --restaurant ID, --from-file FILE, --all" in nothing.stderr
    none_match = cli("batch", "create", "--org", org, "--name", "X", "--city", "Atlantis",
                     check=False)  # fmt: skip
    assert none_match.returncode == 1 and "no restaurant matches the filters" in none_match.stderr
    bad_stage = cli("batch", "create", "--org", org, "--name", "X", "--stage", "tepid",
                    check=False)  # fmt: skip
    assert "stage 'tepid' is not one of: cold, warm, hot; choose one of them" in bad_stage.stderr
    stranger = "00000000-0000-4000-8000-000000000000"
    unknown = cli("batch", "create", "--org", org, "--name", "X", "--all", "--restaurant",
                  stranger, check=False)  # fmt: skip
    assert (
        unknown.returncode == 1 and f"{stranger}: restaurant_ids: does not exist" in unknown.stderr
    )
    lone_limit = cli("batch", "create", "--org", org, "--name", "X", "--restaurant",
                     str(uuid.uuid4()), "--limit", "3", check=False)  # fmt: skip
    assert "--limit 3 caps the restaurants the filters match, and none is given" in (
        lone_limit.stderr
    )
    missing = cli("batch", "create", "--org", org, "--name", "X", "--from-file",
                  str(tmp_path / "none.txt"), check=False)  # fmt: skip
    assert missing.returncode == 1 and "cannot read --from-file" in missing.stderr
    assert _batches(org) == []


def test_tables_never_cut_an_id() -> None:
    org, listed = _org_with_examples()
    table = cli("restaurants", "list", "--org", org).stdout
    assert all(r["id"] in table for r in listed)
    assert "left out to fit the terminal; --wide or --json shows them" in table
    wide = cli("restaurants", "list", "--org", org, "--wide").stdout
    assert all(r["id"] in wide for r in listed) and "unregistered" in wide
    batch_id = cli_json("batch", "create", "--org", org, "--name", "A long batch name " * 4,
                        "--all")["batch_id"]  # fmt: skip
    assert batch_id in cli("batch", "list", "--org", org).stdout
    key = cli_json("org", "key", "create", org, "--name", "a key with a long name " * 3)
    assert key["id"] in cli("org", "key", "list", org).stdout
    url = "https://hooks.example.com/" + "long-path/" * 8
    hook = cli_json("webhook", "create", "--org", org, "--url", url)
    assert hook["id"] in cli("webhook", "list", "--org", org).stdout


def _import(path: Path, org: str, *flags: str) -> Any:
    return cli_json("restaurants", "import", str(path), "--org", org, *flags)


def test_importing_a_file_twice_updates_instead_of_doubling(tmp_path: Path) -> None:
    org = cli_json("org", "create", f"Twice {secrets.token_hex(3)}")["id"]
    first = _import(EXAMPLES, org)
    assert (first["created"], first["updated"], first["unchanged"]) == (first["imported"], 0, 0)
    rows = json.loads(EXAMPLES.read_text())
    rows[0]["cuisine"] = "Wood-fired pizza"
    rows.append({"name": "New Place", "email": "new-place@example.com"})
    changed = tmp_path / "changed.jsonl"
    changed.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    preview = _import(changed, org, "--dry-run")
    expected = (1, 1, len(rows) - 2)
    assert (preview["created"], preview["updated"], preview["unchanged"]) == expected
    assert preview["rows"][0] == {
        "row": 1, "action": "updated", "id": first["ids"][0], "name": rows[0]["name"]
    }  # fmt: skip
    assert len(cli_json("restaurants", "list", "--org", org)) == len(rows) - 1  # dry run
    done = cli("restaurants", "import", str(changed), "--org", org).stdout.splitlines()
    assert done[0].startswith(f"row 1: updated   {first['ids'][0]}")
    assert done[-1] == f"1 created, 1 updated, {len(rows) - 2} unchanged"
    assert len(cli_json("restaurants", "list", "--org", org)) == len(rows)


MALFORMED = {
    "nul.csv": (b"name,email,account_password\nA\x00B,a@b.co,Secret-password-1\n",
                "row 1, field name: holds a NUL byte; remove it"),
    "nul.json": (b'[{"name": "ok", "account_password": "Secret-password-1", "city": "A\\u0000"}]',
                 "row 1, field city: holds a NUL byte; remove it"),
    "latin.csv": (b"name,city\nCaf\xe9,Auckland\n",
                  "is not UTF-8 text (byte 0xe9 near row 1); save the file as UTF-8"),
    "deep.json": (b"[" * 100_000 + b"]" * 100_000,
                  "row 1: nests its JSON too deeply; a restaurant needs a few levels at most"),
    "deep.jsonl": (b'{"name": "x", "menu": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
                   "row 1: nests its JSON too deeply"),
    "cell.csv": (b'name,menu\nA,"{""categories"": ["\n',
                 "row 1, field menu: is not JSON"),
    "comma.json": (b'[{"name": "A"},, ]', "row 2: is not JSON (Expecting value); fix the JSON"),
    "object.json": (b'{"name": "A"}', "starts with '{', not a JSON array; wrap the restaurants"),
    "cells.csv": (b"name\nA,B\n", "row 1: has more cells than the header has columns"),
    "huge.jsonl": (b'{"name": "' + b"x" * 1_100_000 + b'"}\n', "row 1: is over 1,000,000 characters"),
    "huge.json": (b'[{"name": "ok"}, {"name": "' + b"x" * 1_100_000 + b'"}]',
                  "row 2: is over 1,000,000 characters"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_file_is_one_clear_line_and_writes_nothing(tmp_path: Path, name: str) -> None:
    content, message = MALFORMED[name]
    path = tmp_path / name
    path.write_bytes(content)
    org = cli_json("org", "create", f"Malformed {secrets.token_hex(3)}")["id"]
    result = cli("restaurants", "import", str(path), "--org", org, check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: cannot import {path}")
    assert message in result.stderr and "nothing was imported" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "INSERT" not in result.stderr and "Secret" not in result.stderr
    assert cli_json("restaurants", "list", "--org", org) == []


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    org = cli_json("org", "create", f"Big {secrets.token_hex(3)}")["id"]
    result = run(
        "restaurants", "import", str(EXAMPLES), "--org", org,
        env={"REGBATCH_IMPORT_MAX_BYTES": "1000"}, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot import {EXAMPLES}: it has ")
    assert "over the import limit of 1,000 (REGBATCH_IMPORT_MAX_BYTES)" in result.stderr
    assert cli_json("restaurants", "list", "--org", org) == []


def test_wrong_choices_name_the_valid_ones_in_the_users_words(tmp_path: Path) -> None:
    org, _ = _org_with_examples()
    mode = cli("batch", "create", "--org", org, "--name", "X", "--all", "--mode", "bogus",
               check=False)  # fmt: skip
    assert mode.returncode == 1
    assert (
        "execution_mode: mode 'bogus' is not one of: sequential, parallel, distributed; "
        "choose one of them" in mode.stderr
    )
    assert "Value error" not in mode.stderr
    settings = tmp_path / "settings.json"
    settings.write_text('{"payment": {"stripe": true}, "bogus": 1}')
    unknown = cli("batch", "create", "--org", org, "--name", "X", "--all", "--settings",
                  str(settings), check=False)  # fmt: skip
    assert "RegistrationConfig" not in unknown.stderr
    assert (
        "settings.payment.stripe: is not a known field; choose one of: provider, "
        "stripe_connect, currency" in unknown.stderr
    )
    assert "settings.bogus: is not a known setting; choose one of: account, restaurant" in (
        unknown.stderr
    )
    listed = cli("batch", "list", "--org", org, "--status", "done", check=False)
    assert "batch status 'done' is not one of: draft, pending, in_progress" in listed.stderr
    export = cli("batch", "export", "00000000-0000-4000-8000-000000000000", "--format", "xml",
                 check=False)  # fmt: skip
    assert "--format 'xml' is not one of: csv, json; choose one of them" in export.stderr
    assert _batches(org) == []


def _set(model: Any, where: Any, **values: Any) -> None:
    from sqlalchemy import update

    from regbatch.db.engine import session_scope

    with session_scope() as session:
        session.execute(update(model).where(where).values(**values))


def test_batch_show_after_a_pause_and_a_cancel() -> None:
    from regbatch.db.models import Batch

    org, _ = _org_with_examples()
    batch_id = cli_json("batch", "create", "--org", org, "--name", "Cut", "--city", "Auckland")[
        "batch_id"
    ]
    # the breaker had paused it once; its reason stays on the row
    _set(Batch, Batch.id == uuid.UUID(batch_id), pause_reason="3 of 4 finished failed")
    cli("batch", "cancel", batch_id)
    shown = cli("batch", "show", batch_id).stdout
    assert "5/5 finished (0 ok, 0 failed, 5 cancelled, 0 skipped)" in shown
    assert "paused" not in shown and "3 of 4 finished failed" not in shown


def test_batch_show_names_the_waiting_step_and_one_restaurant_in_full() -> None:
    from regbatch.db.models import Job, JobStep
    from regbatch.statuses import JobStatus, StepStatus

    org, _ = _org_with_examples()
    batch_id = cli_json("batch", "create", "--org", org, "--name", "Show", "--city", "Auckland")[
        "batch_id"
    ]
    first, second = cli_json("batch", "show", batch_id)["jobs"][:2]
    waiting, failing = uuid.UUID(first["id"]), uuid.UUID(second["id"])
    # image upload (4) finished while account registration (1) waits for its turn
    for number in (2, 3, 4):
        _set(JobStep, (JobStep.job_id == waiting) & (JobStep.step_number == number),
             status=StepStatus.COMPLETED)  # fmt: skip
    _set(Job, Job.id == waiting, status=JobStatus.IN_PROGRESS, current_step=4)
    error = "the platform refused the menu: " + "price missing on item Margherita " * 6 + "END"
    _set(JobStep, (JobStep.job_id == failing) & (JobStep.step_number == 1),
         status=StepStatus.FAILED, error_message=error)  # fmt: skip
    _set(Job, Job.id == failing, status=JobStatus.FAILED)
    detail = cli_json("batch", "show", batch_id)
    assert detail["jobs"][0]["current_step"] == 1  # not 4
    table = cli("batch", "show", batch_id).stdout
    assert "01-account_registration" in table and "04-image_upload" not in table
    assert "END" in table  # wrapped, not cut
    full = cli("batch", "show", batch_id, "2").stdout
    assert " ".join(error.split()) in " ".join(full.replace("│", " ").split())
    assert cli_json("batch", "show", batch_id, second["restaurant_name"])["id"] == second["id"]
    missing = cli("batch", "show", batch_id, "99", check=False)
    assert missing.returncode == 1
    assert f"restaurant '99' is not in batch {batch_id}; give its number (1-5)" in missing.stderr


def test_filters_leave_out_restaurants_an_unfinished_batch_holds() -> None:
    org, listed = _org_with_examples()
    auckland = [r["id"] for r in listed if r["city"] == "Auckland"]
    cli("batch", "create", "--org", org, "--name", "First", "--city", "Auckland")
    again = cli("batch", "create", "--org", org, "--name", "Again", "--city", "Auckland",
                check=False)  # fmt: skip
    assert again.returncode == 1
    assert again.stderr.startswith(
        f"0 restaurants match; {len(auckland)} more left out: an unfinished batch holds them"
    )
    assert "no restaurant matches the filters" in again.stderr
    rest = cli_json("batch", "create", "--org", org, "--name", "Rest", "--all", "--dry-run")
    assert {r["id"] for r in rest["restaurants"]} == {r["id"] for r in listed} - set(auckland)
    # named by id, a held restaurant is refused with the batch that holds it
    held = cli("batch", "create", "--org", org, "--name", "Held", "--restaurant", auckland[0],
               check=False)  # fmt: skip
    assert "is already in unfinished batch" in held.stderr


def test_batch_show_of_a_big_batch_lists_the_failed_first_up_to_its_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from regbatch.api.cli import batch_cmd
    from regbatch.db.batches import recompute_counters
    from regbatch.db.engine import session_scope
    from regbatch.db.models import Job
    from regbatch.statuses import JobStatus

    monkeypatch.setattr(batch_cmd, "SHOW_ROWS", 3)  # the cap is 100; this batch has 5
    org, _ = _org_with_examples()
    batch_id = cli_json("batch", "create", "--org", org, "--name", "Big", "--city", "Auckland")[
        "batch_id"
    ]
    jobs = cli_json("batch", "show", batch_id)["jobs"]
    _set(Job, Job.id == uuid.UUID(jobs[3]["id"]), status=JobStatus.FAILED)
    _set(Job, Job.id == uuid.UUID(jobs[0]["id"]), status=JobStatus.COMPLETED)
    with session_scope() as session:
        recompute_counters(session, uuid.UUID(batch_id))

    shown = cli("batch", "show", batch_id).stdout
    names = [j["restaurant_name"] for j in jobs]
    # the failed one first, then the others in the batch's order up to the cap
    assert [name for name in names if name in shown] == [names[0], names[1], names[3]]
    assert shown.index(names[3]) < shown.index(names[0]) < shown.index(names[1])
    assert f"the 3 shown of 5, failed first; every one: regbatch batch show {batch_id} --all" in (
        " ".join(shown.split())
    )
    assert "2/5 finished (1 ok, 1 failed, 0 cancelled, 0 skipped)" in shown

    every = cli("batch", "show", batch_id, "--all").stdout
    assert all(name in every for name in names) and "failed first" not in every
    assert len(cli_json("batch", "show", batch_id)["jobs"]) == 5
