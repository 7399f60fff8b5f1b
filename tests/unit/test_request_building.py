"""build_request: each step's payload from the configuration and the earlier steps' results."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from regbatch.errors import PermanentPlatformError
from regbatch.platform import build_request
from regbatch.steps import STEPS, StepKey

K = StepKey

RESULTS: dict[StepKey, dict[str, Any]] = {
    K.ACCOUNT_REGISTRATION: {"account_id": "acct_new", "user_id": "u1", "email": "o@x.com"},
    K.CODE_GENERATION: {"head_injection": "<style>h</style>", "body_injection": "<div>b</div>"},
    K.ONBOARDING_USER: {"onboarding_user_id": "onb_1"},
    K.IMAGE_UPLOAD: {
        "upload_id": "up1",
        "status": "completed",
        "images": [
            {
                "item": "Margherita",
                "url": "https://img.example.com/margherita.jpg",
                "cdn_url": "https://cdn.test/m.jpg",
            }
        ],
    },
    K.RESTAURANT_REGISTRATION: {
        "platform_restaurant_id": "rest_p1",
        "subdomain": "pp",
        "urls": {"ordering": "https://pp.order.test", "admin": "https://admin.test/p1"},
    },
    K.MENU_IMPORT: {"platform_menu_id": "menu_1", "items_imported": 3, "categories_imported": 2},
}


def without(*keys: StepKey) -> dict[StepKey, dict[str, Any]]:
    return {k: v for k, v in RESULTS.items() if k not in keys}


def rows(payload: dict[str, Any]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(payload["csv"])))


def test_every_payload_names_the_restaurant_and_only_the_account_carries_the_password(
    new_restaurant: Any, password: str
) -> None:
    rid, config = new_restaurant()
    for spec in STEPS:
        payload = build_request(spec.key, config, RESULTS, restaurant_id=rid, password=password)
        assert payload["restaurantId"] == rid
        carries_password = password in repr(payload)
        assert carries_password == (spec.key is K.ACCOUNT_REGISTRATION), spec.key


def test_account_payload(new_restaurant: Any, password: str) -> None:
    rid, config = new_restaurant()
    payload = build_request(
        K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, password=password
    )
    assert payload == {
        "restaurantId": rid,
        "email": config.account.email,
        "password": password,
        "name": "Mario Rossi",
        "phone": "+64 9 555 0100",
    }


def test_account_without_password_is_missing_input(new_restaurant: Any) -> None:
    rid, config = new_restaurant()
    with pytest.raises(PermanentPlatformError, match="the owner's password is missing") as caught:
        build_request(K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid)
    assert caught.value.code == "MISSING_INPUT"
    assert caught.value.details["step"] == "account_registration"


def test_restaurant_registration_takes_the_account_id_from_the_account_step(
    new_restaurant: Any,
) -> None:
    rid, config = new_restaurant({"account": {"existing_account_id": "acct_old"}})
    payload = build_request(K.RESTAURANT_REGISTRATION, config, RESULTS, restaurant_id=rid)
    assert payload["accountId"] == "acct_new"
    assert payload["subdomain"] == config.restaurant.subdomain
    assert payload["openingHours"] == {"mon": [{"open": "11:00", "close": "21:00"}]}


def test_restaurant_registration_uses_the_existing_account_id_without_an_account_step(
    new_restaurant: Any,
) -> None:
    override = {"account": {"create_account": False, "existing_account_id": "acct_old"}}
    rid, config = new_restaurant(override)
    payload = build_request(K.RESTAURANT_REGISTRATION, config, {}, restaurant_id=rid)
    assert payload["accountId"] == "acct_old"


def test_restaurant_registration_without_any_account_id_is_missing_input(
    new_restaurant: Any,
) -> None:
    rid, config = new_restaurant()
    with pytest.raises(PermanentPlatformError, match="existing_account_id") as caught:
        build_request(K.RESTAURANT_REGISTRATION, config, {}, restaurant_id=rid)
    assert caught.value.code == "MISSING_INPUT"
    assert "account id is missing" in str(caught.value)


def test_menu_csv_uses_cdn_urls_when_images_were_uploaded(new_restaurant: Any) -> None:
    rid, config = new_restaurant()
    payload = build_request(K.MENU_IMPORT, config, RESULTS, restaurant_id=rid)
    assert payload["platformRestaurantId"] == "rest_p1"
    assert payload["csv"].splitlines()[0] == "category,name,price,description,tags,image_url"
    by_name = {row["name"]: row for row in rows(payload)}
    assert by_name["Margherita"]["image_url"] == "https://cdn.test/m.jpg"
    # Pepperoni's image is not in the upload result: its original url is kept
    assert by_name["Pepperoni"]["image_url"] == "https://img.example.com/pepperoni.png"
    assert by_name["Pepperoni"]["tags"] == "spicy;bestseller"
    assert by_name["Margherita"]["price"] == "18.50"
    assert by_name["Lemonade"] == {
        "category": "Drinks",
        "name": "Lemonade",
        "price": "4.5",
        "description": "",
        "tags": "",
        "image_url": "",
    }


def test_menu_csv_keeps_original_urls_without_an_image_upload_result(new_restaurant: Any) -> None:
    rid, config = new_restaurant()
    results = without(K.IMAGE_UPLOAD)
    payload = build_request(K.MENU_IMPORT, config, results, restaurant_id=rid)
    by_name = {row["name"]: row for row in rows(payload)}
    assert by_name["Margherita"]["image_url"] == "https://img.example.com/margherita.jpg"


def test_menu_import_without_a_menu_is_missing_input(new_restaurant: Any) -> None:
    rid, config = new_restaurant(menu=None)
    with pytest.raises(PermanentPlatformError, match=r"config\.menu\.import_menu to false"):
        build_request(K.MENU_IMPORT, config, RESULTS, restaurant_id=rid)


def test_image_upload_sends_the_menu_id_and_only_items_with_images(new_restaurant: Any) -> None:
    rid, config = new_restaurant()
    payload = build_request(K.IMAGE_UPLOAD, config, {}, restaurant_id=rid)
    assert payload == {
        "restaurantId": rid,
        "menuId": config.menu.menu_ref,
        "images": [
            {"item": "Margherita", "url": "https://img.example.com/margherita.jpg"},
            {"item": "Pepperoni", "url": "https://img.example.com/pepperoni.png"},
        ],
    }


def test_website_uses_code_generations_injections(new_restaurant: Any) -> None:
    rid, config = new_restaurant()
    payload = build_request(K.WEBSITE_CONFIGURATION, config, RESULTS, restaurant_id=rid)
    assert payload["headInjection"] == "<style>h</style>"
    assert payload["bodyInjection"] == "<div>b</div>"
    assert payload["platformRestaurantId"] == "rest_p1"
    assert payload["headerText"] == config.restaurant.name
    assert payload["theme"] == "dark"


def test_website_without_code_generation_is_missing_input(new_restaurant: Any) -> None:
    rid, config = new_restaurant()
    results = {K.RESTAURANT_REGISTRATION: RESULTS[K.RESTAURANT_REGISTRATION]}
    with pytest.raises(PermanentPlatformError, match="run code_generation first"):
        build_request(K.WEBSITE_CONFIGURATION, config, results, restaurant_id=rid)


@pytest.mark.parametrize(
    "key",
    [K.WEBSITE_CONFIGURATION, K.SERVICES_CONFIGURATION, K.PAYMENT_CONFIGURATION, K.MENU_IMPORT],
)
def test_steps_after_registration_need_the_platform_restaurant_id(
    new_restaurant: Any, key: StepKey
) -> None:
    rid, config = new_restaurant()
    results = without(K.RESTAURANT_REGISTRATION)
    with pytest.raises(PermanentPlatformError, match="run restaurant_registration first") as caught:
        build_request(key, config, results, restaurant_id=rid)
    assert "platform_restaurant_id is missing" in str(caught.value)


def test_code_generation_without_colours_is_missing_input(new_restaurant: Any) -> None:
    rid, config = new_restaurant(primary_color=None)
    with pytest.raises(PermanentPlatformError, match="primary_color is missing"):
        build_request(K.CODE_GENERATION, config, {}, restaurant_id=rid)


def test_services_and_payment_payloads(new_restaurant: Any) -> None:
    override = {"services": {"delivery": True, "minimum_order": "15.00"}}
    rid, config = new_restaurant(override)
    services = build_request(K.SERVICES_CONFIGURATION, config, RESULTS, restaurant_id=rid)
    assert services["pickup"] == {"enabled": True, "prepTimeMinutes": 20}
    assert services["delivery"] == {"enabled": True, "radiusKm": 5.0, "minimumOrder": "15.00"}
    payment = build_request(K.PAYMENT_CONFIGURATION, config, RESULTS, restaurant_id=rid)
    assert payment == {
        "restaurantId": rid,
        "platformRestaurantId": "rest_p1",
        "provider": "stripe",
        "stripeConnect": True,
        "currency": "NZD",
    }


def test_onboarding_sync_needs_the_onboarding_user(new_restaurant: Any) -> None:
    rid, config = new_restaurant()
    payload = build_request(K.ONBOARDING_SYNC, config, RESULTS, restaurant_id=rid)
    assert payload["onboardingUserId"] == "onb_1"
    assert payload["restaurant"]["orderingUrl"] == "https://pp.order.test"
    results = without(K.ONBOARDING_USER)
    with pytest.raises(PermanentPlatformError, match="run onboarding_user first"):
        build_request(K.ONBOARDING_SYNC, config, results, restaurant_id=rid)


def test_option_sets_and_item_tags_map_items_on_the_imported_menu(new_restaurant: Any) -> None:
    rid, config = new_restaurant()
    sets = build_request(K.OPTION_SETS, config, RESULTS, restaurant_id=rid)
    assert sets["platformMenuId"] == "menu_1"
    assert sets["itemOptionSets"] == {"Margherita": ["Size"], "Pepperoni": ["Size"]}
    assert sets["optionSets"][0]["options"] == [
        {"name": "Regular", "price": "0"},
        {"name": "Large", "price": "4"},
    ]
    tags = build_request(K.ITEM_TAGS, config, RESULTS, restaurant_id=rid)
    assert tags["tags"] == ["bestseller", "spicy", "vegetarian"]
    assert tags["itemTags"] == {"Margherita": ["vegetarian"], "Pepperoni": ["spicy", "bestseller"]}
    results = without(K.MENU_IMPORT)
    with pytest.raises(PermanentPlatformError, match="run menu_import first"):
        build_request(K.ITEM_TAGS, config, results, restaurant_id=rid)
