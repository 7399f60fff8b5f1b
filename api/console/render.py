"""Rendering console pages: the Jinja2 environment (templates inside the package, escaped by
default), the filters the templates use, and responses for pages, fragments and errors."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from regbatch.batch_rules import MAX_CONCURRENCY
from regbatch.reporting import duration_text

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"


def when(moment: datetime | None) -> str:
    """'2026-11-29 20:25 UTC', or '–' when there is none."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "–"


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["duration"] = duration_text
    env.globals["percent"] = percent
    env.globals["max_concurrency"] = MAX_CONCURRENCY
    return env


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A whole page (or a fragment: any template) rendered with `context`."""
    context.setdefault("session", None)
    body = environment().get_template(template).render(request=request, **context)
    return HTMLResponse(body, status_code=status_code, headers=HEADERS)


# Pages are private and act on a click: never cached, never framed by another site.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
