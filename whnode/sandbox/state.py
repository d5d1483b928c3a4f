"""The sandbox's runtime state: menus served, versions, counters, rate limits, latency, faults.

One ``SandboxState`` lives in the aiohttp application (``app[STATE]``). Every vendor handler
runs a request through ``gate`` (count it, rate-limit it, delay it, maybe fault it) and answers
through ``respond`` (which applies the faults that damage a body). Counters are per dispensary
and per vendor; ``menu_fetches`` counts first pages, i.e. whole-menu fetches.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from whnode.ratelimit import TokenBucket
from whnode.record.model import Vendor
from whnode.sandbox.catalog import DispensarySpec, Item, menu_at, named_catalog, population
from whnode.sandbox.config import SandboxConfig
from whnode.sandbox.exceptions import InvalidSandboxControl, UnknownSandboxDispensary
from whnode.sandbox.faults import FaultKind, FaultPlan, FaultRule

__all__ = [
    "STATE",
    "CounterSnapshot",
    "SandboxState",
    "SandboxStatistics",
]

RENDER_CACHE_ENTRIES: Final = 48
"""Rendered menus kept (per dispensary, version and API shape)."""
RATE_LIMIT_CLIENTS: Final = 10_000
"""Client addresses tracked by the rate limiter (the oldest are forgotten beyond)."""
BLOCK_PAGE: Final = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    b"<h1>Checking your browser before accessing the site.</h1>"
    b"<p>Please enable JavaScript and cookies to continue.</p></body></html>"
)


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """Requests seen for one dispensary or vendor."""

    requests: int = 0
    """HTTP requests received (pages, retries and refused ones included)."""
    menu_fetches: int = 0
    """First-page requests: whole-menu fetches."""
    rate_limited: int = 0
    """Requests answered 429 by the per-client rate limit."""
    faults: int = 0
    """Requests that got an injected fault."""

    def to_json(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "menu_fetches": self.menu_fetches,
            "rate_limited": self.rate_limited,
            "faults": self.faults,
        }


@dataclass(frozen=True, slots=True)
class SandboxStatistics:
    """A snapshot of the sandbox's counters."""

    dispensaries: tuple[str, ...]
    """Every dispensary served, catalog first."""
    total: CounterSnapshot
    by_dispensary: Mapping[str, CounterSnapshot] = field(default_factory=dict)
    """Counters of each dispensary that was asked for at least once."""
    by_vendor: Mapping[str, CounterSnapshot] = field(default_factory=dict)
    """Counters per vendor API (unknown dispensaries included)."""

    @property
    def requests(self) -> int:
        return self.total.requests

    @property
    def menu_fetches(self) -> int:
        return self.total.menu_fetches

    @property
    def rate_limited(self) -> int:
        return self.total.rate_limited

    def to_json(self) -> dict[str, Any]:
        """The ``/_sandbox/stats`` document."""
        return {
            "dispensaries": list(self.dispensaries),
            **self.total.to_json(),
            "by_dispensary": {k: v.to_json() for k, v in sorted(self.by_dispensary.items())},
            "by_vendor": {k: v.to_json() for k, v in sorted(self.by_vendor.items())},
        }


class _Counter:
    __slots__ = ("faults", "menu_fetches", "rate_limited", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.menu_fetches = 0
        self.rate_limited = 0
        self.faults = 0

    def snapshot(self) -> CounterSnapshot:
        return CounterSnapshot(self.requests, self.menu_fetches, self.rate_limited, self.faults)


class SandboxState:
    """Everything the handlers share (see the module docstring)."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.started = clock()
        specs = (named_catalog(config.seed) if config.catalog else ()) + population(
            config.population, config.seed, config.max_items
        )
        self.specs: dict[str, DispensarySpec] = {spec.dispensary_id: spec for spec in specs}
        self.dispensaries: tuple[str, ...] = tuple(self.specs)
        self.faults = FaultPlan(config.faults, random.Random(f"{config.seed}:faults"))
        self.latency = config.latency
        self.latency_jitter = config.latency_jitter
        self.dispensary_latency: dict[str, float] = {}
        self.rate = config.rate
        self.burst = config.burst
        self.change_interval = config.change_interval
        self._rng = random.Random(f"{config.seed}:latency")
        self._global_advance = 0
        self._advance: dict[str, int] = {}
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._rendered: OrderedDict[tuple[str, int, str], list[Any]] = OrderedDict()
        self.tokens: dict[str, float] = {}
        """Access tokens issued (Treez) and when each expires (``clock`` time)."""
        self.tokens_issued = 0
        self.reset_statistics()

    # ------------------------------------------------------------------ versions
    def epoch(self, dispensary_id: str) -> int:
        """The menu version served now for ``dispensary_id``."""
        elapsed = max(0.0, self.clock() - self.started)
        base = math.floor(elapsed / self.change_interval)
        return base + self._global_advance + self._advance.get(dispensary_id, 0)

    def advance(self, dispensary_id: str | None = None, steps: int = 1) -> None:
        """Move one dispensary's menu (or every menu) ``steps`` versions ahead."""
        if steps < 0:
            raise InvalidSandboxControl("menus only move forward")
        if dispensary_id is None:
            self._global_advance += steps
        else:
            self.spec(dispensary_id, required=True)
            self._advance[dispensary_id] = self._advance.get(dispensary_id, 0) + steps

    def items(self, dispensary_id: str) -> tuple[Item, ...]:
        """The generated items of a dispensary now (empty for the quirky menus)."""
        spec = self.spec(dispensary_id, required=True)
        assert spec is not None
        return menu_at(spec, self.config.seed, self.config.change_rate, self.epoch(dispensary_id))

    def spec(self, dispensary_id: str, *, required: bool = False) -> DispensarySpec | None:
        spec = self.specs.get(dispensary_id)
        if spec is None and required:
            raise UnknownSandboxDispensary(f"the sandbox does not serve {dispensary_id!r}")
        return spec

    def rendered(
        self, spec: DispensarySpec, shape: str, render: Callable[[tuple[Item, ...]], list[Any]]
    ) -> list[Any]:
        """The served list of a menu in one API shape (cached per version)."""
        epoch = self.epoch(spec.dispensary_id)
        key = (spec.dispensary_id, epoch, shape)
        found = self._rendered.get(key)
        if found is None:
            items = menu_at(spec, self.config.seed, self.config.change_rate, epoch)
            found = render(items)
            self._rendered[key] = found
            while len(self._rendered) > RENDER_CACHE_ENTRIES:
                self._rendered.popitem(last=False)
        else:
            self._rendered.move_to_end(key)
        return found

    # ------------------------------------------------------------------ counters
    def reset_statistics(self) -> None:
        """Zero every counter."""
        self._total = _Counter()
        self._by_dispensary: dict[str, _Counter] = {}
        self._by_vendor: dict[str, _Counter] = {}

    def _counters(self, vendor: Vendor, dispensary_id: str | None) -> list[_Counter]:
        counters = [self._total, self._by_vendor.setdefault(str(vendor), _Counter())]
        if dispensary_id is not None and dispensary_id in self.specs:
            counters.append(self._by_dispensary.setdefault(dispensary_id, _Counter()))
        return counters

    def statistics(self) -> SandboxStatistics:
        return SandboxStatistics(
            dispensaries=self.dispensaries,
            total=self._total.snapshot(),
            by_dispensary={k: v.snapshot() for k, v in self._by_dispensary.items()},
            by_vendor={k: v.snapshot() for k, v in self._by_vendor.items()},
        )

    def calls(self, dispensary_id: str | None = None) -> int:
        """HTTP requests received for one dispensary (or in all)."""
        if dispensary_id is None:
            return self._total.requests
        counter = self._by_dispensary.get(dispensary_id)
        return 0 if counter is None else counter.requests

    def menu_fetches(self, dispensary_id: str | None = None) -> int:
        """First pages requested for one dispensary (or in all)."""
        if dispensary_id is None:
            return self._total.menu_fetches
        counter = self._by_dispensary.get(dispensary_id)
        return 0 if counter is None else counter.menu_fetches

    # ------------------------------------------------------------------ controls
    def set_faults(self, rules: Iterable[FaultRule]) -> None:
        self.faults.replace(rules)

    def set_latency(self, seconds: float, dispensary_id: str | None = None) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidSandboxControl("latency must be a finite number >= 0")
        if dispensary_id is None:
            self.latency = seconds
        else:
            self.spec(dispensary_id, required=True)
            self.dispensary_latency[dispensary_id] = seconds

    def set_rate(self, rate: float | None, burst: int | None = None) -> None:
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise InvalidSandboxControl("rate must be > 0 or None")
        self.rate = rate
        if burst is not None:
            if burst < 1:
                raise InvalidSandboxControl("burst must be >= 1")
            self.burst = burst
        self._buckets.clear()

    # ------------------------------------------------------------------ requests
    def _retry_after(self, client: str) -> int | None:
        """None when the client may proceed, else the seconds to wait (a 429)."""
        if self.rate is None:
            return None
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = TokenBucket.filled(self.rate, self.burst, now)
            self._buckets[client] = bucket
            while len(self._buckets) > RATE_LIMIT_CLIENTS:
                self._buckets.popitem(last=False)
        if bucket.take(now):
            return None
        return max(1, math.ceil(bucket.delay(now)))

    async def gate(
        self,
        request: web.Request,
        vendor: Vendor,
        dispensary_id: str | None,
        *,
        first_page: bool,
    ) -> web.StreamResponse | FaultKind | None:
        """Count, rate-limit, delay and maybe fault one request.

        Returns a response to send as it is (429, or a fault answered without a body of the
        API), a body-level fault for the handler to pass to ``respond`` (``empty_page``,
        ``truncated``, ``malformed_json``, ``graphql_error``), or None."""
        counters = self._counters(vendor, dispensary_id)
        for counter in counters:
            counter.requests += 1
            if first_page:
                counter.menu_fetches += 1
        retry_after = self._retry_after(request.remote or "unknown")
        if retry_after is not None:
            for counter in counters:
                counter.rate_limited += 1
            return _too_many(retry_after)
        delay = self.dispensary_latency.get(dispensary_id or "", self.latency)
        if self.latency_jitter:
            delay += self._rng.uniform(0.0, self.latency_jitter)
        if delay > 0:
            await asyncio.sleep(delay)
        fault = self.faults.pick(dispensary_id, vendor, first_page)
        if fault is None:
            return None
        for counter in counters:
            counter.faults += 1
        if fault is FaultKind.TIMEOUT:
            await asyncio.sleep(self.config.timeout_fault_seconds)
            return None
        if fault is FaultKind.SERVER_ERROR or (
            fault is FaultKind.GRAPHQL_ERROR and vendor is not Vendor.DUTCHIE
        ):
            return web.json_response({"error": "Internal Server Error", "status": 500}, status=500)
        if fault is FaultKind.UNAVAILABLE:
            return web.json_response(
                {"error": "Service Unavailable", "status": 503},
                status=503,
                headers={"Retry-After": "1"},
            )
        if fault is FaultKind.RATE_LIMITED:
            return _too_many(1)
        if fault is FaultKind.NOT_ACCEPTABLE:
            return web.json_response(
                {"errors": [{"status": "406", "title": "Not Acceptable"}]}, status=406
            )
        if fault is FaultKind.HTML_BLOCK:
            return web.Response(body=BLOCK_PAGE, content_type="text/html", charset="utf-8")
        return fault

    async def respond(
        self, request: web.Request, document: Any, fault: FaultKind | None = None
    ) -> web.StreamResponse:
        """Send ``document`` as JSON, damaged as a body-level ``fault`` says."""
        body = json.dumps(document, separators=(",", ":")).encode()
        if fault is FaultKind.MALFORMED_JSON:
            body = body[: max(1, len(body) // 2)]
        if fault is not FaultKind.TRUNCATED:
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        response.force_close()
        await response.prepare(request)
        await response.write(body[: max(1, len(body) // 3)])
        if request.transport is not None:
            request.transport.close()
        return response


def _too_many(retry_after: int) -> web.Response:
    return web.json_response(
        {"message": "Too Many Requests", "status": 429},
        status=429,
        headers={"Retry-After": str(retry_after)},
    )


STATE: Final = web.AppKey("whnode_sandbox_state", SandboxState)
"""Where the application keeps its ``SandboxState``."""
