"""A circuit breaker per upstream host. This module owns every breaker state rule.

::

    CLOSED ──(failure_threshold consecutive failures)──► OPEN
    OPEN ──(cooldown elapsed; the next caller becomes the one probe)──► HALF_OPEN
    HALF_OPEN ──(probe succeeds)──► CLOSED
    HALF_OPEN ──(probe fails)──► OPEN (cool-down starts again)
    HALF_OPEN ──(probe gives no verdict: cancelled, deadline)──► HALF_OPEN, next caller probes

While OPEN, and while HALF_OPEN with its probe in flight, callers are refused at once: no
request is sent. The core is synchronous and takes ``now`` (monotonic seconds).

What counts as a failure is the HTTP client's decision (5xx, timeouts, connection errors,
429, refusals and block pages); an answer that shows a healthy host (2xx, 404, 400) is a
success. A verdict from a request admitted before the breaker opened changes nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Admission", "BreakerState", "CircuitBreaker"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Admission:
    """The breaker's answer to one caller."""

    allowed: bool
    """Whether the request may be sent."""
    probe: bool = False
    """This request is the half-open probe: its verdict decides the breaker's state."""
    retry_after: float | None = None
    """When refused: seconds until a probe may be sent (None while a probe is in flight)."""


class CircuitBreaker:
    """Closed, open or half-open; see the module docstring for the rules."""

    __slots__ = (
        "_cooldown",
        "_opened_at",
        "_probe_in_flight",
        "_threshold",
        "consecutive_failures",
        "opened",
        "state",
    )

    def __init__(self, *, failure_threshold: int, cooldown: float) -> None:
        if failure_threshold < 1 or cooldown < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown >= 0")
        self._threshold = failure_threshold
        self._cooldown = cooldown
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        """Failures since the last success."""
        self.opened = 0
        """How many times the breaker has opened."""

    def peek(self, now: float) -> Admission:
        """What ``admit`` would answer, without claiming the probe."""
        if self.state is BreakerState.CLOSED:
            return Admission(allowed=True)
        if self.state is BreakerState.OPEN:
            left = self._opened_at + self._cooldown - now
            if left > 0:
                return Admission(allowed=False, retry_after=left)
            return Admission(allowed=True, probe=True)
        if self._probe_in_flight:
            return Admission(allowed=False)
        return Admission(allowed=True, probe=True)

    def admit(self, now: float) -> Admission:
        """May a request be sent now? Claims the probe when half-open."""
        admission = self.peek(now)
        if admission.probe:
            self.state = BreakerState.HALF_OPEN
            self._probe_in_flight = True
        return admission

    def success(self, admission: Admission) -> None:
        """The admitted request found the host healthy."""
        if admission.probe and self.state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self.state = BreakerState.CLOSED
            self.consecutive_failures = 0
        elif self.state is BreakerState.CLOSED:
            self.consecutive_failures = 0

    def failure(self, admission: Admission, now: float) -> None:
        """The admitted request failed in a way that suggests the host is unwell."""
        if admission.probe and self.state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._open(now)
        elif self.state is BreakerState.CLOSED and not admission.probe:
            self.consecutive_failures += 1
            if self.consecutive_failures >= self._threshold:
                self._open(now)

    def abandon(self, admission: Admission) -> None:
        """The admitted request ended without a verdict (cancelled, deadline reached)."""
        if admission.probe and self.state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False

    def _open(self, now: float) -> None:
        self.state = BreakerState.OPEN
        self._opened_at = now
        self.opened += 1
