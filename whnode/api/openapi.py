"""The OpenAPI 3.1 document of the public HTTP API, as data, and docs/api.md generated from it.

``openapi_document()`` is served at ``/openapi.json``; ``render_markdown()`` produces
docs/api.md (a test checks the file equals it: regenerate with
``python -m whnode.api.openapi > docs/api.md``). Problem types and metrics come from
``whnode.api.problems`` and ``whnode.api.metrics``, so every table exists once, in code.
"""

from __future__ import annotations

from typing import Any, Final

from whnode import __version__, limits
from whnode.api.metrics import describe_metrics
from whnode.api.params import MAX_AGE_LIMIT_SECONDS
from whnode.api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPES, describe_problems
from whnode.record.model import (
    DISPENSARY_ID_PATTERN,
    Category,
    DropReason,
    Lineage,
    PotencyUnit,
    QuantityUnit,
)

__all__ = ["openapi_document", "render_markdown"]

JSON_TYPE: Final = "application/json"
CBOR_TYPE: Final = "application/cbor"
COSE_TYPE: Final = "application/cose"

_Doc = dict[str, Any]


def _ref(name: str) -> _Doc:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: _Doc) -> _Doc:
    return {"oneOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, _Doc], *, required: list[str] | None = None, **extra: Any) -> _Doc:
    schema: _Doc = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    schema.update(extra)
    return schema


def _str(description: str, **extra: Any) -> _Doc:
    return {"type": "string", "description": description, **extra}


def _int(description: str, **extra: Any) -> _Doc:
    return {"type": "integer", "description": description, **extra}


def _num(description: str, **extra: Any) -> _Doc:
    return {"type": "number", "description": description, **extra}


def _open_object(description: str) -> _Doc:
    return {"type": "object", "additionalProperties": True, "description": description}


def _schemas() -> dict[str, _Doc]:
    hex64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
    return {
        "Problem": _obj(
            {
                "type": _str("Problem type URI (see the problem types table).", format="uri"),
                "title": _str("Short summary of the problem type."),
                "status": _int("The HTTP status code."),
                "detail": _str("What went wrong with this request."),
                "instance": _str("The request path."),
                "dispensary_id": _str("The dispensary concerned, when there is one."),
                "parameter": _str("The offending query parameter (invalid-parameter)."),
                "retry_after": _int("Seconds to wait before retrying (also Retry-After)."),
                "available": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Media types offered (not-acceptable).",
                },
                "allowed": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Methods allowed on the path (method-not-allowed).",
                },
            },
            required=["type", "title", "status", "detail"],
            description="An RFC 9457 problem document.",
        ),
        "Quantity": _obj(
            {
                "amount": _num("Normalized amount.", exclusiveMinimum=0),
                "unit": {"enum": [u.value for u in QuantityUnit], "description": "Unit."},
            }
        ),
        "Potency": _obj(
            {
                "low": _num("Lower bound (equal to high for a single value).", minimum=0),
                "high": _num("Upper bound.", minimum=0),
                "unit": {"enum": [u.value for u in PotencyUnit], "description": "Unit."},
            }
        ),
        "PriceOption": _obj(
            {
                "quantity": _ref("Quantity"),
                "price_cents": _int("Price in cents.", minimum=1),
                "special_price_cents": _nullable(_int("Discounted price in cents.", minimum=0)),
                "stock": _nullable(_int("Units in stock, when the source says.", minimum=0)),
            }
        ),
        "Product": _obj(
            {
                "source_id": _str("The product's id at the source."),
                "name": _str("Product name."),
                "brand": _nullable(_str("Brand.")),
                "category": {"enum": [c.value for c in Category], "description": "Category."},
                "lineage": {"enum": [v.value for v in Lineage], "description": "Lineage."},
                "thc": _nullable(_ref("Potency")),
                "cbd": _nullable(_ref("Potency")),
                "price_options": {"type": "array", "items": _ref("PriceOption")},
                "image_url": _nullable(_str("Image URL (http or https).")),
                "description": _nullable(_str("Description text.")),
            }
        ),
        "CategoryStatistics": _obj(
            {
                "category": {"enum": [c.value for c in Category], "description": "Category."},
                "product_count": _int("Products in the category.", minimum=0),
                "price_per_gram_min": _nullable(_num("Lowest price per gram, cents.")),
                "price_per_gram_median": _nullable(_num("Median price per gram, cents.")),
                "price_per_gram_max": _nullable(_num("Highest price per gram, cents.")),
            }
        ),
        "DropCount": _obj(
            {
                "reason": {
                    "enum": [r.value for r in DropReason],
                    "description": "Why: no_id, no_name, no_size, no_price, sentinel (the vendor "
                    "says not offered), duplicate, other_store, inactive, invalid, not_an_item.",
                },
                "count": _int("Items or options dropped for this reason.", minimum=1),
                "examples": {
                    "type": "array",
                    "items": {"type": "string"},
                    "maxItems": 3,
                    "description": "A few source ids (with the option's label for options).",
                },
            }
        ),
        "ParseReport": _obj(
            {
                "items_seen": _int("Items in the upstream pages.", minimum=0),
                "products_kept": _int("Products in the menu.", minimum=0),
                "options_kept": _int("Price options in the menu.", minimum=0),
                "items_lost": _int(
                    "Items dropped for a reason that loses data (all but duplicate, "
                    "other_store, inactive, sentinel).",
                    minimum=0,
                ),
                "options_lost": _int("Options dropped for a reason that loses data.", minimum=0),
                "items_dropped": {"type": "array", "items": _ref("DropCount")},
                "options_dropped": {"type": "array", "items": _ref("DropCount")},
            },
            description="What the parse of the upstream pages kept and left out.",
        ),
        "Statistics": _obj(
            {
                "categories": {"type": "array", "items": _ref("CategoryStatistics")},
                "thc_percent_histogram": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "minItems": 20,
                    "maxItems": 20,
                    "description": "Products by THC % in buckets of 5 points "
                    "([0,5), [5,10) ... [95,100]).",
                },
                "parse_report": _nullable(_ref("ParseReport")),
            },
            description="Statistics computed when the menu was parsed.",
        ),
        "RecordInfo": _obj(
            {
                "publisher": {**hex64, "description": "Ed25519 public key of the signer, hex."},
                "content_hash": {**hex64, "description": "SHA-256 of the menu content, hex."},
                "fetched_at_ms": _int("Upstream fetch time, epoch ms."),
                "size_bytes": _int("Size of the signed record (COSE_Sign1) in bytes."),
            },
            description="The signed record the representation was rendered from.",
        ),
        "Menu": _obj(
            {
                "dispensary_id": _str("The dispensary id.", pattern=DISPENSARY_ID_PATTERN.pattern),
                "name": _str("Dispensary name."),
                "vendor": _str("Upstream vendor."),
                "fetched_at_ms": _int("Upstream fetch time, epoch ms."),
                "fetched_at": _str("Upstream fetch time, RFC 3339 UTC.", format="date-time"),
                "product_count": _int("Number of products.", minimum=0),
                "products": {"type": "array", "items": _ref("Product")},
                "statistics": _nullable(_ref("Statistics")),
                "record": _ref("RecordInfo"),
            },
            description="A dispensary's menu at one fetch time.",
        ),
        "MenuStatistics": _obj(
            {
                "dispensary_id": _str("The dispensary id."),
                "fetched_at_ms": _int("Upstream fetch time, epoch ms."),
                "fetched_at": _str("Upstream fetch time, RFC 3339 UTC.", format="date-time"),
                "product_count": _int("Number of products.", minimum=0),
                "statistics": _nullable(_ref("Statistics")),
                "record": _ref("RecordInfo"),
            },
            description="The statistics of one menu snapshot.",
        ),
        "ProductPage": _obj(
            {
                "dispensary_id": _str("The dispensary id."),
                "fetched_at_ms": _int("Upstream fetch time of the snapshot queried, epoch ms."),
                "fetched_at": _str("Upstream fetch time, RFC 3339 UTC.", format="date-time"),
                "record": _ref("RecordInfo"),
                "total": _int("Products that match, over all pages.", minimum=0),
                "count": _int("Products on this page.", minimum=0),
                "products": {
                    "type": "array",
                    "items": _ref("Product"),
                    "description": "Matching products; `price_options` lists only the "
                    "options that passed the option filters.",
                },
                "next_cursor": _nullable(_str("Pass as `cursor` for the next page.")),
            },
            description="One page of the products of a snapshot that match a query.",
        ),
        "SizePrice": _obj(
            {
                "quantity": _ref("Quantity"),
                "old_price_cents": _nullable(_int("List price before; null: size not offered.")),
                "new_price_cents": _nullable(_int("List price now; null: size withdrawn.")),
            }
        ),
        "SizeSpecial": _obj(
            {
                "quantity": _ref("Quantity"),
                "old_special_price_cents": _nullable(_int("Special before; null: none.")),
                "new_special_price_cents": _nullable(_int("Special now; null: none (ended).")),
            }
        ),
        "ProductChange": _obj(
            {
                "source_id": _str("The product's upstream id."),
                "name": _str("Its name now."),
                "prices": {"type": "array", "items": _ref("SizePrice")},
                "specials": {"type": "array", "items": _ref("SizeSpecial")},
                "thc": _nullable(
                    _obj({"old": _nullable(_ref("Potency")), "new": _nullable(_ref("Potency"))})
                ),
                "fields": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Other fields that changed (name, brand, stock, ...).",
                },
                "product": _ref("Product"),
            },
            required=["source_id", "name", "prices", "specials", "thc", "fields"],
        ),
        "MenuChanges": _obj(
            {
                "dispensary_id": _str("The dispensary id."),
                "from": _ref("Snapshot"),
                "to": _ref("Snapshot"),
                "summary": _obj(
                    {
                        name: _int(f"Products: {name.replace('_', ' ')}.", minimum=0)
                        for name in (
                            "added",
                            "removed",
                            "changed",
                            "price_changed",
                            "specials_started",
                            "specials_ended",
                            "thc_changed",
                        )
                    }
                ),
                "added": {
                    "type": "array",
                    "items": {"allOf": [_ref("Product"), _obj({"index": _int("Position now.")})]},
                },
                "removed": {
                    "type": "array",
                    "items": _obj({"source_id": _str("Upstream id."), "name": _str("Name.")}),
                },
                "changed": {"type": "array", "items": _ref("ProductChange")},
                "reordered": {
                    "type": "boolean",
                    "description": "Products both snapshots hold changed their order.",
                },
            },
            description="What changed between two snapshots of one menu.",
        ),
        "SearchResults": _obj(
            {
                "total": _int(
                    "Products that match, over all pages, counted up to 1,000.", minimum=0
                ),
                "total_exact": {
                    "type": "boolean",
                    "description": "False: more than `total` products match (an app shows "
                    "1,000+); `next_cursor` still tells whether a next page exists.",
                },
                "count": _int("Products on this page.", minimum=0),
                "results": {
                    "type": "array",
                    "items": _obj(
                        {"dispensary_id": _str("The dispensary."), "product": _ref("Product")}
                    ),
                },
                "records": {
                    "type": "object",
                    "additionalProperties": _ref("RecordInfo"),
                    "description": "Per dispensary on this page: the record its hits come from.",
                },
                "next_cursor": _nullable(_str("Pass as `cursor` for the next page.")),
                "partial": {
                    "type": "boolean",
                    "description": "Some listed dispensaries could not be searched.",
                },
                "dispensaries": {
                    "type": "array",
                    "items": _obj(
                        {
                            "dispensary_id": _str("A listed dispensary."),
                            "status": _str("`ok`, `timeout` or the problem type it met."),
                            "detail": _str("What went wrong."),
                        },
                        required=["dispensary_id", "status"],
                    ),
                },
            },
            required=[
                "total",
                "total_exact",
                "count",
                "results",
                "records",
                "next_cursor",
                "partial",
            ],
            description="Products across dispensaries that match a query.",
        ),
        "Snapshot": _obj(
            {
                "dispensary_id": _str("The dispensary id."),
                "fetched_at": _str("Upstream fetch time, RFC 3339 UTC.", format="date-time"),
                "publisher": {**hex64, "description": "Signer's public key, hex."},
                "content_hash": {**hex64, "description": "SHA-256 of the menu content, hex."},
                "fetched_at_ms": _int("Upstream fetch time, epoch ms."),
                "size_bytes": _int("Size of the signed record in bytes."),
            }
        ),
        "History": _obj(
            {
                "dispensary_id": _str("The dispensary id."),
                "snapshots": {"type": "array", "items": _ref("Snapshot")},
            },
            description="Snapshots held, newest first.",
        ),
        "Dispensaries": _obj(
            {"dispensaries": {"type": "array", "items": {"type": "string"}}},
            description="Dispensary ids this node lists as known sources.",
        ),
        "NodeInfo": _obj(
            {
                "node_id": _str("Node id (SHA-1 of the public key), hex."),
                "public_key": _str("Ed25519 public key, hex."),
                "address": _str("host:port (UDP and TCP)."),
                "uptime_seconds": _num("Seconds since the node started."),
                "routing_only": {"type": "boolean", "description": "Seed mode."},
                "peers": {"type": "array", "items": _ref("Peer")},
                "hot_cache": _open_object("Hot cache statistics (hits, misses, bytes, ...)."),
                "store": _open_object("Store statistics (bytes, records, dispensaries, ...)."),
                "service": _open_object(
                    "Service statistics: requests, answers_by_path, upstream_calls, "
                    "upstream_calls_saved, fills_coalesced, recent_fills, ..."
                ),
            },
            required=["node_id"],
            additionalProperties=True,
            description="What the node is and does (fields may be added).",
        ),
        "Peer": _obj(
            {
                "node_id": _str("The peer's node id, hex."),
                "host": _str("Its address."),
                "port": _int("Its UDP and TCP port."),
            },
            description="A contact in the node's routing table.",
        ),
        "NodeHistory": _obj(
            {
                "samples": {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": True},
                    "description": "Samples (every 10 s, the last hour), oldest first: time "
                    "(epoch seconds), requests, upstream_calls, upstream_calls_saved, "
                    "hot_hits, hot_misses, peers, answers_by_path.",
                }
            }
        ),
        "Status": _obj({"status": {"enum": ["ok", "ready"]}}),
    }


_PROBLEM_STATUSES_BY_OPERATION: Final = {
    "menu": (400, 404, 406, 414, 429, 502, 503, 504),
    "history": (400, 404, 406, 414, 429, 502, 503, 504),
    "plain": (400, 414, 429),
    "probe": (400, 414, 429, 503),
}

_PATH_PARAMETER: Final = {
    "name": "dispensary",
    "in": "path",
    "required": True,
    "description": "Dispensary id, `vendor:store` (e.g. `weedmaps:ultra-health-gallup`).",
    "schema": {
        "type": "string",
        "pattern": DISPENSARY_ID_PATTERN.pattern,
        "maxLength": limits.MAX_DISPENSARY_ID_CHARS,
    },
}
_MAX_AGE: Final = {
    "name": "max_age",
    "in": "query",
    "required": False,
    "description": "Accept a snapshot at most this many seconds old (a hard bound: no stale "
    "answer). Without it the owner's heuristic freshness applies. Excludes `at`.",
    "schema": {"type": "number", "minimum": 0, "maximum": MAX_AGE_LIMIT_SECONDS},
}
_AT: Final = {
    "name": "at",
    "in": "query",
    "required": False,
    "description": "Answer with the snapshot current at this time: epoch milliseconds or an "
    "ISO-8601 date-time with a UTC offset or `Z`. Excludes `max_age`.",
    "schema": {
        "oneOf": [
            {"type": "string", "pattern": "^[0-9]{1,16}$", "title": "epoch ms"},
            {"type": "string", "format": "date-time", "title": "ISO-8601"},
        ]
    },
}
_LIMIT: Final = {
    "name": "limit",
    "in": "query",
    "required": False,
    "description": "Most snapshots listed.",
    "schema": {"type": "integer", "minimum": 1, "maximum": limits.MAX_HISTORY_ITEMS, "default": 20},
}
_ACCEPT_ENCODING: Final = {
    "name": "Accept-Encoding",
    "in": "header",
    "required": False,
    "description": "Content codings the client decodes. JSON and CBOR menus are sent in the "
    "best one offered (`br`, then `zstd`, then `gzip`; highest `q` first), compressed once per "
    "record; the signed record (COSE) is never compressed again.",
    "schema": {"type": "string"},
}


def _query(name: str, description: str, schema: _Doc) -> _Doc:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_TEXT: Final = {"type": "string"}
_PRODUCT_PARAMETERS: Final = [
    _query("category", "Categories, comma-separated (any of them).", _TEXT),
    _query("lineage", "Lineages, comma-separated (any of them).", _TEXT),
    _query("brand", "Brands, comma-separated; case- and accent-insensitive.", _TEXT),
    _query(
        "q",
        "Words that must all occur in the name or brand; case- and accent-insensitive.",
        {"type": "string", "maxLength": 200},
    ),
    _query(
        "min_thc",
        "Least THC in percent (middle of its range); products whose THC is not "
        "in percent do not match.",
        {"type": "number", "minimum": 0, "maximum": 100},
    ),
    _query("max_thc", "Most THC in percent.", {"type": "number", "minimum": 0, "maximum": 100}),
    _query(
        "max_price",
        "Most paid for an option, in dollars (a special price when there is one).",
        {"type": "number", "minimum": 0},
    ),
    _query(
        "max_price_per_gram",
        "Most paid per gram, in dollars; only options sized in grams have a price per gram.",
        {"type": "number", "minimum": 0},
    ),
    _query("on_special", "Only options on special (true) or not (false).", {"type": "boolean"}),
    _query("size", "Options of this size (`3.5g`, `1/8oz`, `100mg`, `2pk`; within 3%).", _TEXT),
    _query(
        "sort",
        "`price`, `price_per_gram`, `thc` or `name` (default); `-` before it for "
        "descending. Products without the key come last.",
        _TEXT,
    ),
    _query(
        "limit",
        "Products per page.",
        {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    ),
    _query("cursor", "`next_cursor` of the previous page (same filters and order).", _TEXT),
]
_IF_NONE_MATCH: Final = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETags held; a match answers 304 Not Modified.",
    "schema": {"type": "string"},
}


def _menu_headers() -> dict[str, _Doc]:
    def header(description: str) -> _Doc:
        return {"description": description, "schema": {"type": "string"}}

    return {
        "ETag": header(
            "Content hash, fetch time, representation and content coding (strong): "
            '`"<hash>-<ms>-json"`, `"<hash>-<ms>-json+br"`.'
        ),
        "Content-Encoding": header("`br`, `zstd` or `gzip` when compressed (Accept-Encoding)."),
        "Vary": header("`Accept, Accept-Encoding`."),
        "Last-Modified": header("The upstream fetch time."),
        "Cache-Control": header("`max-age` = seconds until the record stops being fresh."),
        "X-Whnode-Path": header("Where the answer came from: hot, store, owner, fill, stale."),
        "X-Whnode-Publisher": header("The signer's Ed25519 public key, hex."),
        "X-Whnode-Content-Hash": header("SHA-256 of the menu content, hex."),
        "X-Whnode-Fetched-At": header("Upstream fetch time, epoch ms."),
        "X-Whnode-Fresh-Until": header("Epoch ms until which the record is fresh."),
        "X-Whnode-Stale": header("`1` when a stale record was served, else `0`."),
    }


def _problems(statuses: tuple[int, ...]) -> dict[str, _Doc]:
    responses: dict[str, _Doc] = {}
    for status in statuses:
        slugs = [p.slug for p in PROBLEM_TYPES if p.status == status]
        responses[str(status)] = {
            "description": "Problem: " + ", ".join(slugs),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _ref("Problem")}},
        }
    return responses


def _operation(
    operation_id: str,
    summary: str,
    description: str,
    ok: _Doc,
    *,
    problems: str,
    parameters: list[_Doc] | None = None,
    extra: dict[str, _Doc] | None = None,
) -> _Doc:
    responses: dict[str, _Doc] = {"200": ok, **(extra or {})}
    responses.update(_problems(_PROBLEM_STATUSES_BY_OPERATION[problems]))
    operation: _Doc = {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "responses": dict(sorted(responses.items())),
    }
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _json(schema: _Doc, description: str) -> _Doc:
    return {"description": description, "content": {JSON_TYPE: {"schema": schema}}}


def _paths() -> dict[str, _Doc]:
    binary = {"type": "string", "contentMediaType": "application/octet-stream"}
    not_modified = {
        "304": {"description": "Not modified (If-None-Match matched).", "headers": _menu_headers()}
    }
    return {
        "/v1/menus/{dispensary}": _operation(
            "getMenu",
            "A dispensary's menu",
            "The newest snapshot fresh enough (or the one current at `at`), through this "
            "node's hot cache, its store, the dispensary's owners and, when nothing fresh "
            "exists, one upstream fetch for the whole network. JSON by default; "
            "`Accept: application/cbor` gives the canonical CBOR of the menu (the signed "
            "payload, decompressed; docs/record-format.md), `Accept: application/cose` the "
            "signed record (COSE_Sign1) to verify yourself.",
            {
                "description": "The menu.",
                "headers": _menu_headers(),
                "content": {
                    JSON_TYPE: {"schema": _ref("Menu")},
                    CBOR_TYPE: {"schema": binary},
                    COSE_TYPE: {"schema": binary},
                },
            },
            problems="menu",
            parameters=[_PATH_PARAMETER, _MAX_AGE, _AT, _ACCEPT_ENCODING, _IF_NONE_MATCH],
            extra=not_modified,
        ),
        "/v1/menus/{dispensary}/history": _operation(
            "getMenuHistory",
            "Snapshots of a dispensary's menu",
            "Snapshots held by this node (else by an owner), newest first. JSON lists them; "
            "`Accept: application/cbor` gives a CBOR array of the signed records "
            "(COSE_Sign1 byte strings), at most 64 MiB of them.",
            {
                "description": "The snapshots.",
                "content": {
                    JSON_TYPE: {"schema": _ref("History")},
                    CBOR_TYPE: {"schema": binary},
                },
            },
            problems="history",
            parameters=[_PATH_PARAMETER, _LIMIT],
        ),
        "/v1/menus/{dispensary}/stats": _operation(
            "getMenuStatistics",
            "A menu's statistics",
            "Product counts and price per gram by category and the THC histogram of the "
            "snapshot `GET /v1/menus/{dispensary}` would answer with.",
            {
                "description": "The statistics.",
                "headers": _menu_headers(),
                "content": {JSON_TYPE: {"schema": _ref("MenuStatistics")}},
            },
            problems="menu",
            parameters=[_PATH_PARAMETER, _MAX_AGE, _AT, _IF_NONE_MATCH],
            extra=not_modified,
        ),
        "/v1/menus/{dispensary}/products": _operation(
            "queryMenuProducts",
            "Products of a menu that match a query",
            "Filters, order and pages over the snapshot `GET /v1/menus/{dispensary}` would "
            "answer with (same freshness rules, `max_age` and `at`). Later pages are read from "
            "the snapshot the cursor names. Every filter at most once; anything else is a 400.",
            {
                "description": "One page of matching products.",
                "headers": _menu_headers(),
                "content": {JSON_TYPE: {"schema": _ref("ProductPage")}},
            },
            problems="menu",
            parameters=[_PATH_PARAMETER, *_PRODUCT_PARAMETERS, _MAX_AGE, _AT, _IF_NONE_MATCH],
            extra=not_modified,
        ),
        "/v1/menus/{dispensary}/changes": _operation(
            "getMenuChanges",
            "What changed since a time or an ETag",
            "Products added, removed and changed (prices per size, specials started and "
            "ended, THC, other fields) between the snapshot current at `since` and the one "
            "`GET /v1/menus/{dispensary}` would answer with. Both are named by record.",
            {
                "description": "The changes.",
                "headers": _menu_headers(),
                "content": {JSON_TYPE: {"schema": _ref("MenuChanges")}},
            },
            problems="menu",
            parameters=[
                _PATH_PARAMETER,
                {
                    "name": "since",
                    "in": "query",
                    "required": True,
                    "description": "Epoch ms, an ISO-8601 time, or an ETag of a menu answer.",
                    "schema": {"type": "string"},
                },
                _MAX_AGE,
                _query("full", "Add every changed product in full.", {"type": "boolean"}),
                _IF_NONE_MATCH,
            ],
            extra=not_modified,
        ),
        "/v1/menus/{dispensary}/events": _operation(
            "streamMenuEvents",
            "New snapshots as they come (Server-Sent Events)",
            "A `snapshot` event (id `<fetched_at_ms>-<hash>`, data: the snapshot's and the "
            "previous one's identity and the diff summary) for every snapshot this node "
            "learns; it starts with the current one, or with those after `Last-Event-ID`. A "
            "heartbeat comment every `api.stream_heartbeat` seconds; a reader that falls "
            "behind gets `event: dropped` and the stream ends (reconnect with "
            "`Last-Event-ID`). Limits: `api.max_streams` (503), `api.max_streams_per_ip` "
            "(429). While someone listens the node refreshes the menu ahead of expiry.",
            {
                "description": "The event stream.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            problems="menu",
            parameters=[
                _PATH_PARAMETER,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "description": "Id of the last event received: resume after it.",
                    "schema": {"type": "string"},
                },
            ],
        ),
        "/v1/search": _operation(
            "searchProducts",
            "Products across dispensaries",
            "The filters and order of `/v1/menus/{dispensary}/products` over the newest "
            "snapshot of every dispensary this node holds (fetched within `max_age`, default "
            "one day), from its search index, or over the listed `dispensaries` (each asked "
            "of the network first, 8 at a time, within 10 s; `partial` when any failed).",
            _json(_ref("SearchResults"), "One page of matching products."),
            problems="menu",
            parameters=[
                _query(
                    "dispensaries",
                    "At most 50 dispensary ids, comma-separated.",
                    {"type": "string"},
                ),
                *_PRODUCT_PARAMETERS,
                _query(
                    "max_age",
                    "Without `dispensaries`: only menus fetched within this many seconds "
                    "(default 86400); with them: as for a menu.",
                    {"type": "number", "minimum": 0},
                ),
            ],
        ),
        "/v1/dispensaries": _operation(
            "listDispensaries",
            "Known dispensaries",
            "Dispensary ids this node's operator lists as known sources "
            "(`upstream.dispensaries`). Any well-formed id may be asked for.",
            _json(_ref("Dispensaries"), "The list."),
            problems="plain",
        ),
        "/v1/node": _operation(
            "getNode",
            "This node",
            "Node id, address, peers, cache, store and service figures, upstream calls made "
            "and saved, uptime.",
            _json(_ref("NodeInfo"), "The node."),
            problems="probe",
        ),
        "/v1/node/history": _operation(
            "getNodeHistory",
            "This node's recent samples",
            "The samples the status page charts: one every 10 s over the last hour.",
            _json(_ref("NodeHistory"), "The samples."),
            problems="plain",
        ),
        "/healthz": _operation(
            "health",
            "Liveness",
            "200 while the node is connected to the network (DHT), else 503 node-not-ready.",
            _json(_ref("Status"), "Healthy."),
            problems="probe",
        ),
        "/readyz": _operation(
            "readiness",
            "Readiness",
            "200 while the node can answer menu requests, else 503 node-not-ready.",
            _json(_ref("Status"), "Ready."),
            problems="probe",
        ),
        "/metrics": _operation(
            "metrics",
            "Prometheus metrics",
            "Request metrics and every component's statistics, in the Prometheus text format.",
            {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}},
            problems="plain",
        ),
        "/openapi.json": _operation(
            "openapi",
            "This document",
            "The OpenAPI 3.1 document of the public API.",
            _json({"type": "object"}, "The document."),
            problems="plain",
        ),
        "/": _operation(
            "statusPage",
            "Status page",
            "A page for volunteers running the node: peers, hit rates, upstream calls saved, "
            "recent fills, store size and charts of the last hour. Served when "
            "`api.status_page` is true; its script and style sheet are under `/static/`.",
            {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}},
            problems="probe",
        ),
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the public API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "whnode public API",
            "version": __version__,
            "summary": "Dispensary menus from the whnode peer-to-peer cache network.",
            "description": "Every GET path also answers HEAD. Errors are RFC 9457 problem "
            "documents (`application/problem+json`). Requests take no body and no unknown or "
            f"repeated query parameter; query strings are at most "
            f"{limits.MAX_QUERY_STRING_BYTES} bytes. Each client (IP address; IPv6 by /64) "
            "may make `api.requests_per_second` requests per second with bursts of "
            "`api.burst`; beyond, 429 with Retry-After. Responses under `/v1/` allow any "
            "origin (CORS), and `OPTIONS` on them answers a CORS preflight (204; any other "
            "known path answers `OPTIONS` with 204 and `Allow`).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": _paths(),
        "components": {"schemas": _schemas()},
    }


# ---------------------------------------------------------------------- markdown
def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _resolve(document: _Doc, schema: _Doc) -> _Doc:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: _Doc = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return resolved
    return schema


def _type_text(schema: _Doc) -> str:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    if "oneOf" in schema:
        return " or ".join(_type_text(option) for option in schema["oneOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = str(schema.get("type", "any"))
    if "title" in schema:
        return f"{kind} ({schema['title']})"
    if kind == "array":
        return "array of " + _type_text(schema.get("items", {}))
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return kind


def _range_text(schema: _Doc) -> str:
    parts = []
    for key, label in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")):
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    if "default" in schema:
        parts.append(f"default {schema['default']}")
    return ", ".join(parts)


def _endpoint_markdown(document: _Doc, path: str, method: str, operation: _Doc) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", f"**{operation['summary']}.**", ""]
    lines += [operation["description"], ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | description |", "|---|---|---|---|"]
        for parameter in parameters:
            schema = parameter["schema"]
            constraint = _range_text(schema)
            text = parameter["description"] + (f" ({constraint})" if constraint else "")
            required = " (required)" if parameter.get("required") else ""
            lines.append(
                f"| `{parameter['name']}`{required} | {parameter['in']} | "
                f"{_cell(_type_text(schema))} | {_cell(text)} |"
            )
        lines.append("")
    lines += ["| status | content | description |", "|---|---|---|"]
    for status, response in operation["responses"].items():
        content = response.get("content", {})
        kinds = []
        for media, body in content.items():
            schema = body.get("schema", {})
            shown = _type_text(schema) if "$ref" in schema else ""
            kinds.append(f"`{media}`" + (f" {shown}" if shown else ""))
        lines.append(
            f"| {status} | {_cell(', '.join(kinds)) or '–'} | {_cell(response['description'])} |"
        )
    lines.append("")
    headers = operation["responses"].get("200", {}).get("headers")
    if headers:
        lines += ["Response headers:", ""]
        lines += [f"- `{name}`: {header['description']}" for name, header in headers.items()]
        lines.append("")
    return lines


def _schema_markdown(document: _Doc, name: str, schema: _Doc) -> list[str]:
    lines = [f"### {name}", ""]
    if "description" in schema:
        lines += [schema["description"], ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | description |", "|---|---|---|"]
    for field, field_schema in schema.get("properties", {}).items():
        resolved = field_schema
        if "oneOf" in field_schema and len(field_schema["oneOf"]) == 2:
            resolved = field_schema["oneOf"][0]
        description = (
            str(_resolve(document, resolved).get("description", ""))
            if ("$ref" not in resolved)
            else ""
        )
        constraint = _range_text(resolved)
        if constraint:
            description = f"{description} ({constraint})".strip()
        optional = "" if field in required else " (optional)"
        lines.append(
            f"| `{field}`{optional} | {_cell(_type_text(field_schema))} | {_cell(description)} |"
        )
    lines.append("")
    return lines


def render_markdown(document: dict[str, Any] | None = None) -> str:
    """docs/api.md: the API reference generated from the OpenAPI document and the tables."""
    document = openapi_document() if document is None else document
    info = document["info"]
    lines = [
        "<!-- Generated by whnode.api.openapi.render_markdown(); do not edit by hand. -->",
        "<!-- Regenerate: python -m whnode.api.openapi > docs/api.md -->",
        "",
        "# Public HTTP API",
        "",
        f"{info['summary']} OpenAPI {document['openapi']} document: `GET /openapi.json` "
        f"(API version {info['version']}).",
        "",
        info["description"],
        "",
        "## Endpoints",
        "",
    ]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            lines += _endpoint_markdown(document, path, method, operation)
    lines += [
        "## Problem types",
        "",
        "Each error class maps to exactly one status and one problem type "
        "(`whnode.api.problems`). HTTP errors not listed use `about:blank`.",
        "",
        "| type | status | title | raised for | meaning |",
        "|---|---|---|---|---|",
    ]
    for uri, status, title, classes, description in describe_problems():
        lines.append(
            f"| `{uri}` | {status} | {_cell(title)} | {_cell(classes)} | {_cell(description)} |"
        )
    lines += [
        "",
        "## Metrics",
        "",
        "`GET /metrics` (Prometheus text format) exports these, from `whnode.api.metrics`:",
        "",
        "| metric | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    for name, kind, labels, help_text in describe_metrics():
        lines.append(f"| `{name}` | {kind} | {_cell(labels) or '–'} | {_cell(help_text)} |")
    lines += ["", "## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        lines += _schema_markdown(document, name, schema)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
