"""The public HTTP API of a node: versioned routes, OpenAPI document, problem documents,
metrics, per-client rate limits and the volunteer status page.

``whnode.api.app.add_public_routes(app, context)`` registers everything on a node's aiohttp
application; ``whnode.api.context.ApiContext`` is what it needs from the node. docs/api.md is
generated from ``whnode.api.openapi`` (``python -m whnode.api.openapi > docs/api.md``).

This package imports nothing itself, so that ``whnode.api.render`` or ``whnode.api.problems``
can be used without building the application.
"""
