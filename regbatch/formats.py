"""Format checks shared by the restaurant import and the pre-flight validation.

Each `check_*` returns None when the value is well formed, else a message that says what is wrong
and what a good value looks like.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE_ALLOWED = re.compile(r"^\+?[0-9 ()\-.]+$")
_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def check_email(value: str) -> str | None:
    if not _EMAIL.match(value):
        return f"{value!r} is not an email address; use name@example.com"
    return None


def check_phone(value: str) -> str | None:
    digits = sum(ch.isdigit() for ch in value)
    if not _PHONE_ALLOWED.match(value) or not 7 <= digits <= 15:
        return f"{value!r} is not a phone number; use 7-15 digits, e.g. +64 9 555 0100"
    return None


def check_colour(value: str) -> str | None:
    if not _COLOUR.match(value):
        return f"{value!r} is not a colour; use #RRGGBB, e.g. #C0392B"
    return None


def check_subdomain(value: str) -> str | None:
    if not _SUBDOMAIN.match(value):
        return (
            f"{value!r} is not a valid subdomain; use lowercase letters, digits and dashes "
            "(1-63 characters, no dash at either end)"
        )
    return None


def check_url(value: str) -> str | None:
    if not re.match(r"^https?://[^\s/$.?#][^\s]*$", value):
        return f"{value!r} is not an http(s) URL; use https://host/path"
    return None


def check_opening_hours(value: Any) -> str | None:
    """Hours are {"mon": [{"open": "11:00", "close": "21:00"}], ...}; close < open is overnight."""
    example = 'use {"mon": [{"open": "11:00", "close": "21:00"}], ...}'
    if not isinstance(value, dict) or not value:
        return f"opening hours must be an object with at least one day; {example}"
    for day, spans in value.items():
        if day not in DAYS:
            return f"unknown day {day!r}; days are {', '.join(DAYS)}"
        if not isinstance(spans, list):
            return f"{day} must be a list of opening spans; {example}"
        for span in spans:
            if not isinstance(span, dict) or set(span) != {"open", "close"}:
                return f"{day} has a span {span!r} that is not {{open, close}}; {example}"
            for key in ("open", "close"):
                if not isinstance(span[key], str) or not _TIME.match(span[key]):
                    return f"{day} {key} time {span[key]!r} is not HH:MM (24-hour clock)"
            if span["open"] == span["close"]:
                return f"{day} opens and closes at the same time ({span['open']})"
    return None


def slugify(*parts: str) -> str:
    """A subdomain made from words: 'Pizza Palace', 'Auckland' -> 'pizza-palace-auckland'."""
    text = " ".join(p for p in parts if p)
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:63].rstrip("-") or "restaurant"
