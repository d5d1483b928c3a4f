"""What ``whnode.Client`` asks beyond whole menus: product queries, changes, change streams
and search, each checked against the signed records the node names.

A node's query answer is a claim about a record; the client checks the claim:

- ``products``: fetches the named snapshot (``Accept: application/cose``, verified as
  ``get_menu`` verifies), runs the same query on it (``whnode.record.query.select``) and
  compares every page with its own answer: a node that adds, drops, reorders or alters a
  product is caught (``NodeBadAnswer``);
- ``changes``: fetches and verifies both snapshots and computes the diff itself
  (``whnode.record.diff``); the node's summary must agree;
- ``events``: each event names a snapshot, which is fetched and verified before it is
  yielded; the stream is resumed with ``Last-Event-ID`` when it ends or drops;
- ``search``: each result's product must be, option for option, a product of the verified
  snapshot its dispensary's record names.

``verify=False`` skips the record fetches (the node is trusted; one request per page).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from whnode.api.changes import summary_of
from whnode.api.products import product_query_of
from whnode.record.diff import MenuDiff, diff_menus
from whnode.record.documents import product_document
from whnode.record.model import Menu, parse_dispensary_id
from whnode.record.query import select

if TYPE_CHECKING:
    from whnode.client import Client, VerifiedMenu

__all__ = [
    "ChangeAnswer",
    "ProductAnswer",
    "SearchAnswer",
    "changes",
    "events",
    "filter_params",
    "products",
    "results_belong",
    "search",
]

MAX_PAGES: Final = 100
"""Most pages one call reads."""
RECONNECT_SECONDS: Final = 2.0


@dataclass(frozen=True, slots=True)
class ProductAnswer:
    """Every product of one snapshot that matches a query."""

    dispensary_id: str
    products: list[dict[str, Any]]
    """Product documents (as the API has them), ``price_options`` narrowed to the matches."""
    menu: VerifiedMenu | None
    """The verified snapshot they come from (None with ``verify=False``)."""


@dataclass(frozen=True, slots=True)
class ChangeAnswer:
    old: VerifiedMenu
    new: VerifiedMenu
    diff: MenuDiff
    summary: dict[str, int]


@dataclass(frozen=True, slots=True)
class SearchAnswer:
    results: list[tuple[str, dict[str, Any]]]
    """(dispensary id, product document) in the node's order."""
    total: int
    partial: bool
    statuses: list[dict[str, Any]]
    verified: bool
    total_exact: bool = True
    """False: more than ``total`` products match (the node counts up to a cap)."""


def filter_params(filters: dict[str, Any]) -> dict[str, str]:
    """Keyword filters as query parameters (booleans as true/false; None left out)."""
    params: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, list | tuple | set | frozenset):
            params[name] = ",".join(str(item) for item in value)
        else:
            params[name] = str(value)
    product_query_of(params)  # refuse what the node would refuse, before asking it
    return params


async def _json(
    client: Client, node: str, path: str, params: dict[str, str], dispensary_id: str
) -> Any:
    from whnode.client import NodeBadAnswer

    data, _ = await client._get(node, path, params, "application/json", dispensary_id)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise NodeBadAnswer("answer is not JSON", node=node) from exc


def _match_document(product: Any, options: Any) -> dict[str, Any]:
    document = product_document(product)
    full = document["price_options"]
    document["price_options"] = [full[product.price_options.index(o)] for o in options]
    return document


async def products(
    client: Client,
    dispensary_id: str,
    *,
    max_age: float | None = None,
    verify: bool = True,
    page_size: int = 200,
    **filters: Any,
) -> ProductAnswer:
    """Every product of ``dispensary_id``'s menu that matches ``filters`` (the query
    parameters of ``GET /v1/menus/{id}/products``: ``category=``, ``q=``,
    ``max_price_per_gram=``, ``sort=``, ...), checked against the verified snapshot."""
    from whnode.client import NodeBadAnswer

    dispensary_id = parse_dispensary_id(dispensary_id)
    params = filter_params(filters)
    query = product_query_of(params)
    base = {**params, "limit": str(page_size)}
    if max_age is not None:
        base["max_age"] = str(max_age)

    async def attempt(node: str) -> ProductAnswer:
        products: list[dict[str, Any]] = []
        cursor: str | None = None
        record_info: dict[str, Any] | None = None
        for _ in range(MAX_PAGES):
            page_params = {**base, **({"cursor": cursor} if cursor else {})}
            page = await _json(
                client, node, f"/v1/menus/{dispensary_id}/products", page_params, dispensary_id
            )
            if record_info is not None and page["record"] != record_info:
                raise NodeBadAnswer("pages of one query name two snapshots", node=node)
            record_info = page["record"]
            products.extend(page["products"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert record_info is not None
        if not verify:
            return ProductAnswer(dispensary_id, products, None)
        menu = await client.get_menu(dispensary_id, at=int(record_info["fetched_at_ms"]))
        if bytes(menu.record.content_hash).hex() != record_info["content_hash"]:
            raise NodeBadAnswer("the snapshot named is not the one served", node=node)
        expected = [
            _match_document(match.product, match.options) for match in select(menu.menu, query)
        ]
        if products != expected:
            raise NodeBadAnswer("the products answered are not the query's", node=node)
        return ProductAnswer(dispensary_id, products, menu)

    return await client._failover(attempt)


async def changes(
    client: Client, dispensary_id: str, since: int | str, *, max_age: float | None = None
) -> ChangeAnswer:
    """What changed in ``dispensary_id``'s menu since ``since`` (epoch ms, an ISO-8601
    time or an ETag), computed here from the two verified snapshots the node names."""
    from whnode.client import NodeBadAnswer

    dispensary_id = parse_dispensary_id(dispensary_id)
    params = {"since": str(since)}
    if max_age is not None:
        params["max_age"] = str(max_age)

    async def attempt(node: str) -> ChangeAnswer:
        answer = await _json(
            client, node, f"/v1/menus/{dispensary_id}/changes", params, dispensary_id
        )
        old = await client.get_menu(dispensary_id, at=int(answer["from"]["fetched_at_ms"]))
        new = await client.get_menu(dispensary_id, at=int(answer["to"]["fetched_at_ms"]))
        for verified, named in ((old, answer["from"]), (new, answer["to"])):
            if bytes(verified.record.content_hash).hex() != named["content_hash"]:
                raise NodeBadAnswer("a snapshot named is not the one served", node=node)
        diff = diff_menus(old.menu, new.menu)
        summary = summary_of(diff)
        if summary != answer["summary"]:
            raise NodeBadAnswer("the summary answered is not the diff's", node=node)
        return ChangeAnswer(old, new, diff, summary)

    return await client._failover(attempt)


async def events(client: Client, dispensary_id: str) -> AsyncGenerator[VerifiedMenu, None]:
    """Each new snapshot of ``dispensary_id``, verified, as the node learns it; the stream
    is resumed (``Last-Event-ID``) when it ends, on this node or the next."""
    dispensary_id = parse_dispensary_id(dispensary_id)
    last_id: str | None = None
    while True:
        node = client._nodes[client._preferred]
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            async with client._http().get(
                f"{node}/v1/menus/{dispensary_id}/events",
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            ) as response:
                if response.status != 200:
                    body = await response.read()
                    raise client._problem(node, response, body, dispensary_id)
                async for event_id, data in _events(response):
                    snapshot = data["snapshot"]
                    menu = await client.get_menu(dispensary_id, at=int(snapshot["fetched_at_ms"]))
                    last_id = event_id
                    yield menu
        except (aiohttp.ClientError, TimeoutError):
            client._preferred = (client._preferred + 1) % len(client._nodes)
        await asyncio.sleep(RECONNECT_SECONDS)


async def search(
    client: Client,
    *,
    dispensaries: list[str] | None = None,
    max_age: float | None = None,
    verify: bool = True,
    limit: int = 100,
    **filters: Any,
) -> SearchAnswer:
    """The first ``limit`` products across dispensaries that match ``filters``; with
    ``verify``, each checked against the verified snapshot of its dispensary."""
    from whnode.client import NodeBadAnswer

    params = filter_params(filters)
    params["limit"] = str(limit)
    if dispensaries is not None:
        params["dispensaries"] = ",".join(parse_dispensary_id(d) for d in dispensaries)
    if max_age is not None:
        params["max_age"] = str(max_age)

    async def attempt(node: str) -> SearchAnswer:
        answer = await _json(client, node, "/v1/search", params, "")
        results = [(r["dispensary_id"], r["product"]) for r in answer["results"]]
        if verify:
            for dispensary_id, named in answer["records"].items():
                menu = await client.get_menu(dispensary_id, at=int(named["fetched_at_ms"]))
                if bytes(menu.record.content_hash).hex() != named["content_hash"]:
                    raise NodeBadAnswer("a snapshot named is not the one served", node=node)
                if not results_belong(results, dispensary_id, menu.menu):
                    raise NodeBadAnswer(f"a result is not a product of {dispensary_id}", node=node)
        return SearchAnswer(
            results=results,
            total=int(answer["total"]),
            partial=bool(answer["partial"]),
            statuses=list(answer.get("dispensaries", [])),
            verified=verify,
            total_exact=bool(answer.get("total_exact", True)),
        )

    return await client._failover(attempt)


def results_belong(
    results: list[tuple[str, dict[str, Any]]], dispensary_id: str, menu: Menu
) -> bool:
    """Every result of ``dispensary_id`` is, option for option, a product of ``menu``."""
    held = [product_document(product) for product in menu.products]
    return all(
        any(_is_narrowed(document, full) for full in held)
        for result_dispensary, document in results
        if result_dispensary == dispensary_id
    )


def _is_narrowed(document: dict[str, Any], full: dict[str, Any]) -> bool:
    """``document`` is ``full`` with some of its price options (in order)."""
    if {k: v for k, v in document.items() if k != "price_options"} != {
        k: v for k, v in full.items() if k != "price_options"
    }:
        return False
    options = iter(full["price_options"])
    return all(
        any(option == candidate for candidate in options) for option in document["price_options"]
    )


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(id, data) of each ``snapshot`` event of a Server-Sent Events body."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line:
            if not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            continue
        if fields.get("event") == "snapshot" and "data" in fields:
            yield fields.get("id", ""), json.loads(fields["data"])
        if fields.get("event") == "dropped":
            return
        fields = {}
