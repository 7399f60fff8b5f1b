"""Fault injection and latency for the sandbox: what goes wrong, for whom, and how often.

Rules are checked in order; the first that matches a request (restaurant and step, `*` matching
any) and has `times` left wins and consumes one. Requests no rule matched fail transiently with
`random_transient_rate`, drawn from a generator seeded with `seed` (same requests, same faults).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from regbatch.sandbox.schemas import FaultsIn, LatencyIn


@dataclass
class Fault:
    kind: str
    restaurant: str = "*"
    step: str = "*"
    times: int | None = None
    delay_s: float = 30.0

    def matches(self, restaurant: str, step: str) -> bool:
        return (
            self.restaurant in ("*", restaurant)
            and self.step in ("*", step)
            and (self.times is None or self.times > 0)
        )


class FaultSet:
    """The current faults; `pick` answers which fault (if any) hits a request."""

    def __init__(self, spec: FaultsIn | None = None) -> None:
        spec = spec or FaultsIn()
        self.rules = [Fault(**rule.model_dump()) for rule in spec.rules]
        self.random_transient_rate = spec.random_transient_rate
        self._random = random.Random(spec.seed)

    def pick(self, restaurant: str, step: str) -> Fault | None:
        for rule in self.rules:
            if rule.matches(restaurant, step):
                if rule.times is not None:
                    rule.times -= 1
                return rule
        if self.random_transient_rate and self._random.random() < self.random_transient_rate:
            return Fault("transient", restaurant, step, times=1)
        return None


class Latency:
    """The least time from a step request's arrival to its answer: per step, else the default."""

    def __init__(self, spec: LatencyIn | None = None) -> None:
        spec = spec or LatencyIn()
        self.default_ms = spec.default_ms
        self.per_step = dict(spec.per_step)

    def seconds(self, step: str) -> float:
        return self.per_step.get(step, self.default_ms) / 1000.0
