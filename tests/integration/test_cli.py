"""The first CLI commands, run as the real console script against PostgreSQL."""

from __future__ import annotations

import secrets
from pathlib import Path

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
