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
    problems: list[Problem] = []

    def need(
        value: object, field: str, fix: str, check: Callable[[str], str | None] | None = None
    ) -> None:
        if value in (None, "", {}, []):
            problems.append(Problem(field, f"is missing; {fix}"))
        elif check is not None and isinstance(value, str):
            issue = check(value)
            if issue:
                problems.append(Problem(field, issue))

    r, a, w, m = config.restaurant, config.account, config.website, config.menu
    need(r.name, "restaurants.name", "set the restaurant's name")
    need(
        r.email,
        "restaurants.email",
        "set restaurants.email or config.restaurant.email",
        formats.check_email,
    )
    need(
        r.phone,
        "restaurants.phone",
        "set restaurants.phone or config.restaurant.phone",
        formats.check_phone,
    )
    need(r.address, "restaurants.address", "set restaurants.address or config.restaurant.address")
    need(r.city, "restaurants.city", "set restaurants.city or config.restaurant.city")
    if r.opening_hours in (None, {}):
        problems.append(
            Problem(
                "restaurants.opening_hours",
                'is missing; set it, e.g. {"mon": [{"open": "11:00", "close": "21:00"}]}',
            )
        )
    else:
        issue = formats.check_opening_hours(r.opening_hours)
        if issue:
            problems.append(Problem("restaurants.opening_hours", issue))
    need(r.subdomain, "restaurants.subdomain", "set restaurants.subdomain", formats.check_subdomain)

    if a.create_account and config.step_enabled(StepKey.ACCOUNT_REGISTRATION):
        need(
            a.email,
            "config.account.email",
            "set restaurants.email or config.account.email (the owner's login)",
            formats.check_email,
        )
        need(a.name, "config.account.name", "set restaurants.contact_name or config.account.name")
    elif not a.create_account:
        need(
            a.existing_account_id,
            "config.account.existing_account_id",
            "give the owner's platform account id, or set account.create_account to true",
        )

    if config.step_enabled(StepKey.CODE_GENERATION):
        need(
            w.primary_color,
            "restaurants.primary_color",
            "code generation needs the theme colours; set it as #RRGGBB",
            formats.check_colour,
        )
        need(
            w.secondary_color,
            "restaurants.secondary_color",
            "code generation needs the theme colours; set it as #RRGGBB",
            formats.check_colour,
        )
    if w.logo_url:
        need(w.logo_url, "restaurants.logo_url", "", formats.check_url)

    menu_on = m.import_menu and config.step_enabled(StepKey.MENU_IMPORT)
    if menu_on and m.data is None:
        problems.append(
            Problem(
                "restaurants.menu",
                "is missing but menu import is on; import a menu for the restaurant "
                "or set config.menu.import_menu to false",
            )
        )
    if m.data is not None and menu_on:
        if m.upload_images and config.step_enabled(StepKey.IMAGE_UPLOAD) and not m.data.has_images:
            problems.append(
                Problem(
                    "restaurants.menu",
                    "has no item image_url but image upload is on; "
                    "add images or set config.menu.upload_images to false",
                )
            )
        if (
            m.create_option_sets
            and config.step_enabled(StepKey.OPTION_SETS)
            and not m.data.option_sets
        ):
            problems.append(
                Problem(
                    "restaurants.menu",
                    "has no option_sets but option sets are on; "
                    "add them or set config.menu.create_option_sets to false",
                )
            )
        if m.create_item_tags and config.step_enabled(StepKey.ITEM_TAGS) and not m.data.has_tags:
            problems.append(
                Problem(
                    "restaurants.menu",
                    "has no item tags but item tags are on; "
                    "add tags or set config.menu.create_item_tags to false",
                )
            )
    if config.onboarding.sync and not config.onboarding.create_user:
        problems.append(
            Problem(
                "config.onboarding.sync",
                "is on but onboarding.create_user is off, so there is nothing to "
                "sync; turn create_user on or sync off",
            )
        )
    return problems
