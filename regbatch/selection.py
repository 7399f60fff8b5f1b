"""Which restaurants to take: the one description of a restaurant filter (city, lead stage and
type, ICP score, registration status, a search text, a limit), shared by `restaurants list`,
`batch create` and templates. db/restaurants.py turns it into SQL in one place."""

from __future__ import annotations

from dataclasses import dataclass

from regbatch.errors import Problem, not_one_of
from regbatch.restaurant import LeadStage, LeadType, RegistrationStatus, RestaurantType

SEARCH_MAX = 200


@dataclass(frozen=True)
class RestaurantSelection:
    """Restaurants of an organisation matching every given criterion (AND); `everything` says
    that no criterion is meant as "all of them" rather than "none"."""

    city: str | None = None
    lead_stage: str | None = None
    lead_type: str | None = None
    min_icp_score: int | None = None
    registration_status: str | None = None
    restaurant_type: str | None = None
    search: str | None = None
    limit: int | None = None
    everything: bool = False

    @property
    def selects(self) -> bool:
        """True when it picks restaurants at all: `everything` or a criterion (a limit only
        caps what they pick)."""
        criteria = (
            self.city,
            self.lead_stage,
            self.lead_type,
            self.registration_status,
            self.restaurant_type,
        )
        return (
            self.everything
            or any(c for c in criteria)
            or bool(self.search)
            or self.min_icp_score is not None
        )

    def problems(self) -> list[Problem]:
        """Every criterion that cannot match, with the valid choices."""
        problems = [
            Problem(field, not_one_of(label, value, vocabulary))
            for field, label, value, vocabulary in (
                ("lead_stage", "stage", self.lead_stage, LeadStage),
                ("lead_type", "type", self.lead_type, LeadType),
                ("registration_status", "status", self.registration_status, RegistrationStatus),
                ("restaurant_type", "restaurant type", self.restaurant_type, RestaurantType),
            )
            if value is not None and value not in set(vocabulary)
        ]
        if self.city is not None and len(self.city) > 120:
            problems.append(Problem("city", f"has {len(self.city)} characters; use at most 120"))
        if self.search is not None and len(self.search) > SEARCH_MAX:
            problems.append(
                Problem("search", f"has {len(self.search)} characters; use at most {SEARCH_MAX}")
            )
        if self.min_icp_score is not None and not 0 <= self.min_icp_score <= 10:
            problems.append(
                Problem("min_icp_score", f"{self.min_icp_score} is out of range; use 0 to 10")
            )
        if self.limit is not None and self.limit < 1:
            problems.append(Problem("limit", f"{self.limit} is out of range; use 1 or more"))
        return problems
