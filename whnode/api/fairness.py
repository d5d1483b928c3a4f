"""Fair shares of a busy node between public API clients.

The per-client rate limit (``whnode.api.ratelimit``, ``api.requests_per_second``) is a cap
that one client may use when nobody else needs the node. It cannot also be the fair share:
what a node can answer per second depends on its machine and on what else runs there. A
client within the cap but over what the node can take (a flood of hot menu hits over 64
keep-alive connections: 730 answers a second on one loaded CPU) keeps the event loop busy,
and every other client's request waits behind its queue: another client's p99 went from
5.4 ms to 87.5 ms, although every one of the flooder's requests was within its cap.

``FairShare`` shares the node when it is contended:

- **Contention** is measured, not configured: a timer every ``TICK`` seconds measures how
  late the event loop runs it (the loop's lag). The node is contended when the lag over the
  last ``PERIOD`` exceeded ``LAG_LIMIT`` while two or more clients made requests.
- **The share** is the request rate a client may make while others wait, set every
  ``PERIOD``. Contended, it is the rate of the heaviest of the other clients (those with at
  most one request waiting for its turn) times ``SECOND_FACTOR``, never under
  ``MIN_SHARE``: max-min fairness, a client may take as much as the next heaviest one. A
  lag that comes from elsewhere on the machine therefore never slows the light clients,
  only what one client takes beyond all others. Not contended, the share grows by
  ``INCREASE`` a period, and is lifted (nobody shaped) after ``QUIET_SECONDS`` without
  contention once it is twice the heaviest client's rate.
- **Shaping, not refusing**: a request of a client whose rate (over the last second) is over
  the share waits for its turn (one every 1/share seconds per client) before its handler
  runs. Refusing at once would not help: a 429 costs the node about what a hot answer does,
  and the client asks again at once; a waiting request costs a timer, and a client whose
  connections all wait sends nothing more. A request whose turn is more than ``MAX_DELAY``
  away waits ``MAX_DELAY`` and is then refused (429 with Retry-After, as a rate-limited
  one), so that each of a flooder's connections costs at most one answer per MAX_DELAY.
  Clients under the share are never delayed.

One client alone is never shaped (there is nobody to be fair to); its cap is the rate limit.
Counters: ``shaped`` (requests delayed), ``refused`` (over MAX_DELAY), and the current share,
exported as ``whnode_api_fair_share_*`` (docs/operators.md, "Floods").
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["FairShare", "FairShareStatistics"]

TICK: Final = 0.02
"""Seconds between two lag measurements of the event loop."""
PERIOD: Final = 0.2
"""Seconds between two adjustments of the share."""
LAG_LIMIT: Final = 0.005
"""Seconds of event-loop lag above which the node counts as contended."""
WINDOW: Final = 1.0
"""Seconds over which a client's request rate is counted."""
MIN_SPAN: Final = 0.1
"""Shortest part of WINDOW over which a new client's rate is counted."""
MIN_SHARE: Final = 20.0
"""Requests per second a client may always make, however contended the node."""
INCREASE: Final = 1.05
QUIET_SECONDS: Final = 5.0
"""Seconds without contention after which the share may be lifted altogether."""
SECOND_FACTOR: Final = 1.25
"""The share is this many times the rate of the heaviest client not shaped (a margin, so
that the rate estimate's noise does not shape that client)."""
MAX_DELAY: Final = 2.0
"""Longest wait of a shaped request; a request that would wait longer is refused (429)."""


@dataclass(frozen=True, slots=True)
class FairShareStatistics:
    share: float
    """Requests per second a client may make while others wait (inf: nobody is shaped)."""
    shaped: int
    """Requests delayed for their turn."""
    refused: int
    """Requests refused because their turn was more than MAX_DELAY away."""
    contended_periods: int
    """Adjustment periods in which the node was contended."""
    active_clients: int
    """Clients that made requests in the last second."""


class FairShare:
    """The share and the turns of shaped clients (module docstring). ``delay`` is sync and
    O(1); the lag timer starts with the first request (a running loop is needed)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.share = math.inf
        self._current: Counter[str] = Counter()
        self._previous: Counter[str] = Counter()
        self._window_start = clock()
        self._turns: dict[str, float] = {}
        """Shaped client -> when its next request may run."""
        self._waiting: Counter[str] = Counter()
        """Shaped client -> its requests waiting for their turns now."""
        self._worst_lag = 0.0
        self._period_start = clock()
        self._handle: asyncio.TimerHandle | None = None
        self._expected = 0.0
        self.shaped = 0
        self.refused = 0
        self.contended_periods = 0
        self._quiet = 0

    # -------------------------------------------------------------- request rates
    def _roll(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed < WINDOW:
            return
        self._previous = self._current if elapsed < 2 * WINDOW else Counter()
        self._current = Counter()
        self._window_start = now
        self._turns = {key: turn for key, turn in self._turns.items() if turn > now}

    def rate(self, key: str, now: float) -> float:
        """Requests per second of ``key`` over about the last WINDOW seconds."""
        self._roll(now)
        part = (now - self._window_start) / WINDOW
        previous = self._previous[key]
        if not previous:  # a new client: its requests over the time it has been seen
            return self._current[key] / (max(part, MIN_SPAN) * WINDOW)
        return (self._current[key] + previous * (1.0 - part)) / WINDOW

    def _active(self) -> set[str]:
        return set(self._current) | set(self._previous)

    # -------------------------------------------------------------- the share
    def observe_lag(self, lag: float, now: float) -> None:
        """The event loop ran a timer ``lag`` seconds late; adjusts the share once a PERIOD."""
        self._worst_lag = max(self._worst_lag, lag)
        if now - self._period_start < PERIOD:
            return
        worst, self._worst_lag = self._worst_lag, 0.0
        self._period_start = now
        self._roll(now)
        active = self._active()
        if len(active) < 2:
            self.share = math.inf
            return
        heaviest = max(self.rate(key, now) for key in active)
        if worst > LAG_LIMIT:
            self.contended_periods += 1
            self._quiet = 0
            # max-min fair: a client may take as much as the heaviest of the others. A
            # shaped client's rate is what the share lets through, not what it wants: the
            # others are those with at most one request waiting for its turn (with none
            # such, all but the heaviest). A lag from elsewhere never slows light clients.
            free = sorted(self.rate(key, now) for key in active if self._waiting[key] <= 1)
            if len(free) == len(active):
                free = free[:-1]
            other = free[-1] if free else 0.0
            self.share = max(MIN_SHARE, SECOND_FACTOR * other)
        elif not math.isinf(self.share):
            # a shaped client's rate is what the share lets through: only a long quiet
            # spell lifts the share, else a flood would be let go and caught again
            self._quiet += 1
            self.share *= INCREASE
            if self._quiet * PERIOD >= QUIET_SECONDS and self.share > 2 * heaviest:
                self.share = math.inf

    def delay(self, key: str, now: float | None = None) -> float:
        """Count one request of ``key``; seconds it must wait for its turn (0: run now,
        over MAX_DELAY: refuse it)."""
        if self._handle is None:
            self._start()
        now = self._clock() if now is None else now
        self._roll(now)
        self._current[key] += 1
        share = self.share
        if math.isinf(share) or self.rate(key, now) <= share:
            return 0.0
        turn = max(now, self._turns.get(key, now))
        wait = turn - now
        if wait > MAX_DELAY:  # the caller waits MAX_DELAY, then refuses it
            self.refused += 1
            self._waiting[key] += 1
            return wait
        self._turns[key] = turn + 1.0 / share
        if wait > 0:
            self.shaped += 1
            self._waiting[key] += 1
        return wait

    def waited(self, key: str) -> None:
        """A request of ``key`` that ``delay`` made wait (at most MAX_DELAY) has waited."""
        left = self._waiting[key] - 1
        if left > 0:
            self._waiting[key] = left
        else:
            del self._waiting[key]

    # -------------------------------------------------------------- the lag timer
    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._expected = loop.time() + TICK
        self._handle = loop.call_at(self._expected, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self.observe_lag(max(0.0, now - self._expected), self._clock())
        if not self._active():  # idle: the next request starts the timer again
            self._handle = None
            self.share = math.inf
            return
        self._expected = now + TICK
        self._handle = loop.call_at(self._expected, self._tick, loop)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def statistics(self) -> FairShareStatistics:
        now = self._clock()
        self._roll(now)
        return FairShareStatistics(
            share=self.share,
            shaped=self.shaped,
            refused=self.refused,
            contended_periods=self.contended_periods,
            active_clients=len(self._active()),
        )
