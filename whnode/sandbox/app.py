"""The sandbox application, its control endpoints and ``run_sandbox`` for tests and benchmarks.

Vendor APIs (real paths and shapes; see docs/upstreams.md):

- Dutchie ``GET /graphql`` (and ``/api-3/graphql``)
- Jane ``POST /1/indexes/menu-products-production/query``
- Weedmaps ``GET /discovery/v1/listings/dispensaries/{slug}/menu_items`` and
  ``GET /v1/listings/dispensaries/{slug}/menu_items`` (JSON:API)
- Leafly ``GET /api/dispensaries/v1/{slug}/menu_items``

Control (JSON in and out):

- ``GET /healthz``; ``GET /_sandbox/dispensaries`` (id, vendor, size class, name, items)
- ``GET /_sandbox/stats`` (``dispensaries``, ``requests``, ``menu_fetches``,
  ``rate_limited``, ``faults``, ``by_dispensary``, ``by_vendor``);
  ``POST /_sandbox/stats/reset``
- ``PUT /_sandbox/faults`` ``{"faults": [{"kind", "probability", "dispensary_id", "vendor",
  "pages", "times"}]}`` replaces the rules; ``DELETE /_sandbox/faults`` clears them
- ``POST /_sandbox/latency`` ``{"seconds", "dispensary_id"?}``
- ``POST /_sandbox/rate`` ``{"rate": number | null, "burst"?}``
- ``POST /_sandbox/advance`` ``{"dispensary_id"?, "steps"?}`` → ``{"epoch"}``
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from aiohttp import web

from whnode.errors import ConfigError
from whnode.record.model import Vendor
from whnode.sandbox import vendors
from whnode.sandbox.catalog import DispensarySpec, Item, SizeClass
from whnode.sandbox.config import SandboxConfig
from whnode.sandbox.exceptions import UnknownSandboxDispensary
from whnode.sandbox.faults import FaultKind, FaultRule
from whnode.sandbox.state import STATE, SandboxState, SandboxStatistics

__all__ = ["SandboxServer", "create_app", "run_sandbox"]

SHUTDOWN_TIMEOUT: Final = 1.0
"""Seconds requests in flight (a ``timeout`` fault's, say) get when the sandbox stops."""


def _state(request: web.Request) -> SandboxState:
    return request.app[STATE]


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        document = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="the body must be a JSON object") from None
    if not isinstance(document, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return document


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "dispensaries": len(_state(request).dispensaries)})


async def list_dispensaries(request: web.Request) -> web.Response:
    state = _state(request)
    return web.json_response(
        [
            {
                "id": spec.dispensary_id,
                "vendor": str(spec.vendor),
                "size_class": str(spec.size_class),
                "name": spec.name,
                "items": len(state.items(spec.dispensary_id)) if spec.items else None,
                "epoch": state.epoch(spec.dispensary_id),
            }
            for spec in state.specs.values()
        ]
    )


async def stats(request: web.Request) -> web.Response:
    return web.json_response(_state(request).statistics().to_json())


async def reset_stats(request: web.Request) -> web.Response:
    _state(request).reset_statistics()
    return web.json_response(_state(request).statistics().to_json())


async def put_faults(request: web.Request) -> web.Response:
    document = await _body(request)
    rules = document.get("faults", [])
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        return _bad("faults must be a list of objects")
    try:
        parsed = [FaultRule.from_json(rule) for rule in rules]
    except ConfigError as exc:
        return _bad(str(exc))
    _state(request).set_faults(parsed)
    return web.json_response({"faults": [rule.to_json() for rule in parsed]})


async def delete_faults(request: web.Request) -> web.Response:
    _state(request).set_faults(())
    return web.json_response({"faults": []})


async def set_latency(request: web.Request) -> web.Response:
    document = await _body(request)
    try:
        _state(request).set_latency(float(document["seconds"]), document.get("dispensary_id"))
    except (KeyError, TypeError, ValueError) as exc:
        return _bad(f"invalid latency: {exc}")
    return web.json_response({"seconds": float(document["seconds"])})


async def set_rate(request: web.Request) -> web.Response:
    document = await _body(request)
    try:
        rate = document.get("rate")
        burst = document.get("burst")
        _state(request).set_rate(
            None if rate is None else float(rate), None if burst is None else int(burst)
        )
    except (TypeError, ValueError) as exc:
        return _bad(f"invalid rate: {exc}")
    return web.json_response({"rate": _state(request).rate, "burst": _state(request).burst})


async def advance(request: web.Request) -> web.Response:
    document = await _body(request)
    dispensary_id = document.get("dispensary_id")
    try:
        _state(request).advance(dispensary_id, int(document.get("steps", 1)))
    except (KeyError, TypeError, ValueError) as exc:
        return _bad(f"cannot advance: {exc}")
    epoch = None if dispensary_id is None else _state(request).epoch(dispensary_id)
    return web.json_response({"dispensary_id": dispensary_id, "epoch": epoch})


def create_app(
    config: SandboxConfig | None = None, *, clock: Callable[[], float] = time.monotonic
) -> web.Application:
    """The sandbox as an aiohttp application (its state in ``app[STATE]``); ``clock`` times
    its rate limits, menu changes and token expiry (tests move it by hand)."""
    app = web.Application()
    app[STATE] = SandboxState(config or SandboxConfig(), clock=clock)
    app.add_routes(vendors.routes())
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/_sandbox/dispensaries", list_dispensaries),
            web.get("/_sandbox/stats", stats),
            web.post("/_sandbox/stats/reset", reset_stats),
            web.put("/_sandbox/faults", put_faults),
            web.delete("/_sandbox/faults", delete_faults),
            web.post("/_sandbox/latency", set_latency),
            web.post("/_sandbox/rate", set_rate),
            web.post("/_sandbox/advance", advance),
        ]
    )
    return app


class SandboxServer:
    """A running sandbox: where it listens, what it serves, its counters and its controls."""

    def __init__(self, app: web.Application, base_url: str, port: int) -> None:
        self.app = app
        self.state = app[STATE]
        self.config = self.state.config
        self.base_url = base_url
        """``http://host:port``: every vendor's base URL."""
        self.port = port
        self.dispensaries: list[str] = list(self.state.dispensaries)
        """Every dispensary id served, the named catalog (tiny ones first) before the
        generated population."""

    # ------------------------------------------------------------------ what is served
    def spec(self, dispensary_id: str) -> DispensarySpec:
        spec = self.state.spec(dispensary_id, required=True)
        assert spec is not None
        return spec

    def named(self, size_class: SizeClass, vendor: Vendor) -> str:
        """The id of the named dispensary of this size and vendor."""
        for spec in self.state.specs.values():
            if spec.size_class is size_class and spec.vendor is vendor:
                return spec.dispensary_id
        raise UnknownSandboxDispensary(f"no {size_class} {vendor} dispensary is served")

    def items(self, dispensary_id: str) -> tuple[Item, ...]:
        """The generated items a dispensary serves now (the truth behind its pages)."""
        return self.state.items(dispensary_id)

    def epoch(self, dispensary_id: str) -> int:
        """The menu version a dispensary serves now."""
        return self.state.epoch(dispensary_id)

    # ------------------------------------------------------------------ counters
    def calls(self, dispensary_id: str | None = None) -> int:
        """HTTP requests (pages, retries, refused ones) received for a dispensary, or all."""
        return self.state.calls(dispensary_id)

    def menu_fetches(self, dispensary_id: str | None = None) -> int:
        """First-page requests (whole-menu fetches) for a dispensary, or all."""
        return self.state.menu_fetches(dispensary_id)

    def stats(self) -> SandboxStatistics:
        return self.state.statistics()

    def reset_stats(self) -> None:
        self.state.reset_statistics()

    # ------------------------------------------------------------------ controls
    def set_faults(self, *rules: FaultRule) -> None:
        """Replace the active fault rules."""
        self.state.set_faults(rules)

    def add_fault(self, rule: FaultRule) -> None:
        self.state.faults.add(rule)

    def clear_faults(self, dispensary_id: str | None = None) -> None:
        """Remove every rule, or those aimed at one dispensary."""
        self.state.faults.clear(dispensary_id)

    def fail(self, dispensary_id: str, kind: FaultKind = FaultKind.SERVER_ERROR) -> None:
        """Make every request for ``dispensary_id`` fail with ``kind`` until ``heal``."""
        self.spec(dispensary_id)
        self.state.faults.add(FaultRule(kind, dispensary_id=dispensary_id))

    def heal(self, dispensary_id: str) -> None:
        self.clear_faults(dispensary_id)

    def set_latency(self, seconds: float, dispensary_id: str | None = None) -> None:
        """Seconds added to each answer (for one dispensary, or the default)."""
        self.state.set_latency(seconds, dispensary_id)

    def set_rate(self, rate: float | None, burst: int | None = None) -> None:
        """Requests per second per client (None: unlimited); buckets start full."""
        self.state.set_rate(rate, burst)

    def advance(self, dispensary_id: str | None = None, steps: int = 1) -> None:
        """Move one menu (or all) ``steps`` versions ahead."""
        self.state.advance(dispensary_id, steps)

    def credentials(self) -> dict[Vendor, dict[str, str]]:
        """Source credentials that open the keyed APIs (Treez, Flowhub)::

        SourcesConfig.pointing_at(sandbox.base_url, sandbox.credentials())"""
        return self.config.credentials()

    def expire_tokens(self) -> None:
        """Make every access token issued so far expire now (the next page answers 401)."""
        for token in self.state.tokens:
            self.state.tokens[token] = 0.0

    @property
    def tokens_issued(self) -> int:
        """Access tokens the Treez token endpoint has issued."""
        return self.state.tokens_issued


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


@contextlib.asynccontextmanager
async def run_sandbox(
    config: SandboxConfig | None = None,
    *,
    on_started: Callable[[SandboxServer], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[SandboxServer]:
    """Serve the sandbox on ``config.host:config.port`` (port 0: a free one) until the block
    ends::

        async with run_sandbox(SandboxConfig(seed=7)) as sandbox:
            sources = SourcesConfig.pointing_at(sandbox.base_url)
    """
    config = config or SandboxConfig()
    app = create_app(config, clock=clock)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        handler_cancellation=True,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
        await site.start()
        address = runner.addresses[0]
        server = SandboxServer(app, _url(config.host, int(address[1])), int(address[1]))
        if on_started is not None:
            on_started(server)
        yield server
    finally:
        await runner.cleanup()
