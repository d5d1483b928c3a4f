"""``add_public_routes``: the public HTTP API on a node's aiohttp application.

Routes (documented in the OpenAPI document served at ``/openapi.json``, docs/api.md):

- ``/v1/menus/{dispensary}``, ``.../history``, ``.../stats``: menus (``whnode.api.menus``);
- ``/v1/dispensaries``, ``/v1/node``, ``/v1/node/history``: what the node knows and does;
- ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``;
- ``/`` and ``/static/...``: the volunteer status page (when ``config.api.status_page``).

Every route is registered through ``PublicApi.guard``, which wraps its handler in one
coroutine: it refuses what the public API never accepts (a body on GET/HEAD, a query string
over ``limits.MAX_QUERY_STRING_BYTES``, a client over its rate) before any work, turns every
error into an RFC 9457 problem document (``whnode.api.problems``), adds the CORS headers of
``/v1/`` answers and records request metrics. A last catch-all route answers unknown paths
(404) and known paths asked with another method (405, with ``Allow``) the same way; ``OPTIONS``
on a known path answers 204 with ``Allow`` (for ``/v1/`` paths, a CORS preflight answer). The
node-to-node routes under ``/peer/`` are wrapped for metrics only (``PublicApi.instrument``):
they keep their own limits and problem documents.

Guards instead of an aiohttp middleware: a middleware adds two coroutine layers to every
request, a measurable share of a hot menu hit (docs/architecture.md, "A hot hit"). A
guarded handler may also answer synchronously: when it returns a response instead of an
awaitable, nothing is awaited at all (the menu handler does so for hot hits).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from multidict import istr
from prometheus_client import CONTENT_TYPE_LATEST

from whnode import limits
from whnode.api.changes import ChangeHandlers
from whnode.api.context import ApiContext
from whnode.api.events import EventStreams
from whnode.api.exceptions import BodyNotAllowed, ClientRateLimited, NodeNotReady, QueryTooLong
from whnode.api.fairness import MAX_DELAY, FairShare
from whnode.api.ingress import HttpIngress
from whnode.api.menus import CORS_HEADERS, HEADER_PATH, MenuHandlers
from whnode.api.metrics import ApiMetrics
from whnode.api.openapi import openapi_document
from whnode.api.opened import OpenedMenus
from whnode.api.params import single_values
from whnode.api.problems import INTERNAL_ERROR, problem_for, problem_response
from whnode.api.products import ProductHandlers
from whnode.api.querystats import query_statistics
from whnode.api.ratelimit import ClientRateLimiter, client_key
from whnode.api.render import RenderCache
from whnode.api.search import SearchHandlers
from whnode.api.server import ingress_of
from whnode.api.status_page import status_page_routes

__all__ = ["PEER_PREFIX", "UNMATCHED", "PublicApi", "add_public_routes", "public_api"]

LOG = logging.getLogger(__name__)

PEER_PREFIX: Final = "/peer/"
"""Paths under this prefix belong to the node-to-node API (its own limits)."""
MAX_INSTANCE_CHARS: Final = 256
"""Longest ``instance`` member (the request path) put in a problem document."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GuardedHandler = Callable[[web.Request], web.StreamResponse | Awaitable[web.StreamResponse]]
"""A handler a guard wraps: a coroutine function, or a function that answers at once with a
response or returns an awaitable of one."""

UNMATCHED: Final = "unmatched"
"""Route label (metrics) and route name of the catch-all route: no route matched the path."""


def _jsonable(value: object) -> object:
    """json.dumps fallback for the values node_info() and samples may hold."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def json_response(document: object, *, status: int = 200, cache: str = "no-cache") -> web.Response:
    body = json.dumps(document, default=_jsonable, separators=(",", ":")).encode()
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        headers={"Cache-Control": cache},
    )


class PublicApi:
    """The state behind the public routes: context, metrics, limiter, render cache."""

    def __init__(self, context: ApiContext, ingress: HttpIngress | None = None) -> None:
        self.context = context
        self.ingress = ingress if ingress is not None else HttpIngress()
        api_config, seed = context.config.api, context.config.seed
        if context.config.node.routing_only:  # a seed: health checks and scrapes only
            self.limiter = ClientRateLimiter(
                rate=seed.http_requests_per_second, burst=seed.http_burst
            )
        else:
            self.limiter = ClientRateLimiter(
                rate=api_config.requests_per_second, burst=api_config.burst
            )
        self.fairness = FairShare()
        self.renders = RenderCache()
        # The context is read when scraped, not now (a node adds routes before it starts).
        self.metrics = ApiMetrics(
            snapshots=self._snapshots,
            healthy=lambda: self.context.healthy(),
            ready=lambda: self.context.ready(),
            identity=self._identity,
        )
        self.menus = MenuHandlers(context, self.renders)
        self.opened = OpenedMenus()
        self.products = ProductHandlers(context, self.opened)
        self.changes = ChangeHandlers(context, self.opened)
        self.streams = EventStreams(context, self.opened)
        self.searches = SearchHandlers(context)
        self._openapi = json.dumps(openapi_document(), indent=1).encode()

    def _identity(self) -> tuple[str, str]:
        node_id = getattr(self.context, "node_id", None)
        role = "seed" if self.context.config.node.routing_only else "node"
        return (node_id.hex() if isinstance(node_id, bytes) else ""), role

    def _snapshots(self) -> dict[str, object]:
        snapshots = dict(self.context.statistics())
        snapshots["api_render_cache"] = self.renders.statistics()
        snapshots["api_queries"] = query_statistics(self)
        snapshots["api_rate_limiter"] = self.limiter.statistics()
        snapshots["api_fair_share"] = self.fairness.statistics()
        snapshots["http_ingress"] = self.ingress.statistics()
        return snapshots

    # ------------------------------------------------------------------ guards
    def _refuse_early(self, request: web.Request) -> float:
        """Checks done before any work: rate, query size, body on GET/HEAD. Returns the
        seconds the request must wait for its turn (``whnode.api.fairness``; 0 mostly)."""
        key = client_key(request.remote)
        now = time.monotonic()
        wait = self.limiter.check(key, now)
        if wait > 0:
            self.ingress.note_refusal(key)
            raise ClientRateLimited("request rate exceeded for this client", retry_after=wait)
        query = request.rel_url.raw_query_string
        # a character is at most 4 bytes of UTF-8: most queries need no encoding to check
        if (
            len(query) * 4 > limits.MAX_QUERY_STRING_BYTES
            and len(query.encode("utf-8", "surrogatepass")) > limits.MAX_QUERY_STRING_BYTES
        ):
            raise QueryTooLong(f"query string longer than {limits.MAX_QUERY_STRING_BYTES} bytes")
        if request.body_exists and request.method in ("GET", "HEAD"):
            raise BodyNotAllowed(f"{request.method} requests take no body")
        return self.fairness.delay(key, now)  # last: a turn taken is waited for

    async def _wait_turn(self, request: web.Request, turn: float) -> None:
        """A heavy client of a busy node waits for its turn (``whnode.api.fairness``); one
        whose turn is more than MAX_DELAY away waits that long and is refused."""
        key = client_key(request.remote)
        try:
            await asyncio.sleep(min(turn, MAX_DELAY))
        finally:
            self.fairness.waited(key)
        if turn > MAX_DELAY:
            self.ingress.note_refusal(key)
            raise ClientRateLimited(
                "this client's share of a busy node is used", retry_after=turn - MAX_DELAY
            )

    def guard(self, route: str, handler: GuardedHandler) -> Handler:
        """``handler`` of the public route ``route`` (its path pattern, the metrics label),
        wrapped in the checks, problem documents, CORS headers and metrics of the API."""
        cors = route.startswith("/v1/")
        refuse_early = self._refuse_early
        wait_turn = self._wait_turn
        problem = self._problem
        observe = self.metrics.observe_request

        async def guarded(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                turn = refuse_early(request)
                if turn > 0:  # a busy node: a heavy client waits for its turn
                    await wait_turn(request, turn)
                response = handler(request)
                if not isinstance(response, web.StreamResponse):
                    response = await response
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                response = problem(request, exc, route)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                response = problem(request, exc, route)
            headers = response.headers
            if cors and _ALLOW_ORIGIN not in headers:
                headers.extend(CORS_HEADERS)
            method = request.method
            observe(
                route,
                method if method in _METHODS else "other",
                response.status,
                headers.get(_ANSWER_PATH, ""),
                time.perf_counter() - started,
            )
            return response

        return guarded

    def instrument(self, route: str, handler: Handler) -> Handler:
        """``handler`` of the node-to-node route ``route``, with request metrics only: it
        keeps its own limits and problem documents."""
        observe = self.metrics.observe

        async def instrumented(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            response = await handler(request)
            method = request.method
            observe(
                route=route,
                method=method if method in _METHODS else "other",
                status=response.status,
                answer_path=response.headers.get(_ANSWER_PATH, ""),  # fills say how they answered
                seconds=time.perf_counter() - started,
            )
            return response

        return instrumented

    async def unmatched(self, request: web.Request) -> web.StreamResponse:
        """The catch-all route: 405 (with Allow) when another method would match the path,
        else 404; both as problem documents, counted under the ``unmatched`` label."""
        started = time.perf_counter()
        path = request.path
        public = not path.startswith(PEER_PREFIX)
        try:
            if public and (turn := self._refuse_early(request)) > 0:
                await self._wait_turn(request, turn)
            allowed: set[str] = set()
            for resource in request.app.router.resources():
                if resource.name != UNMATCHED:
                    allowed |= (await resource.resolve(request))[1]
            if allowed and request.method == "OPTIONS":
                response = _options(allowed, cors=public and path.startswith("/v1/"))
            elif allowed:
                raise web.HTTPMethodNotAllowed(request.method, allowed)
            else:
                raise web.HTTPNotFound()
        except Exception as exc:
            response = self._problem(request, exc, UNMATCHED)
        if public and path.startswith("/v1/"):
            response.headers.extend(CORS_HEADERS)
        self.metrics.observe(
            route=UNMATCHED,
            method=request.method if request.method in _METHODS else "other",
            status=response.status,
            answer_path="",
            seconds=time.perf_counter() - started,
        )
        return response

    def _problem(self, request: web.Request, exc: BaseException, route: str) -> web.Response:
        problem = problem_for(exc)
        if problem.type is INTERNAL_ERROR:
            self.metrics.unexpected.labels(route, type(exc).__name__).inc()
            LOG.error(
                "unexpected error answering %s %s",
                request.method,
                request.rel_url.raw_path[:MAX_INSTANCE_CHARS],
                exc_info=exc,
            )
        self.metrics.problems.labels(problem.type.slug if problem.type else "about:blank").inc()
        return problem_response(problem, instance=request.rel_url.raw_path[:MAX_INSTANCE_CHARS])

    # ------------------------------------------------------------------ node endpoints
    async def dispensaries(self, request: web.Request) -> web.StreamResponse:
        single_values(request.query, ())
        return json_response({"dispensaries": sorted(self.context.known_dispensaries())})

    async def node(self, request: web.Request) -> web.StreamResponse:
        single_values(request.query, ())
        return json_response(self.node_info_document())

    def node_info_document(self) -> dict[str, Any]:
        try:
            document = dict(self.context.node_info())
        except AttributeError:
            raise NodeNotReady("the node has not started") from None
        document["queries"] = dataclasses.asdict(query_statistics(self))
        return document

    async def node_history(self, request: web.Request) -> web.StreamResponse:
        single_values(request.query, ())
        return json_response({"samples": [dict(s) for s in self.context.history_samples()]})

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        single_values(request.query, ())
        # a seed (whnode.seed) adds why and who it is: reason, role, node_id, peers, uptime
        health_members = getattr(self.context, "health_members", None)
        members: dict[str, Any] = dict(health_members()) if health_members is not None else {}
        if not self.context.healthy():
            detail = members.pop("reason", None) or "the node is not connected to the network"
            raise NodeNotReady(str(detail), members=members)
        return json_response({"status": "ok", **members}, cache="no-store")

    async def readyz(self, request: web.Request) -> web.StreamResponse:
        single_values(request.query, ())
        if not self.context.ready():
            raise NodeNotReady("the node cannot answer menu requests yet")
        return json_response({"status": "ready"}, cache="no-store")

    async def metrics_text(self, request: web.Request) -> web.StreamResponse:
        single_values(request.query, ())
        return web.Response(
            body=self.metrics.exposition(),
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        single_values(request.query, ())
        return web.Response(
            body=self._openapi,
            headers={"Content-Type": "application/json", "Cache-Control": "max-age=300"},
        )

    async def shutdown(self, app: web.Application) -> None:
        """End the event streams first: a draining node waits for open requests."""
        del app
        await self.streams.aclose()

    async def close(self, app: web.Application) -> None:
        del app
        self.fairness.close()
        await self.renders.aclose()


CORS_PREFLIGHT_MAX_AGE: Final = 86400
"""Seconds a browser may reuse a preflight answer."""
CORS_ALLOWED_HEADERS: Final = (
    "Accept, Accept-Encoding, Cache-Control, If-Modified-Since, If-None-Match, Last-Event-ID"
)
"""Request headers a cross-origin script may send (the conditional and content-negotiation
headers the menu routes read)."""


def _options(allowed: set[str], *, cors: bool) -> web.Response:
    """204 to ``OPTIONS`` on a known path: ``Allow``, and for ``/v1/`` paths the answer to a
    CORS preflight (any origin, GET/HEAD, the headers the API reads)."""
    methods = ", ".join(sorted(allowed | {"OPTIONS"}))
    headers = {"Allow": methods}
    if cors:
        headers.update(
            {
                "Access-Control-Allow-Methods": methods,
                "Access-Control-Allow-Headers": CORS_ALLOWED_HEADERS,
                "Access-Control-Max-Age": str(CORS_PREFLIGHT_MAX_AGE),
            }
        )
    return web.Response(status=204, headers=headers)


PUBLIC_API_KEY: Final = web.AppKey("whnode_public_api", PublicApi)
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# header names as istr: multidict compares them without case-folding them on every lookup
_ALLOW_ORIGIN: Final = istr("Access-Control-Allow-Origin")
_ANSWER_PATH: Final = istr(HEADER_PATH)


def add_public_routes(app: web.Application, context: ApiContext) -> PublicApi:
    """Register the public API, the status page and the catch-all route on ``app``.

    The context is only read while answering requests (and ``context.config`` now), so a
    node may call this before its service exists. Routes added to ``app`` afterwards are
    still found when their fixed prefix is longer than ``/`` (aiohttp 3.10 and later resolve
    the longest prefix first; pyproject.toml requires 3.12): the node adds its
    ``/peer/v1/...`` routes afterwards, wrapped with ``PublicApi.instrument``. A later route
    whose first segment is dynamic (``/{x}``) would share the catch-all's index key ``/`` and
    never be reached.
    """
    api = PublicApi(context, ingress_of(app))
    app[PUBLIC_API_KEY] = api
    app.on_shutdown.append(api.shutdown)
    app.on_cleanup.append(api.close)
    routes: list[tuple[str, GuardedHandler]] = [
        ("/v1/menus/{dispensary}", api.menus.menu),
        ("/v1/menus/{dispensary}/history", api.menus.history),
        ("/v1/menus/{dispensary}/stats", api.menus.stats),
        ("/v1/menus/{dispensary}/products", api.products.products),
        ("/v1/menus/{dispensary}/changes", api.changes.changes),
        ("/v1/menus/{dispensary}/events", api.streams.events),
        ("/v1/search", api.searches.search),
        ("/v1/dispensaries", api.dispensaries),
        ("/v1/node", api.node),
        ("/v1/node/history", api.node_history),
        ("/healthz", api.healthz),
        ("/readyz", api.readyz),
        ("/metrics", api.metrics_text),
        ("/openapi.json", api.openapi),
    ]
    if context.config.node.routing_only:  # a seed serves no menus, and says so
        routes = [(path, _routing_only if path in MENU_ROUTES else h) for path, h in routes]
    elif context.config.api.status_page:
        routes.extend(status_page_routes(context, node_info=api.node_info_document))
    for path, handler in routes:
        app.router.add_get(path, api.guard(path, handler))
    # last: registered after the status page's "/" (same index key, so tried after it);
    # [\s\S] and not ".": a decoded path may hold a newline (%0A)
    app.router.add_route("*", r"/{tail:[\s\S]*}", api.unmatched, name=UNMATCHED)
    return api


MENU_ROUTES: Final = frozenset(
    {
        "/v1/menus/{dispensary}",
        "/v1/menus/{dispensary}/history",
        "/v1/menus/{dispensary}/stats",
        "/v1/menus/{dispensary}/products",
        "/v1/menus/{dispensary}/changes",
        "/v1/menus/{dispensary}/events",
        "/v1/search",
        "/v1/dispensaries",
        "/v1/node/history",
    }
)
"""The routes a routing-only node (a seed) answers with a 404 problem saying why."""


async def _routing_only(request: web.Request) -> web.StreamResponse:
    from whnode.seed import ROUTING_ONLY_DETAIL

    raise web.HTTPNotFound(reason=ROUTING_ONLY_DETAIL)


def public_api(app: web.Application) -> PublicApi:
    """The PublicApi registered on ``app`` by add_public_routes (metrics, caches)."""
    return app[PUBLIC_API_KEY]
