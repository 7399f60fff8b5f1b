"""The sandbox platform's in-memory state and what each step does to it.

`PlatformState.perform(step, body, path)` validates a request body, changes the state and returns
the platform's answer, or raises `Refusal`: an error answer that changed nothing. It is plain,
synchronous code with no await, so in the app's one event loop a call runs whole: no lock is needed
for the state to change in one piece.
"""

from __future__ import annotations

import csv
import html
import io
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ValidationError

from regbatch.platform.builders import MENU_CSV_COLUMNS  # the import format the client sends
from regbatch.sandbox import schemas as s
from regbatch.steps import StepKey

K = StepKey


@dataclass
class Answer:
    """A successful answer; `replay` is true when the thing was already there (nothing new done)."""

    status: int
    body: dict[str, Any]
    replay: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class Refusal(Exception):
    """Raised when the platform refuses a request; nothing was changed."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, **extra}}


def ok(**fields: Any) -> Answer:
    return Answer(200, {"success": True, **fields})


def already_exists(what: str, existing: dict[str, Any]) -> Answer:
    body = error_body("ALREADY_EXISTS", f"{what} already exists", existing=existing)
    return Answer(409, body, replay=True)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def _not_found(what: str, value: str) -> Refusal:
    return Refusal(404, "NOT_FOUND", f"{what} {value!r} does not exist")


def _invalid(message: str) -> Refusal:
    return Refusal(400, "VALIDATION_ERROR", message)


class PlatformState:
    """Accounts, restaurants, menus, uploads ... as the platform would hold them."""

    def __init__(
        self,
        *,
        account_spacing_s: float = 60.0,
        image_processing_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_spacing_s = account_spacing_s
        self.image_processing_s = image_processing_s
        self._clock = clock
        Handler = Callable[[Any, dict[str, str]], Answer]
        self._steps: dict[StepKey, tuple[type[BaseModel], Handler]] = {
            K.ACCOUNT_REGISTRATION: (s.AccountIn, self._account),
            K.CODE_GENERATION: (s.CodeGenerationIn, self._code_generation),
            K.ONBOARDING_USER: (s.OnboardingUserIn, self._onboarding_user),
            K.IMAGE_UPLOAD: (s.ImageUploadIn, self._image_upload),
            K.RESTAURANT_REGISTRATION: (s.RestaurantIn, self._restaurant),
            K.WEBSITE_CONFIGURATION: (s.WebsiteIn, self._website),
            K.SERVICES_CONFIGURATION: (s.ServicesIn, self._services),
            K.PAYMENT_CONFIGURATION: (s.PaymentIn, self._payment),
            K.MENU_IMPORT: (s.MenuImportIn, self._menu_import),
            K.ONBOARDING_SYNC: (s.OnboardingSyncIn, self._onboarding_sync),
            K.OPTION_SETS: (s.OptionSetsIn, self._option_sets),
            K.ITEM_TAGS: (s.ItemTagsIn, self._item_tags),
        }
        self.reset()

    def reset(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.account_by_email: dict[str, str] = {}
        self.onboarding_users: dict[str, dict[str, Any]] = {}
        self.onboarding_by_email: dict[str, str] = {}
        self.restaurants: dict[str, dict[str, Any]] = {}
        self.restaurant_by_owner: dict[tuple[str, str], str] = {}
        self.subdomains: dict[str, str] = {}
        self.menus: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.last_account_at: float | None = None

    def perform(self, step: StepKey, body: dict[str, Any], path: dict[str, str]) -> Answer:
        """Validate and perform one step request; raises Refusal when the platform says no."""
        schema, handler = self._steps[step]
        try:
            request = schema.model_validate(body)
        except ValidationError as exc:
            name, message = s.first_problem(exc)
            raise _invalid(f"{name}: {message}") from None
        return handler(request, path)

    def upload_status(self, menu_id: str, upload_id: str) -> dict[str, Any]:
        """The body of an image upload's status poll; Refusal 404 for an unknown upload."""
        upload = self.uploads.get(upload_id)
        if upload is None or upload["menu_id"] != menu_id:
            raise _not_found(f"upload on menu {menu_id!r}", upload_id)
        if self._clock() - upload["at"] < self.image_processing_s:
            return {"success": True, "upload_id": upload_id, "status": "processing", "images": []}
        return {
            "success": True,
            "upload_id": upload_id,
            "status": "completed",
            "images": upload["images"],
        }

    def now(self) -> float:
        """The platform's clock (monotonic seconds)."""
        return self._clock()

    def admit(self, step: StepKey, body: dict[str, Any], received: float) -> None:
        """The platform's rate limiter, at the door: account creations one every
        `account_spacing_s`, counted from when they arrived. Raises Refusal 429.

        Like a gateway's limiter it decides on arrival (a creation arriving in time is never
        refused because it was processed late) and counts a creation it let through even if
        the request then fails validation; an account that already exists is not a creation.
        """
        if step != K.ACCOUNT_REGISTRATION or self.account_spacing_s <= 0:
            return
        email = body.get("email")
        if isinstance(email, str) and email.lower() in self.account_by_email:
            return
        if self.last_account_at is not None:
            wait = self.account_spacing_s - (received - self.last_account_at)
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                raise Refusal(
                    429,
                    "RATE_LIMITED",
                    f"accounts can be created one every {self.account_spacing_s:g} s; "
                    f"retry after {seconds} s",
                    headers={"Retry-After": str(seconds)},
                )
        self.last_account_at = received

    def _account(self, req: s.AccountIn, path: dict[str, str]) -> Answer:
        account_id = self.account_by_email.get(req.email.lower())
        if account_id is not None:
            return already_exists(f"an account with email {req.email}", self.accounts[account_id])
        account = {"account_id": _new_id("acct"), "user_id": _new_id("user"), "email": req.email}
        self.accounts[account["account_id"]] = account
        self.account_by_email[req.email.lower()] = account["account_id"]
        return ok(**account)

    def _code_generation(self, req: s.CodeGenerationIn, path: dict[str, str]) -> Answer:
        head = (
            f"<style>:root{{--brand-primary:{req.primaryColor};"
            f"--brand-secondary:{req.secondaryColor};}}</style>"
            f'<meta name="theme-color" content="{req.primaryColor}">'
        )
        logo = f'<img class="brand-logo" src="{html.escape(req.logoUrl)}">' if req.logoUrl else ""
        body = (
            f'<div class="brand-header brand-{req.theme}">{logo}'
            f"<span>{html.escape(req.restaurantName)}</span></div>"
        )
        return ok(head_injection=head, body_injection=body)

    def _onboarding_user(self, req: s.OnboardingUserIn, path: dict[str, str]) -> Answer:
        user_id = self.onboarding_by_email.get(req.email.lower())
        if user_id is not None:
            return already_exists(
                f"an onboarding user with email {req.email}", self.onboarding_users[user_id]
            )
        user = {"onboarding_user_id": _new_id("onb"), "email": req.email}
        self.onboarding_users[user["onboarding_user_id"]] = user
        self.onboarding_by_email[req.email.lower()] = user["onboarding_user_id"]
        return ok(onboarding_user_id=user["onboarding_user_id"])

    def _image_upload(self, req: s.ImageUploadIn, path: dict[str, str]) -> Answer:
        upload_id = _new_id("upl")
        images = []
        for number, image in enumerate(req.images, start=1):
            suffix = PurePosixPath(urlparse(image.url).path).suffix or ".jpg"
            cdn_url = f"https://cdn.sandbox.test/{upload_id}/{number}{suffix}"
            images.append({"item": image.item, "url": image.url, "cdn_url": cdn_url})
        menu_id = path.get("menu_id", "")
        self.uploads[upload_id] = {"menu_id": menu_id, "images": images, "at": self._clock()}
        body = {"success": True, "upload_id": upload_id, "status": "processing"}
        return Answer(202, body)

    def _restaurant(self, req: s.RestaurantIn, path: dict[str, str]) -> Answer:
        if req.accountId not in self.accounts:
            raise _not_found("account", req.accountId)
        pid = self.restaurant_by_owner.get((req.accountId, req.restaurantId))
        if pid is not None:
            known = self.restaurants[pid]
            existing = {k: known[k] for k in ("platform_restaurant_id", "subdomain", "urls")}
            return already_exists(f"restaurant {req.restaurantId} under this account", existing)
        if req.subdomain in self.subdomains:
            raise Refusal(
                409,
                "SUBDOMAIN_TAKEN",
                f"subdomain {req.subdomain!r} belongs to another restaurant; choose another",
            )
        pid = _new_id("rest")
        urls = {
            "ordering": f"https://{req.subdomain}.order.sandbox.test",
            "admin": f"https://admin.sandbox.test/restaurants/{pid}",
        }
        record = {"platform_restaurant_id": pid, "subdomain": req.subdomain, "urls": urls}
        self.restaurants[pid] = {**record, "restaurant_id": req.restaurantId, "menu": None}
        self.restaurant_by_owner[(req.accountId, req.restaurantId)] = pid
        self.subdomains[req.subdomain] = pid
        return ok(**record)

    def _known_restaurant(self, pid: str) -> dict[str, Any]:
        restaurant = self.restaurants.get(pid)
        if restaurant is None:
            raise _not_found("platformRestaurantId", pid)
        return restaurant

    def _website(self, req: s.WebsiteIn, path: dict[str, str]) -> Answer:
        restaurant = self._known_restaurant(req.platformRestaurantId)
        if not (req.headInjection or req.bodyInjection):
            raise _invalid("headInjection: give headInjection or bodyInjection")
        restaurant["website"] = req.model_dump()
        return ok(website_url=restaurant["urls"]["ordering"])

    def _services(self, req: s.ServicesIn, path: dict[str, str]) -> Answer:
        restaurant = self._known_restaurant(req.platformRestaurantId)
        pickup = {"enabled": req.pickup.enabled, "prep_time_minutes": req.pickup.prepTimeMinutes}
        delivery = {
            "enabled": req.delivery.enabled,
            "radius_km": req.delivery.radiusKm,
            "minimum_order": str(req.delivery.minimumOrder),
        }
        restaurant["services"] = {"pickup": pickup, "delivery": delivery}
        return ok(pickup=pickup, delivery=delivery)

    def _payment(self, req: s.PaymentIn, path: dict[str, str]) -> Answer:
        restaurant = self._known_restaurant(req.platformRestaurantId)
        payment = restaurant.get("payment") or {"payment_id": _new_id("pay")}
        connect = None
        if req.stripeConnect:
            connect = f"https://connect.stripe.sandbox.test/setup/{payment['payment_id']}"
        payment.update(provider=req.provider, currency=req.currency, stripe_connect_url=connect)
        restaurant["payment"] = payment
        return ok(
            payment_id=payment["payment_id"], provider=req.provider, stripe_connect_url=connect
        )

    def _menu_import(self, req: s.MenuImportIn, path: dict[str, str]) -> Answer:
        restaurant = self._known_restaurant(req.platformRestaurantId)
        items = parse_menu_csv(req.csv)
        menu_id = _new_id("menu")
        self.menus[menu_id] = {
            "restaurant": req.platformRestaurantId,
            "items": items,
            "option_sets": {},
            "tags": {},
        }
        restaurant["menu"] = menu_id
        categories = len(set(items.values()))
        return ok(
            platform_menu_id=menu_id, items_imported=len(items), categories_imported=categories
        )

    def _onboarding_sync(self, req: s.OnboardingSyncIn, path: dict[str, str]) -> Answer:
        user = self.onboarding_users.get(req.onboardingUserId)
        if user is None:
            raise _not_found("onboardingUserId", req.onboardingUserId)
        self._known_restaurant(req.platformRestaurantId)
        user["restaurant"] = {"platform_restaurant_id": req.platformRestaurantId, **req.restaurant}
        return ok(onboarding_user_id=req.onboardingUserId, synced=True)

    def _known_menu(self, pid: str, menu_id: str) -> dict[str, Any]:
        self._known_restaurant(pid)
        menu = self.menus.get(menu_id)
        if menu is None or menu["restaurant"] != pid:
            raise _not_found(f"platformMenuId of restaurant {pid!r}", menu_id)
        return menu

    def _option_sets(self, req: s.OptionSetsIn, path: dict[str, str]) -> Answer:
        menu = self._known_menu(req.platformRestaurantId, req.platformMenuId)
        names = [o.name for o in req.optionSets]
        if len(set(names)) != len(names):
            raise _invalid("optionSets: option set names must be unique")
        _check_mapping("itemOptionSets", req.itemOptionSets, menu["items"], set(names))
        return self._upsert_names(menu["option_sets"], names, "os", "option_set_ids")

    def _item_tags(self, req: s.ItemTagsIn, path: dict[str, str]) -> Answer:
        menu = self._known_menu(req.platformRestaurantId, req.platformMenuId)
        _check_mapping("itemTags", req.itemTags, menu["items"], set(req.tags))
        answer = self._upsert_names(menu["tags"], sorted(set(req.tags)), "tag", "tag_ids")
        answer.body["mapped_items"] = len(req.itemTags)
        return answer

    @staticmethod
    def _upsert_names(known: dict[str, str], names: list[str], prefix: str, key: str) -> Answer:
        """Ids for names, reusing existing ones; a replay when every name was already there."""
        new = [name for name in names if name not in known]
        known.update({name: _new_id(prefix) for name in new})
        answer = ok(**{key: {name: known[name] for name in names}})
        answer.replay = not new
        return answer


def _check_mapping(
    field_name: str, mapping: dict[str, list[str]], items: dict[str, str], names: set[str]
) -> None:
    for item, refs in mapping.items():
        if item not in items:
            raise _invalid(f"{field_name}: item {item!r} is not on the menu")
        unknown = sorted(set(refs) - names)
        if unknown:
            raise _invalid(f"{field_name}: item {item!r} refers to undefined {unknown}")


def parse_menu_csv(text: str) -> dict[str, str]:
    """Item name -> category from a menu CSV; Refusal 400 naming the line of any malformed row."""
    reader = csv.reader(io.StringIO(text))
    header = [c.strip() for c in next(reader, [])]
    if header != list(MENU_CSV_COLUMNS):
        raise _invalid(f"csv: the header must be {','.join(MENU_CSV_COLUMNS)}")
    items: dict[str, str] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(MENU_CSV_COLUMNS):
            raise _invalid(f"csv line {line}: expected 6 columns, found {len(row)}")
        category, name, price = (cell.strip() for cell in row[:3])
        if not category or not name:
            raise _invalid(f"csv line {line}: category and name are required")
        try:
            value = Decimal(price)
        except InvalidOperation:
            raise _invalid(f"csv line {line}: price {price[:20]!r} is not a number") from None
        if not value.is_finite() or value < 0:
            raise _invalid(f"csv line {line}: price {price[:20]!r} must be 0 or more")
        items[name] = category
    if not items:
        raise _invalid("csv: the menu has no items")
    return items
