"""``whnode search``, ``whnode changes`` and ``whnode watch``: product search, what changed,
and changes as they come, through a running node, checked against the signed records
(``whnode.Client``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

from whnode.cli.base import ExitCode, print_json
from whnode.cli.parsing import Commands, parse_time_ms, positive_float
from whnode.cli.status import node_url
from whnode.errors import UsageError

FILTERS = (
    ("q", "WORDS", "words that begin words of the name or brand"),
    ("category", "LIST", "categories, comma-separated"),
    ("lineage", "LIST", "lineages, comma-separated"),
    ("brand", "LIST", "brands, comma-separated"),
    ("min_thc", "PERCENT", "least THC in percent"),
    ("max_thc", "PERCENT", "most THC in percent"),
    ("max_price", "DOLLARS", "most paid for a size"),
    ("max_price_per_gram", "DOLLARS", "most paid per gram"),
    ("on_special", "true|false", "only sizes on special (or not)"),
    ("size", "SIZE", "sizes such as 3.5g, 1/8oz, 100mg"),
    ("sort", "KEY", "price, price_per_gram, thc or name; -KEY for descending"),
)


def _price(option: Mapping[str, Any]) -> str:
    cents = option["special_price_cents"]
    paid = option["price_cents"] if cents is None else cents
    quantity = option["quantity"]
    special = " (special)" if cents is not None else ""
    return f"{quantity['amount']:g}{quantity['unit']} ${paid / 100:.2f}{special}"


def _cmd_search(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from whnode.client import Client

    filters = {name: getattr(args, name) for name, _, _ in FILTERS}
    dispensaries = args.dispensaries.split(",") if args.dispensaries else None

    async def search() -> Any:
        async with Client(node_url(args, environ)) as client:
            return await client.search(
                dispensaries=dispensaries, verify=not args.no_verify, limit=args.limit, **filters
            )

    try:
        answer = asyncio.run(search())
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.format == "json":
        print_json(
            {
                "total": answer.total,
                "total_exact": answer.total_exact,
                "partial": answer.partial,
                "verified": answer.verified,
                "results": [{"dispensary_id": d, "product": p} for d, p in answer.results],
                "dispensaries": answer.statuses,
            }
        )
        return ExitCode.OK
    for dispensary_id, product in answer.results:
        prices = ", ".join(_price(option) for option in product["price_options"])
        sys.stdout.write(f"{dispensary_id:<32} {product['name'][:48]:<48} {prices}\n")
    sys.stdout.write(
        f"{len(answer.results)} of {answer.total}{'' if answer.total_exact else '+'} matches"
        + (" (partial)" if answer.partial else "")
        + ("; checked against the signed records" if answer.verified else "")
        + "\n"
    )
    return ExitCode.OK


def _change_lines(changes: Any) -> list[str]:
    diff = changes.diff
    lines = [
        f"{diff.dispensary_id}: {changes.old.record.fetched_at_ms} -> "
        f"{changes.new.record.fetched_at_ms}: "
        + ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in changes.summary.items())
    ]
    for _, product in diff.added:
        lines.append(f"  + {product.name}")
    for _, product in diff.removed:
        lines.append(f"  - {product.name}")
    for change in diff.changed:
        details = [
            f"{p.quantity.amount:g}{p.quantity.unit.value} "
            f"{'-' if p.old_cents is None else f'${p.old_cents / 100:.2f}'} -> "
            f"{'-' if p.new_cents is None else f'${p.new_cents / 100:.2f}'}"
            for p in change.prices
        ]
        details += [
            f"special {'started' if s.started else 'ended' if s.ended else 'changed'}"
            for s in change.specials
        ]
        if change.thc is not None:
            details.append("THC changed")
        details += list(change.fields)
        lines.append(f"  ~ {change.product.name}: {'; '.join(details)}")
    return lines


def _cmd_changes(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from whnode.client import Client

    async def changes() -> Any:
        async with Client(node_url(args, environ)) as client:
            return await client.changes(args.dispensary, args.since, max_age=args.max_age)

    answer = asyncio.run(changes())
    if args.format == "json":
        print_json({"summary": answer.summary, "lines": _change_lines(answer)[1:]})
    else:
        sys.stdout.write("\n".join(_change_lines(answer)) + "\n")
    return ExitCode.OK


def _cmd_watch(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from whnode.api.changes import summary_of
    from whnode.client import Client
    from whnode.client_queries import ChangeAnswer
    from whnode.record.diff import diff_menus

    async def watch() -> None:
        async with Client(node_url(args, environ)) as client:
            previous = None
            async for verified in client.events(args.dispensary):
                if previous is None:
                    sys.stdout.write(
                        f"{verified.record.dispensary_id}: watching from "
                        f"{verified.record.fetched_at_ms} ({len(verified.menu.products)} "
                        "products)\n"
                    )
                else:
                    diff = diff_menus(previous.menu, verified.menu)
                    answer = ChangeAnswer(previous, verified, diff, summary_of(diff))
                    lines = _change_lines(answer)
                    sys.stdout.write(
                        "\n".join(lines if not args.json else [json.dumps(answer.summary)]) + "\n"
                    )
                sys.stdout.flush()
                previous = verified

    try:
        asyncio.run(watch())
    except KeyboardInterrupt:
        return ExitCode.OK
    return ExitCode.OK


def _node_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--node",
        metavar="URL",
        help="a running node's URL (default: the node running on the data directory)",
    )


def register(commands: Commands) -> None:
    search = commands.add(
        "search",
        "search products across the menus a node holds, or across listed dispensaries",
        [
            "whnode search --q 'blue dream' --sort price",
            "whnode search --category flower --max-price-per-gram 10 --format text",
            "whnode search --dispensaries jane:1547,weedmaps:ultra-health-gallup --size 3.5g",
        ],
        parents=[commands.config_logging],
    )
    _node_argument(search)
    search.add_argument("--dispensaries", metavar="LIST", help="at most 50 ids, comma-separated")
    for name, metavar, text in FILTERS:
        search.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=metavar, help=text)
    search.add_argument("--limit", type=int, default=50, help="most results (1-500)")
    search.add_argument(
        "--no-verify", action="store_true", help="trust the node: do not fetch the records"
    )
    search.add_argument("--format", choices=["json", "text"], default="text")
    search.set_defaults(handler=_cmd_search)

    changes = commands.add(
        "changes",
        "what changed in a menu since a time, checked against the two signed snapshots",
        ["whnode changes jane:1547 --since 2026-12-01T00:00:00Z"],
        parents=[commands.config_logging],
    )
    changes.add_argument("dispensary", metavar="DISPENSARY", help="dispensary id, vendor:store")
    _node_argument(changes)
    changes.add_argument(
        "--since", type=parse_time_ms, required=True, metavar="TIME", help="epoch ms or ISO-8601"
    )
    changes.add_argument("--max-age", type=positive_float, metavar="SECONDS")
    changes.add_argument("--format", choices=["json", "text"], default="text")
    changes.set_defaults(handler=_cmd_changes)

    watch = commands.add(
        "watch",
        "print a menu's changes as the node learns them, until interrupted",
        ["whnode watch jane:1547"],
        parents=[commands.config_logging],
    )
    watch.add_argument("dispensary", metavar="DISPENSARY", help="dispensary id, vendor:store")
    _node_argument(watch)
    watch.add_argument("--json", action="store_true", help="one JSON summary line per change")
    watch.set_defaults(handler=_cmd_watch)
