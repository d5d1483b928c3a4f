"""``whnode status`` and ``whnode peers``: a running node, found and asked over HTTP."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from whnode.cli.base import ExitCode, config_sources, print_json
from whnode.cli.parsing import Commands
from whnode.errors import RemoteError

HTTP_TIMEOUT = 10.0
"""Seconds the status and peers commands wait for a node's answer."""


def node_url(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    if args.node:
        url: str = args.node  # whnode.Client checks it
        return url.rstrip("/")
    node = config_sources(args, environ).build().node
    from whnode.datadir import running_api_url

    running = running_api_url(node.data_dir)  # the api file of the daemon on this data dir
    if running is not None:
        return running
    host = node.advertise_host or node.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{node.port}"


def _node_info(url: str) -> dict[str, Any]:
    """``GET /v1/node`` of the node at ``url`` (through whnode.Client)."""
    from whnode.client import Client

    async def fetch() -> dict[str, Any]:
        async with Client(url, timeout=HTTP_TIMEOUT) as client:
            return await client.node_info()

    return asyncio.run(fetch())


def _format_value(value: Any, key: str = "") -> str:
    if key.endswith(("port", "_id")) or (key.endswith("_ms") and isinstance(value, int)):
        return str(value)  # numbers that are names or timestamps, not quantities
    if isinstance(value, Mapping) and not value:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _outline(value: Any, indent: int = 0) -> list[str]:
    """Nested JSON as an indented ``key: value`` outline."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        width = max((len(str(key)) for key in value), default=0)
        for key, item in value.items():
            if (isinstance(item, dict) and item) or (
                isinstance(item, list) and any(isinstance(v, dict) for v in item)
            ):
                lines.append(f"{pad}{key}:")
                lines.extend(_outline(item, indent + 1))
            else:
                label = str(key).replace("_", " ")
                lines.append(f"{pad}{label:<{width}}  {_format_value(item, str(key))}")
    elif isinstance(value, list):
        for index, item in enumerate(value[:OUTLINE_ITEMS]):
            lines.append(f"{pad}- [{index}]")
            lines.extend(_outline(item, indent + 1))
        if len(value) > OUTLINE_ITEMS:
            lines.append(f"{pad}... {len(value) - OUTLINE_ITEMS} more (--json shows all)")
    else:
        lines.append(f"{pad}{_format_value(value)}")
    return lines


OUTLINE_ITEMS = 5
"""Items of a list shown by ``status`` (``--json`` prints everything)."""
STATUS_FIRST = ("node_id", "id", "http_url", "url", "port", "uptime", "uptime_seconds", "healthy")


def _cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    base = node_url(args, environ)
    info = _node_info(base)
    if args.json:
        print_json(info)
        return ExitCode.OK
    ordered = {key: info[key] for key in STATUS_FIRST if key in info}
    peers = info.get("peers")
    if isinstance(peers, list):
        ordered["peers"] = len(peers)
    ordered.update({key: value for key, value in info.items() if key not in ordered})
    sys.stdout.write(f"whnode node at {base}\n" + "\n".join(_outline(ordered)) + "\n")
    return ExitCode.OK


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    cells = [[_format_value(row.get(column, ""), column) for column in columns] for row in rows]
    widths = [
        max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)
    ]
    header = "  ".join(column.upper().ljust(widths[i]) for i, column in enumerate(columns))
    body = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) for line in cells]
    return "\n".join([header.rstrip(), *(line.rstrip() for line in body)])


def _cmd_peers(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    base = node_url(args, environ)
    info = _node_info(base)
    peers = info.get("peers")
    if not isinstance(peers, list):
        raise RemoteError(f"{base}/v1/node: the answer has no peers list")
    if args.json:
        print_json(peers)
        return ExitCode.OK
    rows = [peer if isinstance(peer, dict) else {"peer": peer} for peer in peers]
    if rows:
        sys.stdout.write(_table(rows) + "\n")
    sys.stdout.write(f"{len(rows)} peer{'s' if len(rows) != 1 else ''}\n")
    return ExitCode.OK


def register(commands: Commands) -> None:
    for name, summary, handler in (
        ("status", "show a running node's status (GET /v1/node)", _cmd_status),
        ("peers", "list a running node's peers", _cmd_peers),
    ):
        command = commands.add(
            name,
            summary,
            [f"whnode {name} --node http://127.0.0.1:8468"],
            parents=[commands.config],
        )
        command.add_argument(
            "--node",
            metavar="URL",
            help="the node's URL (default: the api file of the node running on the data"
            " directory, else the configured host and port)",
        )
        command.add_argument("--json", action="store_true", help="print the raw JSON")
        command.set_defaults(handler=handler)
