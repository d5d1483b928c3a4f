"""The simulated vendor APIs: one module per vendor, each with its routes, its renderings of
generated items and its hand-written quirky menu."""

from __future__ import annotations

from aiohttp import web

from whnode.sandbox.vendors import dutchie, flowhub, jane, leafly, treez, weedmaps

__all__ = ["routes"]


def routes() -> list[web.RouteDef]:
    """Every vendor API route."""
    return [
        *dutchie.routes(),
        *jane.routes(),
        *weedmaps.routes(),
        *leafly.routes(),
        *treez.routes(),
        *flowhub.routes(),
    ]
