"""Each step's request body, built from the job's configuration and earlier steps' results.

One builder per step, named after it; each step's row in `regbatch.steps` names its builder, and
`regbatch.platform.requests.build_request` calls it. A builder raises PermanentPlatformError
(code MISSING_INPUT) naming the missing input and its fix. Only account_registration's body
carries the password.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from regbatch.config import RegistrationConfig
from regbatch.errors import PermanentPlatformError
from regbatch.restaurant import Menu
from regbatch.step_spec import StepKey

K = StepKey
Results = Mapping[str, dict[str, Any] | None] | Mapping[StepKey, dict[str, Any] | None]
MENU_CSV_COLUMNS = ("category", "name", "price", "description", "tags", "image_url")


def missing_input(step: StepKey, what: str, fix: str) -> PermanentPlatformError:
    """The error for a step whose input is absent; it names the input and the fix."""
    return PermanentPlatformError(
        f"{step} cannot run: {what} is missing; {fix}",
        code="MISSING_INPUT",
        details={
            "status_code": None,
            "code": "MISSING_INPUT",
            "message": f"{what} is missing",
            "step": str(step),
            "endpoint": None,
        },
    )


class RequestContext:
    """What a builder reads: the step, the configuration, earlier results, the password."""

    def __init__(
        self,
        step: StepKey,
        config: RegistrationConfig,
        results: Results,
        password: str | None,
        restaurant_id: str,
    ) -> None:
        self.step, self.config, self.results = step, config, results
        self.password, self.restaurant_id = password, restaurant_id

    def need(self, value: Any, what: str, fix: str) -> Any:
        if value in (None, "", [], {}):
            raise missing_input(self.step, what, fix)
        return value

    def result(self, key: StepKey, field: str) -> Any:
        return (self.results.get(key) or {}).get(field)

    def from_step(self, key: StepKey, field: str) -> Any:
        return self.need(self.result(key, field), f"{key}'s {field}", f"run {key} first")

    def platform_restaurant_id(self) -> str:
        return self.from_step(K.RESTAURANT_REGISTRATION, "platform_restaurant_id")

    def menu(self) -> Menu:
        return self.need(
            self.config.menu.data,
            "the menu (config.menu.data)",
            "import a menu for the restaurant or set config.menu.import_menu to false",
        )


def account_registration(c: RequestContext) -> dict[str, Any]:
    """The owner's account: email, password, name and phone."""
    a, r = c.config.account, c.config.restaurant
    return {
        "email": c.need(a.email or r.email, "the owner's email", "set config.account.email"),
        "password": c.need(
            c.password,
            "the owner's password",
            "pass the decrypted restaurants.account_password (or a generated one)",
        ),
        "name": c.need(a.name or r.name, "the owner's name", "set config.account.name"),
        "phone": a.phone or r.phone,
    }


def code_generation(c: RequestContext) -> dict[str, Any]:
    """The theme and colours the ordering page's code injections are generated from."""
    w = c.config.website
    colour_fix = "set restaurants.{} as #RRGGBB"
    return {
        "restaurantName": c.need(c.config.restaurant.name, "the restaurant's name", "set it"),
        "theme": str(w.theme),
        "primaryColor": c.need(
            w.primary_color, "primary_color", colour_fix.format("primary_color")
        ),
        "secondaryColor": c.need(
            w.secondary_color, "secondary_color", colour_fix.format("secondary_color")
        ),
        "logoUrl": w.logo_url,
    }


def onboarding_user(c: RequestContext) -> dict[str, Any]:
    """The owner as the onboarding system's user."""
    a, r = c.config.account, c.config.restaurant
    return {
        "email": c.need(a.email or r.email, "the owner's email", "set config.account.email"),
        "name": c.need(a.name or r.name, "the owner's name", "set config.account.name"),
        "phone": a.phone or r.phone,
    }


def image_upload(c: RequestContext) -> dict[str, Any]:
    """The menu's item images to copy to the CDN."""
    images = [
        {"item": item.name, "url": item.image_url} for item in c.menu().items() if item.image_url
    ]
    return {
        "menuId": c.config.menu.menu_ref or c.restaurant_id,
        "images": c.need(
            images,
            "menu item images",
            "add image_url to menu items or set config.menu.upload_images to false",
        ),
    }


def restaurant_registration(c: RequestContext) -> dict[str, Any]:
    """The restaurant under the owner's account, with the subdomain it asks for."""
    r = c.config.restaurant
    account_id = c.result(K.ACCOUNT_REGISTRATION, "account_id")
    fix = "set restaurants.{0} or config.restaurant.{0}"
    return {
        "accountId": c.need(
            account_id or c.config.account.existing_account_id,
            "the owner's platform account id",
            "run account_registration first or set config.account.existing_account_id",
        ),
        "name": c.need(r.name, "the restaurant's name", fix.format("name")),
        "email": c.need(r.email, "the restaurant's email", fix.format("email")),
        "phone": r.phone,
        "address": c.need(r.address, "the restaurant's address", fix.format("address")),
        "city": c.need(r.city, "the restaurant's city", fix.format("city")),
        "country": r.country,
        "openingHours": r.opening_hours,
        "cuisine": r.cuisine,
        "restaurantType": str(r.restaurant_type),
        "subdomain": c.need(r.subdomain, "the subdomain", fix.format("subdomain")),
    }


def website_configuration(c: RequestContext) -> dict[str, Any]:
    """Code injections, header, logo, colours and theme of the ordering page."""
    w = c.config.website
    head = c.result(K.CODE_GENERATION, "head_injection") or ""
    body = c.result(K.CODE_GENERATION, "body_injection") or ""
    c.need(head or body, "code_generation's injections", "run code_generation first")
    return {
        "platformRestaurantId": c.platform_restaurant_id(),
        "headInjection": head,
        "bodyInjection": body,
        "headerText": w.header_text or c.config.restaurant.name,
        "logoUrl": w.logo_url,
        "primaryColor": w.primary_color,
        "secondaryColor": w.secondary_color,
        "theme": str(w.theme),
    }


def services_configuration(c: RequestContext) -> dict[str, Any]:
    """Pickup and delivery settings."""
    s = c.config.services
    return {
        "platformRestaurantId": c.platform_restaurant_id(),
        "pickup": {"enabled": s.pickup, "prepTimeMinutes": s.prep_time_minutes},
        "delivery": {
            "enabled": s.delivery,
            "radiusKm": s.delivery_radius_km,
            "minimumOrder": str(s.minimum_order),
        },
    }


def payment_configuration(c: RequestContext) -> dict[str, Any]:
    """The payment provider, Stripe Connect and currency."""
    p = c.config.payment
    return {
        "platformRestaurantId": c.platform_restaurant_id(),
        "provider": p.provider,
        "stripeConnect": p.stripe_connect,
        "currency": p.currency,
    }


def menu_csv(menu: Menu, cdn_urls: Mapping[str, str] | None = None) -> str:
    """The menu as the platform's import CSV; image urls replaced by their CDN copies if known."""
    cdn_urls = cdn_urls or {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MENU_CSV_COLUMNS)
    for category in menu.categories:
        for item in category.items:
            image = cdn_urls.get(item.image_url, item.image_url) if item.image_url else ""
            tags = ";".join(item.tags)
            writer.writerow([category.name, item.name, item.price, item.description, tags, image])
    return out.getvalue()


def menu_import(c: RequestContext) -> dict[str, Any]:
    """The menu as the platform's import CSV, with CDN image urls when uploaded."""
    uploaded = (c.results.get(K.IMAGE_UPLOAD) or {}).get("images") or []
    cdn_urls = {i["url"]: i["cdn_url"] for i in uploaded if i.get("url") and i.get("cdn_url")}
    return {
        "platformRestaurantId": c.platform_restaurant_id(),
        "csv": menu_csv(c.menu(), cdn_urls),
    }


def onboarding_sync(c: RequestContext) -> dict[str, Any]:
    """The restaurant's data for its onboarding record."""
    r = c.config.restaurant
    urls = c.result(K.RESTAURANT_REGISTRATION, "urls") or {}
    return {
        "onboardingUserId": c.from_step(K.ONBOARDING_USER, "onboarding_user_id"),
        "platformRestaurantId": c.platform_restaurant_id(),
        "restaurant": {
            "name": r.name,
            "email": r.email,
            "phone": r.phone,
            "address": r.address,
            "city": r.city,
            "country": r.country,
            "cuisine": r.cuisine,
            "openingHours": r.opening_hours,
            "subdomain": c.result(K.RESTAURANT_REGISTRATION, "subdomain") or r.subdomain,
            "orderingUrl": urls.get("ordering"),
        },
    }


def option_sets(c: RequestContext) -> dict[str, Any]:
    """The menu's option sets and which items use them."""
    menu = c.menu()
    sets = c.need(
        menu.option_sets,
        "the menu's option sets",
        "add option_sets to the menu or set config.menu.create_option_sets to false",
    )
    return {
        "platformRestaurantId": c.platform_restaurant_id(),
        "platformMenuId": c.from_step(K.MENU_IMPORT, "platform_menu_id"),
        "optionSets": [
            {
                "name": s.name,
                "required": s.required,
                "minChoices": s.min_choices,
                "maxChoices": s.max_choices,
                "options": [{"name": o.name, "price": str(o.price)} for o in s.options],
            }
            for s in sets
        ],
        "itemOptionSets": {i.name: list(i.option_sets) for i in menu.items() if i.option_sets},
    }


def item_tags(c: RequestContext) -> dict[str, Any]:
    """The menu's tags and the items carrying each."""
    menu = c.menu()
    item_tags = {i.name: list(i.tags) for i in menu.items() if i.tags}
    c.need(item_tags, "menu item tags", "tag items or set config.menu.create_item_tags to false")
    return {
        "platformRestaurantId": c.platform_restaurant_id(),
        "platformMenuId": c.from_step(K.MENU_IMPORT, "platform_menu_id"),
        "tags": sorted({tag for tags in item_tags.values() for tag in tags}),
        "itemTags": item_tags,
    }
