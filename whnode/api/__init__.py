"""The public HTTP API of a node: versioned routes, OpenAPI document, problem documents,
metrics, per-client rate limits and the volunteer status page.

``add_public_routes(app, context)`` registers everything on a node's aiohttp application;
``ApiContext`` is what it needs from the node. docs/api.md is generated from
``whnode.api.openapi``.
"""

from __future__ import annotations

from whnode.api.app import add_public_routes
from whnode.api.context import ApiContext

__all__ = ["ApiContext", "add_public_routes"]
