"""``whnode get``: one verified menu, from a running node or an embedded one."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from whnode.cli.base import ExitCode, config_sources, print_json
from whnode.cli.parsing import Commands, parse_time_ms, positive_float
from whnode.cli.status import node_url
from whnode.errors import UsageError


@dataclasses.dataclass(frozen=True, slots=True)
class MenuResult:
    """A verified menu as ``get`` prints it."""

    menu: Any
    """The decoded :class:`whnode.record.model.Menu`."""
    record: Any
    """The :class:`whnode.record.signed.SignedRecord` it came in."""
    path: str | None = None
    """Where the answering node found it (``X-Whnode-Path``), when known."""
    stale: bool = False


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _menu_summary(result: MenuResult, now_ms: int) -> str:
    menu, record = result.menu, result.record
    age = max(0, now_ms - record.fetched_at_ms) // 1000
    by_category: dict[str, int] = {}
    for product in menu.products:
        key = str(product.category.value)
        by_category[key] = by_category.get(key, 0) + 1
    categories = ", ".join(
        f"{name} {count}" for name, count in sorted(by_category.items(), key=lambda x: -x[1])
    )
    lines = [
        f"{record.dispensary_id}  {menu.name}",
        f"fetched     {_iso(record.fetched_at_ms)} ({age:,} s ago)"
        + (f"  path {result.path}" if result.path else "")
        + ("  STALE" if result.stale else ""),
        f"products    {len(menu.products):,}" + (f"  ({categories})" if categories else ""),
        *_parse_report_lines(menu),
        f"publisher   {bytes(record.publisher).hex()}",
        f"record      {len(record.encoded):,} bytes, signed",
    ]
    return "\n".join(lines) + "\n"


def _parse_report_lines(menu: Any) -> list[str]:
    """The summary's lines on the parse report (none for a record made without one)."""
    report = None if menu.statistics is None else menu.statistics.parse_report
    if report is None:
        return []
    lines = [
        f"parsed      {report.items_seen:,} items seen, {report.products_kept:,} products and "
        f"{report.options_kept:,} sizes kept; {report.items_lost:,} items and "
        f"{report.options_lost:,} sizes lost"
    ]
    for title, drops in (("items", report.items_dropped), ("sizes", report.options_dropped)):
        for drop in drops:
            examples = f"  e.g. {', '.join(drop.examples)}" if drop.examples else ""
            lines.append(f"  dropped {title:<5} {drop.reason:<12} {drop.count:6,}{examples}")
    return lines


def write_menu(result: MenuResult, output_format: str, *, now_ms: int) -> None:
    """Print a menu as JSON, as CBOR or COSE bytes (the HTTP API's ``application/cbor`` and
    ``application/cose``), or as a summary."""
    if output_format in ("cbor", "cose"):
        if sys.stdout.isatty():
            raise UsageError(
                f"--format {output_format} writes binary: redirect it to a file or a pipe"
            )
        if output_format == "cbor":
            from whnode.api.render import RenderFormat, render

            data = render(result.record, RenderFormat.CBOR)
        else:
            data = result.record.encoded
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    elif output_format == "summary":
        sys.stdout.write(_menu_summary(result, now_ms))
    else:
        from whnode.api.render import menu_document

        print_json(menu_document(result.menu, result.record))


def _cmd_get(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from whnode.record.model import parse_dispensary_id

    try:
        dispensary_id = parse_dispensary_id(args.dispensary)
    except ValueError as exc:
        raise UsageError(f"{args.dispensary!r} is not a dispensary id: {exc}") from exc
    if args.embedded:
        result = _get_embedded(args, environ, dispensary_id)
    else:
        result = _get_remote(node_url(args, environ), dispensary_id, args.max_age, args.at)
    write_menu(result, args.format, now_ms=int(time.time() * 1000))
    return ExitCode.OK


def _get_embedded(
    args: argparse.Namespace, environ: Mapping[str, str], dispensary_id: str
) -> MenuResult:
    from whnode import daemon
    from whnode.logs import configure_logging
    from whnode.record.acceptance import open_record

    sources = config_sources(args, environ)
    if "node.port" not in sources.flags:  # never collide with a daemon on the default port
        sources = dataclasses.replace(sources, flags={**sources.flags, "node.port": 0})
    config = sources.build()
    configure_logging(config.log)
    answer = asyncio.run(
        daemon.fetch_menu(config, dispensary_id, max_age=args.max_age, at_ms=args.at)
    )
    return MenuResult(
        menu=open_record(answer.record),
        record=answer.record,
        path=answer.path.value,
        stale=bool(answer.stale),
    )


def _get_remote(
    url: str, dispensary_id: str, max_age: float | None, at_ms: int | None
) -> MenuResult:
    from whnode.client import Client

    async def fetch() -> MenuResult:
        async with Client(url) as client:
            verified = await client.get_menu(dispensary_id, max_age=max_age, at=at_ms)
        return MenuResult(menu=verified.menu, record=verified.record, path=verified.path)

    return asyncio.run(fetch())


def register(commands: Commands) -> None:
    get = commands.add(
        "get",
        "fetch one dispensary's menu through a running node or an embedded one",
        [
            "whnode get weedmaps:ultra-health-gallup --node http://127.0.0.1:8468",
            "whnode get dutchie:5f3e... --max-age 300 --format summary",
            "whnode get jane:1547 --at 2025-01-31T12:00:00Z --embedded --seed seed.example:8468",
        ],
        parents=[commands.config_logging],
    )
    get.add_argument("dispensary", metavar="DISPENSARY", help="dispensary id, vendor:store")
    where = get.add_mutually_exclusive_group()
    where.add_argument(
        "--node",
        metavar="URL",
        help="a running node's URL (default: the api file of the node running on the data"
        " directory, else the configured host and port)",
    )
    where.add_argument(
        "--embedded", action="store_true", help="start a node in this process for the request"
    )
    when = get.add_mutually_exclusive_group()
    when.add_argument(
        "--max-age", type=positive_float, metavar="SECONDS", help="accept snapshots this old"
    )
    when.add_argument(
        "--at", type=parse_time_ms, metavar="TIME", help="the snapshot current at TIME"
    )
    get.add_argument(
        "--format",
        choices=["json", "cbor", "cose", "summary"],
        default="json",
        help="output format: json and cbor are the menu (as HTTP application/json and"
        " application/cbor), cose the signed record (application/cose), summary a few lines",
    )
    get.set_defaults(handler=_cmd_get)
