"""Where each step is on the registration platform: the API contract the client calls and the
sandbox serves (POST; image upload also answers GET .../{upload_id} while it processes)."""

from __future__ import annotations

from regbatch.steps import StepKey

STEP_PATHS: dict[StepKey, str] = {
    StepKey.ACCOUNT_REGISTRATION: "/api/registration/account",
    StepKey.CODE_GENERATION: "/api/registration/code-generation",
    StepKey.ONBOARDING_USER: "/api/registration/onboarding-user",
    StepKey.IMAGE_UPLOAD: "/api/menus/{menu_id}/upload-images",
    StepKey.RESTAURANT_REGISTRATION: "/api/registration/restaurant",
    StepKey.WEBSITE_CONFIGURATION: "/api/registration/website",
    StepKey.SERVICES_CONFIGURATION: "/api/registration/services",
    StepKey.PAYMENT_CONFIGURATION: "/api/registration/payment",
    StepKey.MENU_IMPORT: "/api/registration/menu-import",
    StepKey.ONBOARDING_SYNC: "/api/registration/onboarding-sync",
    StepKey.OPTION_SETS: "/api/registration/option-sets",
    StepKey.ITEM_TAGS: "/api/registration/item-tags",
}
