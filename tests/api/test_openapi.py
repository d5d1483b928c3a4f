"""The OpenAPI document matches the routes, is served, and docs/api.md is generated from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from tests.api.support import ApiServer, ContextDouble
from whnode.api.app import UNMATCHED, add_public_routes
from whnode.api.openapi import openapi_document, render_markdown
from whnode.api.problems import PROBLEM_TYPES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
EXCLUDED_PREFIXES = ("/peer/", "/static/")


def _routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        path = resource.canonical
        if resource.name == UNMATCHED:
            continue  # the catch-all that answers 404/405 problem documents
        if path.startswith(EXCLUDED_PREFIXES) or route.method == "HEAD":
            continue
        routes.add((route.method.lower(), path))
    return routes


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in document["paths"].items() for method in item}


def test_every_route_is_documented_and_every_documented_path_exists() -> None:
    app = web.Application()
    add_public_routes(app, ContextDouble())
    assert _routes(app) == _documented(openapi_document())
    heads = {r.resource.canonical for r in app.router.routes() if r.method == "HEAD" and r.resource}
    gets = {path for method, path in _routes(app) if method == "get"}
    assert gets <= heads  # "every GET path also answers HEAD", as the document says


def test_references_resolve_and_operations_are_complete() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    problem_statuses = {problem.status for problem in PROBLEM_TYPES}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                assert ref.startswith("#/components/schemas/")
                assert ref.rsplit("/", 1)[1] in schemas, ref
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    ids = []
    for path, item in document["paths"].items():
        for operation in item.values():
            ids.append(operation["operationId"])
            assert "200" in operation["responses"], path
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert int(status) in problem_statuses, (path, status)
                    assert "application/problem+json" in response["content"]
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path
    assert len(ids) == len(set(ids))
    assert document["openapi"] == "3.1.0"


async def test_the_document_is_served() -> None:
    async with ApiServer(ContextDouble()) as server, server.http.get("/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == openapi_document()


def test_docs_api_md_is_generated_from_the_document() -> None:
    expected = render_markdown(openapi_document())
    assert DOCS.read_text(encoding="utf-8") == expected, (
        "docs/api.md is out of date: python -m whnode.api.openapi > docs/api.md"
    )
    assert "`GET /v1/menus/{dispensary}`" in expected
    assert "urn:whnode:problem:upstream-rate-limited" in expected
    assert "whnode_http_requests_total" in expected


def test_routes_can_be_added_with_nothing_but_a_config() -> None:
    """A node adds the routes before it has started: only ``config`` may be read then."""

    class Unstarted:
        config = ContextDouble().config

    app = web.Application()
    add_public_routes(app, Unstarted())  # type: ignore[arg-type]
    assert _routes(app) == _documented(openapi_document())
