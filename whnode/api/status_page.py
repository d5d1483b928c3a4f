"""The volunteer status page at ``/``: one HTML page, its script and its style sheet.

The page embeds the node's description and the last hour of samples as a JSON data block, so
that it renders at once; the script (``static/status.js``) draws the numbers and inline SVG
charts and refreshes them from ``/v1/node`` and ``/v1/node/history`` every 10 s. No external
asset is loaded: the Content-Security-Policy allows only this origin.
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, Final

from aiohttp import web

from whnode.api.context import ApiContext
from whnode.api.params import single_values

__all__ = ["CONTENT_SECURITY_POLICY", "initial_data_block", "status_page_routes"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _asset(name: str) -> bytes:
    return resources.files("whnode.api").joinpath("static", name).read_bytes()


# Read once, when the module is imported (the files are a few KB), never on the event loop.
_PAGE: Final = _asset("status.html").decode()
_ASSETS: Final = {
    "status.js": (_asset("status.js"), "text/javascript; charset=utf-8"),
    "status.css": (_asset("status.css"), "text/css; charset=utf-8"),
}


def initial_data_block(data: object) -> str:
    """JSON safe to place inside a ``<script type="application/json">`` element."""
    text = json.dumps(data, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _security_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


class StatusPage:
    """Handlers of ``/`` and ``/static/{name}``."""

    def __init__(self, context: ApiContext, node_info: Callable[[], Mapping[str, Any]]) -> None:
        self._context = context
        self._node_info = node_info
        self._etags = {
            name: f'"{hashlib.sha256(body).hexdigest()[:20]}"'
            for name, (body, _) in _ASSETS.items()
        }

    async def index(self, request: web.Request) -> web.StreamResponse:
        single_values(request.query, ())
        node = dict(self._node_info())
        data = {
            "node": node,
            "samples": [dict(sample) for sample in self._context.history_samples()],
            "generated_at": time.time(),
        }
        node_id = str(node.get("node_id", ""))
        page = (
            _PAGE.replace("__NODE_SHORT__", html.escape(node_id[:12]))
            .replace("__NODE_ID__", html.escape(node_id))
            .replace("__INITIAL_DATA__", initial_data_block(data))
        )
        return web.Response(
            body=page.encode(),
            headers={
                "Content-Type": "text/html; charset=utf-8",
                "Cache-Control": "no-store",
                **_security_headers(),
            },
        )

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        found = _ASSETS.get(name)
        if found is None:
            raise web.HTTPNotFound(reason="no such asset")
        body, content_type = found
        etag = self._etags[name]
        headers = {"ETag": etag, "Cache-Control": "max-age=300", **_security_headers()}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = content_type
        return web.Response(body=body, headers=headers)


def status_page_routes(
    context: ApiContext, *, node_info: Callable[[], Mapping[str, Any]]
) -> list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
    """The GET routes of the status page: ``/`` and its script and style under ``/static/``
    (``add_public_routes`` registers them with the API's guard)."""
    page = StatusPage(context, node_info)
    return [("/", page.index), ("/static/{name}", page.asset)]
