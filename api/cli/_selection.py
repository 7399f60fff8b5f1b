"""Options that choose restaurants (`batch create`, `restaurants list`): ids given one by one or
in a file, and filters; the filter itself is regbatch.selection.RestaurantSelection."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from regbatch.errors import InvalidInputError
from regbatch.selection import RestaurantSelection

RestaurantOption = Annotated[
    list[str] | None, typer.Option("--restaurant", help="A restaurant id; repeat.")
]
AllOption = Annotated[
    bool, typer.Option("--all", help="Every restaurant of the organisation (filters narrow it).")
]
CityOption = Annotated[str | None, typer.Option("--city", help="Only this city (any case).")]
StageOption = Annotated[str | None, typer.Option("--stage", help="Lead stage: cold, warm, hot.")]
TypeOption = Annotated[str | None, typer.Option("--type", help="Lead type: inbound or outbound.")]
StatusOption = Annotated[
    str | None,
    typer.Option(
        "--status", help="Registration status: unregistered, in_progress, registered, failed."
    ),
]
SearchOption = Annotated[
    str | None, typer.Option("--search", help="Text in the name, email or city (any case).")
]
MinIcpOption = Annotated[int | None, typer.Option("--min-icp", help="Lowest ICP score (0-10).")]
LimitOption = Annotated[
    int | None, typer.Option("--limit", help="At most this many matches, best ICP score first.")
]
FromFileOption = Annotated[
    str | None,
    typer.Option("--from-file", help="A file of restaurant ids, one per line; - reads stdin."),
]
ID_FILE_MAX_BYTES = 10_000_000


def read_id_file(path: str | None) -> list[str]:
    """The ids of an id file (one per line; blank lines and # comments skipped)."""
    if path is None:
        return []
    try:
        if path == "-":
            text = sys.stdin.read(ID_FILE_MAX_BYTES + 1)
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(ID_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidInputError(f"cannot read --from-file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"--from-file {path} is not UTF-8 text; give one restaurant id per line"
        ) from None
    if len(text) > ID_FILE_MAX_BYTES:
        raise InvalidInputError(
            f"--from-file {path} is over {ID_FILE_MAX_BYTES // 1_000_000} MB; "
            "give one restaurant id per line"
        )
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def selection(**criteria: Any) -> RestaurantSelection:
    """The selection of the CLI's filter options (stage, type, status, ..., everything)."""
    return RestaurantSelection(
        city=criteria.get("city"),
        lead_stage=criteria.get("stage"),
        lead_type=criteria.get("type"),
        min_icp_score=criteria.get("min_icp"),
        registration_status=criteria.get("status"),
        search=criteria.get("search"),
        limit=criteria.get("limit"),
        everything=bool(criteria.get("everything")),
    )


RESTAURANT_HEADERS = ("id", "name", "city", "stage", "type", "ICP", "status")


def restaurant_cells(row: dict[str, Any]) -> list[str]:
    """A restaurant row (id, name, city, ...) as the cells of RESTAURANT_HEADERS."""
    return [
        row["id"],
        row["name"],
        row["city"] or "",
        row["lead_stage"],
        row["lead_type"],
        f"{row['icp_score']}/10",
        row["registration_status"],
    ]
