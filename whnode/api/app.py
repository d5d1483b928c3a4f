"""``add_public_routes``: the public HTTP API on a node's aiohttp application.

Routes (documented in the OpenAPI document served at ``/openapi.json``, docs/api.md):

- ``/v1/menus/{dispensary}``, ``.../history``, ``.../stats``: menus (``whnode.api.menus``);
- ``/v1/dispensaries``, ``/v1/node``, ``/v1/node/history``: what the node knows and does;
- ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``;
- ``/`` and ``/static/...``: the volunteer status page (when ``config.api.status_page``).

One middleware wraps every request on the application (the node-to-node routes under
``/peer/`` included): it refuses what the public API never accepts (a body on GET/HEAD, a
query string over ``limits.MAX_QUERY_STRING_BYTES``, a client over its rate) before any work,
turns every error into an RFC 9457 problem document (``whnode.api.problems``), and records
request metrics. The ``/peer/`` routes keep their own limits and problem documents.
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
from prometheus_client import CONTENT_TYPE_LATEST

from whnode import limits
from whnode.api.context import ApiContext
from whnode.api.exceptions import BodyNotAllowed, ClientRateLimited, NodeNotReady, QueryTooLong
from whnode.api.menus import CORS_HEADERS, MenuHandlers
from whnode.api.metrics import ApiMetrics
from whnode.api.openapi import openapi_document
from whnode.api.params import single_values
from whnode.api.problems import INTERNAL_ERROR, problem_for, problem_response
from whnode.api.ratelimit import ClientRateLimiter, client_key
from whnode.api.render import RenderCache
from whnode.api.status_page import add_status_page

__all__ = ["PEER_PREFIX", "PublicApi", "add_public_routes", "public_api"]

LOG = logging.getLogger(__name__)

PEER_PREFIX: Final = "/peer/"
"""Paths under this prefix belong to the node-to-node API (its own limits)."""
MAX_INSTANCE_CHARS: Final = 256
"""Longest ``instance`` member (the request path) put in a problem document."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


class PublicApi:
    """The state behind the public routes: context, metrics, limiter, render cache."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context
        api_config = context.config.api
        self.limiter = ClientRateLimiter(
            rate=api_config.requests_per_second, burst=api_config.burst
        )
        self.renders = RenderCache()
        # The context is read when scraped, not now (a node adds routes before it starts).
        self.metrics = ApiMetrics(
            snapshots=self._snapshots,
            healthy=lambda: self.context.healthy(),
            ready=lambda: self.context.ready(),
        )
        self.menus = MenuHandlers(context, self.renders)
        self._openapi = json.dumps(openapi_document(), indent=1).encode()

    def _snapshots(self) -> dict[str, object]:
        snapshots = dict(self.context.statistics())
        snapshots["api_render_cache"] = self.renders.statistics()
        snapshots["api_rate_limiter"] = self.limiter.statistics()
        return snapshots

    # ------------------------------------------------------------------ middleware
    def _refuse_early(self, request: web.Request) -> None:
        """Checks done before routing work: rate, query size, body on GET/HEAD."""
        wait = self.limiter.check(client_key(request.remote), time.monotonic())
        if wait > 0:
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

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        path = request.path
        public = not path.startswith(PEER_PREFIX)
        try:
            if public:
                self._refuse_early(request)
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = self._problem(request, exc, _route_label(request))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            response = self._problem(request, exc, _route_label(request))
        headers = response.headers
        if public and path.startswith("/v1/") and "Access-Control-Allow-Origin" not in headers:
            headers.extend(CORS_HEADERS)
        self.metrics.observe(
            route=_route_label(request),
            method=request.method if request.method in _METHODS else "other",
            status=response.status,
            answer_path=headers.get("X-Whnode-Path", ""),
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
            return dict(self.context.node_info())
        except AttributeError:
            raise NodeNotReady("the node has not started") from None

    async def node_history(self, request: web.Request) -> web.StreamResponse:
        single_values(request.query, ())
        return json_response({"samples": [dict(s) for s in self.context.history_samples()]})

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        single_values(request.query, ())
        if not self.context.healthy():
            raise NodeNotReady("the node is not connected to the network")
        return json_response({"status": "ok"}, cache="no-store")

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

    async def close(self, app: web.Application) -> None:
        del app
        await self.renders.aclose()


PUBLIC_API_KEY: Final = web.AppKey("whnode_public_api", PublicApi)
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def add_public_routes(app: web.Application, context: ApiContext) -> None:
    """Register the public API, its middleware and the status page on ``app``.

    The context is only read while answering requests (and ``context.config`` now), so a
    node may call this before its service exists.
    """
    api = PublicApi(context)
    app[PUBLIC_API_KEY] = api
    app.middlewares.append(api.middleware)
    app.on_cleanup.append(api.close)
    router = app.router
    router.add_get("/v1/menus/{dispensary}", api.menus.menu)
    router.add_get("/v1/menus/{dispensary}/history", api.menus.history)
    router.add_get("/v1/menus/{dispensary}/stats", api.menus.stats)
    router.add_get("/v1/dispensaries", api.dispensaries)
    router.add_get("/v1/node", api.node)
    router.add_get("/v1/node/history", api.node_history)
    router.add_get("/healthz", api.healthz)
    router.add_get("/readyz", api.readyz)
    router.add_get("/metrics", api.metrics_text)
    router.add_get("/openapi.json", api.openapi)
    if context.config.api.status_page:
        add_status_page(app, context, node_info=api.node_info_document)


def public_api(app: web.Application) -> PublicApi:
    """The PublicApi registered on ``app`` by add_public_routes (metrics, caches)."""
    return app[PUBLIC_API_KEY]
