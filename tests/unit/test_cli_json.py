"""`--json` is where the README says it is: every command but the servers and file printers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main
from typer.testing import CliRunner

from regbatch.api.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), command


def test_every_command_but_those_the_readme_names_takes_json() -> None:
    without = {
        name
        for name, command in _commands(typer.main.get_command(app))
        if not any("--json" in param.opts for param in command.params)
    }
    sentence = README.read_text().split("every one takes `--json` except", 1)[1].split(".", 1)[0]
    assert without == set(re.findall(r"`([a-z -]+)`", sentence))


def test_deployments_list_as_json() -> None:
    outcome = CliRunner().invoke(app, ["deployments", "list", "--json"])
    rows = json.loads(outcome.stdout)
    weekly = next(r for r in rows if r["deployment"].endswith("auckland-hot-leads-weekly"))
    assert weekly["schedules"] and all(isinstance(s, str) for s in weekly["schedules"])
