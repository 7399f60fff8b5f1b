"""Pre-flight validation: is a restaurant's configuration complete enough for its steps to run?

Every problem is reported at once, each naming the field and the fix. Only the inputs of steps
that will run are checked: a missing menu is fine when no menu step is on.
"""

from __future__ import annotations

from collections.abc import Callable

from regbatch import formats
from regbatch.config import RegistrationConfig
from regbatch.errors import Problem
from regbatch.steps import StepKey


def preflight(config: RegistrationConfig) -> list[Problem]:
    """Every problem that would make one of the restaurant's enabled steps fail."""
    return [
        *_restaurant_problems(config),
        *_account_problems(config),
        *_website_problems(config),
        *_menu_problems(config),
        *_onboarding_problems(config),
    ]


Check = Callable[[str], str | None]


def _need(value: object, field: str, fix: str, check: Check | None = None) -> list[Problem]:
    """The problem with a required value: missing, or (for text) failing `check`."""
    if value in (None, "", {}, []):
        return [Problem(field, f"is missing; {fix}")]
    if check is not None and isinstance(value, str):
        issue = check(value)
        if issue:
            return [Problem(field, issue)]
    return []


def _restaurant_problems(config: RegistrationConfig) -> list[Problem]:
    """The restaurant's own details, which every registration needs."""
    r = config.restaurant
    return [
        *_need(r.name, "restaurants.name", "set the restaurant's name"),
        *_need(
            r.email,
            "restaurants.email",
            "set restaurants.email or config.restaurant.email",
            formats.check_email,
        ),
        *_need(
            r.phone,
            "restaurants.phone",
            "set restaurants.phone or config.restaurant.phone",
            formats.check_phone,
        ),
        *_need(
            r.address, "restaurants.address", "set restaurants.address or config.restaurant.address"
        ),
        *_need(r.city, "restaurants.city", "set restaurants.city or config.restaurant.city"),
        *_opening_hours_problems(config),
        *_need(
            r.subdomain,
            "restaurants.subdomain",
            "set restaurants.subdomain",
            formats.check_subdomain,
        ),
    ]


def _opening_hours_problems(config: RegistrationConfig) -> list[Problem]:
    hours = config.restaurant.opening_hours
    if hours in (None, {}):
        return [
            Problem(
                "restaurants.opening_hours",
                'is missing; set it, e.g. {"mon": [{"open": "11:00", "close": "21:00"}]}',
            )
        ]
    issue = formats.check_opening_hours(hours)
    return [Problem("restaurants.opening_hours", issue)] if issue else []


def _account_problems(config: RegistrationConfig) -> list[Problem]:
    """A new owner's account needs a login; an existing one, its id."""
    a = config.account
    if a.create_account and config.step_enabled(StepKey.ACCOUNT_REGISTRATION):
        return [
            *_need(
                a.email,
                "config.account.email",
                "set restaurants.email or config.account.email (the owner's login)",
                formats.check_email,
            ),
            *_need(
                a.name, "config.account.name", "set restaurants.contact_name or config.account.name"
            ),
        ]
    if not a.create_account:
        return _need(
            a.existing_account_id,
            "config.account.existing_account_id",
            "give the owner's platform account id, or set account.create_account to true",
        )
    return []


def _website_problems(config: RegistrationConfig) -> list[Problem]:
    """Code generation needs the theme colours; a logo, when given, must be a URL."""
    w = config.website
    problems: list[Problem] = []
    if config.step_enabled(StepKey.CODE_GENERATION):
        fix = "code generation needs the theme colours; set it as #RRGGBB"
        problems += _need(w.primary_color, "restaurants.primary_color", fix, formats.check_colour)
        problems += _need(
            w.secondary_color, "restaurants.secondary_color", fix, formats.check_colour
        )
    if w.logo_url:
        problems += _need(w.logo_url, "restaurants.logo_url", "", formats.check_url)
    return problems


def _menu_problems(config: RegistrationConfig) -> list[Problem]:
    """A menu step that is on needs a menu, and the menu needs what each such step uses."""
    m = config.menu
    if not (m.import_menu and config.step_enabled(StepKey.MENU_IMPORT)):
        return []
    if m.data is None:
        return [
            Problem(
                "restaurants.menu",
                "is missing but menu import is on; import a menu for the restaurant "
                "or set config.menu.import_menu to false",
            )
        ]
    wants = [
        (
            m.upload_images and config.step_enabled(StepKey.IMAGE_UPLOAD),
            m.data.has_images,
            "has no item image_url but image upload is on; "
            "add images or set config.menu.upload_images to false",
        ),
        (
            m.create_option_sets and config.step_enabled(StepKey.OPTION_SETS),
            bool(m.data.option_sets),
            "has no option_sets but option sets are on; "
            "add them or set config.menu.create_option_sets to false",
        ),
        (
            m.create_item_tags and config.step_enabled(StepKey.ITEM_TAGS),
            m.data.has_tags,
            "has no item tags but item tags are on; "
            "add tags or set config.menu.create_item_tags to false",
        ),
    ]
    return [Problem("restaurants.menu", message) for on, has, message in wants if on and not has]


def _onboarding_problems(config: RegistrationConfig) -> list[Problem]:
    if config.onboarding.sync and not config.onboarding.create_user:
        return [
            Problem(
                "config.onboarding.sync",
                "is on but onboarding.create_user is off, so there is nothing to "
                "sync; turn create_user on or sync off",
            )
        ]
    return []
