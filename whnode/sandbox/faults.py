"""Injected faults: what can go wrong with an upstream answer, and when it does.

A ``FaultRule`` names a kind of fault and where it applies (one dispensary, one vendor, or
everything; first pages only, later pages only, or all), how often (a probability) and how many
times. ``FaultPlan`` holds the active rules; for each request the first rule that matches and
fires decides the fault. Draws come from one ``random.Random`` seeded by the sandbox seed, so
a run is repeatable for a given order of requests.

===================  =====================================================================
kind                 answer
===================  =====================================================================
``server_error``     HTTP 500 with a JSON error body
``unavailable``      HTTP 503 with ``Retry-After: 1``
``timeout``          no answer until ``timeout_fault_seconds`` (past any client timeout)
``truncated``        a ``Content-Length`` longer than the body, then the connection closes
``html_block``       HTTP 200 ``text/html``: a bot-challenge page instead of JSON
``not_acceptable``   HTTP 406 (how Weedmaps answers blocked callers)
``rate_limited``     HTTP 429 with ``Retry-After: 1``
``empty_page``       a well-formed page with no items (totals unchanged)
``malformed_json``   HTTP 200 ``application/json`` whose body is cut-off JSON
``graphql_error``    Dutchie: HTTP 200 with an ``errors`` array; other vendors: HTTP 500
===================  =====================================================================
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from whnode.errors import ConfigError
from whnode.record.model import Vendor

__all__ = ["FaultKind", "FaultPlan", "FaultRule", "PageSelector"]


class FaultKind(enum.StrEnum):
    """A way an upstream answer goes wrong (see the module docstring)."""

    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    TRUNCATED = "truncated"
    HTML_BLOCK = "html_block"
    NOT_ACCEPTABLE = "not_acceptable"
    RATE_LIMITED = "rate_limited"
    EMPTY_PAGE = "empty_page"
    MALFORMED_JSON = "malformed_json"
    GRAPHQL_ERROR = "graphql_error"


class PageSelector(enum.StrEnum):
    """Which pages of a menu a rule applies to."""

    ALL = "all"
    FIRST = "first"
    LATER = "later"


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One kind of fault and where, how often and how many times it strikes."""

    kind: FaultKind
    """What goes wrong."""
    probability: float = 1.0
    """Chance that a matching request gets the fault."""
    dispensary_id: str | None = None
    """Only this dispensary (None: every dispensary)."""
    vendor: Vendor | None = None
    """Only this vendor's API (None: every vendor)."""
    pages: PageSelector = PageSelector.ALL
    """Only first pages, only later pages, or all."""
    times: int | None = None
    """Requests the rule strikes before it retires (None: until cleared)."""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, FaultKind):
            raise ConfigError("fault kind must be a FaultKind")
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigError("fault probability must be between 0 and 1")
        if self.times is not None and self.times < 1:
            raise ConfigError("fault times must be >= 1 (or None)")

    def matches(self, dispensary_id: str | None, vendor: Vendor, first_page: bool) -> bool:
        """Whether a request for this dispensary, vendor and page is in the rule's scope."""
        if self.dispensary_id is not None and self.dispensary_id != dispensary_id:
            return False
        if self.vendor is not None and self.vendor is not vendor:
            return False
        if self.pages is PageSelector.FIRST:
            return first_page
        if self.pages is PageSelector.LATER:
            return not first_page
        return True

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> FaultRule:
        """A rule from its JSON form (the control endpoint); ConfigError when invalid."""
        unknown = set(document) - {
            "kind",
            "probability",
            "dispensary_id",
            "vendor",
            "pages",
            "times",
        }
        if unknown:
            raise ConfigError(f"unknown fault fields {sorted(unknown)}")
        try:
            vendor = document.get("vendor")
            times = document.get("times")
            return cls(
                kind=FaultKind(document["kind"]),
                probability=float(document.get("probability", 1.0)),
                dispensary_id=document.get("dispensary_id"),
                vendor=None if vendor is None else Vendor(vendor),
                pages=PageSelector(document.get("pages", "all")),
                times=None if times is None else int(times),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"invalid fault rule: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "probability": self.probability,
            "dispensary_id": self.dispensary_id,
            "vendor": None if self.vendor is None else str(self.vendor),
            "pages": str(self.pages),
            "times": self.times,
        }


class FaultPlan:
    """The active fault rules (mutable at runtime) and the draws that fire them."""

    def __init__(self, rules: Iterable[FaultRule], rng: random.Random) -> None:
        self._rng = rng
        self._rules: list[FaultRule] = []
        self._left: list[int | None] = []
        self.replace(rules)

    def replace(self, rules: Iterable[FaultRule]) -> None:
        """Make ``rules`` the active rules (their ``times`` counts start afresh)."""
        self._rules = list(rules)
        self._left = [rule.times for rule in self._rules]

    def add(self, rule: FaultRule) -> None:
        """Add one rule after the others."""
        self._rules.append(rule)
        self._left.append(rule.times)

    def clear(self, dispensary_id: str | None = None) -> None:
        """Remove every rule, or only those aimed at ``dispensary_id``."""
        keep = [
            index
            for index, rule in enumerate(self._rules)
            if dispensary_id is not None and rule.dispensary_id != dispensary_id
        ]
        self._rules = [self._rules[index] for index in keep]
        self._left = [self._left[index] for index in keep]

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        """The rules still active."""
        return tuple(r for r, left in zip(self._rules, self._left, strict=True) if left != 0)

    def pick(self, dispensary_id: str | None, vendor: Vendor, first_page: bool) -> FaultKind | None:
        """The fault for one request, or None."""
        for index, rule in enumerate(self._rules):
            left = self._left[index]
            if left == 0 or not rule.matches(dispensary_id, vendor, first_page):
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            if left is not None:
                self._left[index] = left - 1
            return rule.kind
        return None
