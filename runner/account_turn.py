"""Account creation is rate-limited by the platform: one at a time, a configured spacing apart.

The limit is global across batches, flows and machines, so its turn lives in the database
(db/rate_limits.py). Waiting for it is a queue, not part of a step's attempt: a step waits for the
turn before its attempt starts (nothing is recorded, no timeout runs), holds it while its one
request is out, and gives it back with the time that request was answered. The platform counts
from when a request arrives, which is always before it is answered, so the next creation,
sent a spacing after that answer, can never arrive too early, however late the previous one
was sent or arrived (a busy event loop delays both). In each process waiters
line up first-come first-served and only the head asks the database, so a waiter that is
cancelled simply leaves the line and never takes a turn it will not use.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from regbatch.db.rate_limits import give_back_turn, keep_turn, take_turn
from regbatch.db.types import utcnow
from regbatch.runner.ledger import transact
from regbatch.settings import get_settings

LIMIT_NAME = "account-creation"
# The spacing is kept a hair wider than the platform's own, for clocks of different machines
# that run a little apart.
SPACING_MARGIN = 0.01
# Sleep at most this long before asking again (another process may have released early).
MAX_SLEEP_S = 5.0

_LINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class Turn:
    """A held turn; the step notes when the platform answered its request (`note_answered`)."""

    answered_at: datetime | None = None

    def note_answered(self) -> None:
        self.answered_at = utcnow()


def spacing_s() -> float:
    """The spacing kept between account creations (the setting plus a small margin); 0: off."""
    spacing = get_settings().account_rate_limit_seconds
    if spacing <= 0:
        return 0.0
    return spacing * (1 + SPACING_MARGIN)


def _line() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    line = _LINES.get(loop)
    if line is None:
        line = _LINES[loop] = asyncio.Lock()  # FIFO: waiters are woken in arrival order
    return line


@asynccontextmanager
async def account_creation_turn() -> AsyncIterator[Turn]:
    """Wait for the account-creation turn and hold it (renewed while held, as a lease is)."""
    spacing = spacing_s()
    if spacing <= 0:
        yield Turn()
        return
    hold_s = get_settings().lease_seconds
    async with _line():
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        while (wait := await transact(take_turn, LIMIT_NAME, holder, hold_s, spacing)) > 0:
            await asyncio.sleep(min(wait, MAX_SLEEP_S))
        turn = Turn()
        keeper = asyncio.create_task(_keep(holder, hold_s))
        try:
            yield turn
        finally:
            keeper.cancel()
            # Shielded: a cancelled step still gives the turn back (else the next waits it out).
            await asyncio.shield(
                transact(give_back_turn, LIMIT_NAME, holder, turn.answered_at, spacing)
            )


async def _keep(holder: str, hold_s: float) -> None:
    """Renew the held turn every third of `hold_s` (a holder that died stops renewing)."""
    while True:
        await asyncio.sleep(hold_s / 3)
        await transact(keep_turn, LIMIT_NAME, holder, hold_s)
