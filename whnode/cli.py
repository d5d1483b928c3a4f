"""Command-line interface: argv, environment and config file become one config object.

``whnode`` and ``python -m whnode`` run :func:`main`. This is the only module that reads argv
and the environment; every command builds one frozen :class:`whnode.config.Config` with
``build_config`` (flags > environment > file > defaults) and hands it down.

Errors never end in a traceback when the user can fix them: :func:`exit_code_for` maps the
``whnode.errors`` tree to the documented exit codes (:class:`ExitCode`) and the message goes
to stderr. docs/cli.md and docs/configuration.md are generated from the parser and the
config dataclasses by :func:`render_cli_markdown` and :func:`render_configuration_markdown`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import enum
import functools
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from whnode.config import (
    CONFIG_FILE_NAME,
    ENV_PREFIX,
    Config,
    LogFormat,
    build_config,
    describe_config,
    masked,
    resolve_data_dir,
)
from whnode.errors import RemoteError, UsageError, WhnodeError

__all__ = [
    "ExitCode",
    "build_parser",
    "exit_code_for",
    "main",
    "render_cli_markdown",
    "render_configuration_markdown",
    "write_docs",
]

BENCHES = {
    "codec": "whnode.bench.codec",
    "store": "whnode.bench.store",
    "parse": "whnode.bench.parse",
    "fetch": "whnode.bench.fetch",
    "cluster": "whnode.bench.cluster",
    "chaos": "whnode.bench.chaos",
    "http": "whnode.bench.http",
    "fidelity": "whnode.bench.fidelity",
    "flood": "whnode.bench.flood",
    "fuzz": "whnode.bench.fuzz",
}

HTTP_TIMEOUT = 10.0
"""Seconds the status and peers commands wait for a node's answer."""

HELP_WIDTH = 100
"""Column width of generated help text (docs are generated at this width too)."""


class ExitCode(enum.IntEnum):
    """Process exit status of every command."""

    OK = 0
    """The command succeeded."""
    RUNTIME_ERROR = 1
    """A runtime failure on this machine: a port in use (``cannot listen on UDP
    127.0.0.1:8468: Address already in use``), the data directory in use by another process
    (the message names its pid), a full disk, a bug."""
    USAGE_ERROR = 2
    """Bad flags, bad configuration, a malformed argument: fix the command or the file."""
    NOT_FOUND = 3
    """The thing asked for does not exist (unknown dispensary, no snapshot at that time)."""
    REMOTE_ERROR = 4
    """A node, a peer or an upstream API failed or could not be reached."""
    INTERRUPTED = 130
    """Interrupted by Ctrl-C (SIGINT) outside the daemon's normal stop."""


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code documented for an exception that ends a command."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, UsageError):
        return ExitCode.USAGE_ERROR
    from whnode.service.exceptions import MenuNotFound
    from whnode.upstream.exceptions import UnknownDispensary

    if isinstance(exc, MenuNotFound | UnknownDispensary):
        return ExitCode.NOT_FOUND
    if isinstance(exc, RemoteError):
        return ExitCode.REMOTE_ERROR
    return ExitCode.RUNTIME_ERROR


# ---------------------------------------------------------------------------------------------
# Configuration from flags


def _config_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ``section.key`` assignments given on the command line (the top layer)."""
    flags: dict[str, Any] = {}
    for item in getattr(args, "set", None) or ():
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise UsageError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        flags[key.strip()] = value
    shortcuts = {
        "data_dir": "node.data_dir",
        "host": "node.host",
        "port": "node.port",
        "seed": "node.seeds",
        "log_format": "log.format",
        "log_level": "log.level",
    }
    for attribute, key in shortcuts.items():
        value = getattr(args, attribute, None)
        if value is not None:
            flags[key] = value
    return flags


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigSources:
    """Where a command's configuration comes from; building twice (SIGHUP) rereads the file."""

    config_file: Path | None
    environ: Mapping[str, str]
    flags: Mapping[str, Any]

    def build(self) -> Config:
        return build_config(config_file=self.config_file, environ=self.environ, flags=self.flags)


def _sources(args: argparse.Namespace, environ: Mapping[str, str]) -> ConfigSources:
    config_file = getattr(args, "config", None)
    return ConfigSources(
        config_file=Path(config_file) if config_file else None,
        environ=dict(environ),
        flags=_config_flags(args),
    )


# ---------------------------------------------------------------------------------------------
# TOML output (config show, init)


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "")
    return key if key and bare.isascii() and bare.isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise UsageError(f"cannot write {value!r} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], Mapping)


def render_toml(data: Mapping[str, Mapping[str, Any]]) -> str:
    """Sections of plain values as TOML; None (unset) values become comments."""
    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        arrays: list[tuple[str, Any]] = []
        for key, value in values.items():
            if value is None:
                lines.append(f"# {key} is unset")
            elif _is_table_array(value):
                arrays.append((key, value))
            else:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        for key, items in arrays:
            for item in items:
                lines.append("")
                lines.append(f"[[{section}.{key}]]")
                lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items())
        lines.append("")
    return "\n".join(lines)


SOURCE_EXAMPLE = (
    "[[upstream.sources]]",
    'vendor = "dutchie"',
    'base_url = "http://127.0.0.1:8600"',
    'credentials = { persisted_query_hash = "..." }',
)


def render_default_toml(assignments: Mapping[str, Mapping[str, Any]]) -> str:
    """The commented whnode.toml that ``init`` writes.

    Every key appears with its description and default, commented out, except the keys in
    ``assignments`` (given as flags to ``init``), which are written as active values.
    """
    descriptions = {key: " ".join(text.split()) for key, _, _, text in describe_config()}
    defaults = masked(Config())
    lines = [
        "# whnode node configuration.",
        "# Precedence: command-line flags > WHNODE_<SECTION>_<KEY> environment > this file >",
        "# defaults. Uncomment a line to change a value; `whnode config show` prints the result.",
        "# Reference: docs/configuration.md.",
    ]
    for section, values in defaults.items():
        given = assignments.get(section, {})
        lines.append(f"\n[{section}]")
        arrays: list[str] = []
        for key, default in values.items():
            dotted = f"{section}.{key}"
            if dotted == "node.data_dir":
                continue  # this file lives in the data directory
            text = ["", f"# {descriptions.get(dotted, '')}"]
            if key in given:
                text.append(f"{_toml_key(key)} = {_toml_value(given[key])}")
            elif default is None:
                text.append(f'# {_toml_key(key)} = ""')
            elif dotted == "upstream.sources":
                text.append("# For example (a table per vendor, after the keys above):")
                text.extend(f"#   {line}" for line in SOURCE_EXAMPLE)
            else:
                text.append(f"# {_toml_key(key)} = {_toml_value(default)}")
            if dotted == "upstream.sources":
                arrays.extend(text)
            else:
                lines.extend(text)
        lines.extend(arrays)
    return "\n".join(lines) + "\n"


def _plain_assignments(flags: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Flags coerced to their field types, as plain data, grouped by section.

    Built from the flags alone (an empty file, no environment): ``init`` writes what the
    command line said, and validates it on the way.
    """
    typed = masked(build_config(config_file=Path(os.devnull), environ={}, flags=flags))
    grouped: dict[str, dict[str, Any]] = {}
    for dotted in flags:
        section, _, key = dotted.partition(".")
        grouped.setdefault(section, {})[key] = typed[section][key]
    return grouped


# ---------------------------------------------------------------------------------------------
# Commands


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def _cmd_config_show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config = _sources(args, environ).build()
    data = masked(config)
    if args.format == "json":
        _print_json(data)
    else:
        sys.stdout.write(render_toml(data))
    return ExitCode.OK


def _identity_lines(data_dir: Path, *, create: bool) -> tuple[str, str]:
    """(node id, public key) in hex, of the identity kept in ``data_dir``."""
    from whnode.identity import identity_path, load_identity, load_or_create_identity
    from whnode.record.keys import node_id_for

    if create:
        signing_key = load_or_create_identity(data_dir)
    elif identity_path(data_dir).exists():
        signing_key = load_identity(identity_path(data_dir))
    else:
        raise UsageError(f"no node identity in {data_dir}; run `whnode init` first")
    public_key = signing_key.public_key
    return node_id_for(public_key).hex(), bytes(public_key).hex()


def _cmd_init(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    flags = _config_flags(args)
    data_dir = resolve_data_dir(environ=environ, flags=flags)
    target = data_dir / CONFIG_FILE_NAME
    if target.exists() and not args.force:
        raise UsageError(f"{target} already exists; use --force to overwrite it")
    assignments = _plain_assignments({k: v for k, v in flags.items() if k != "node.data_dir"})
    text = render_default_toml(assignments)
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = target.with_name(f".{CONFIG_FILE_NAME}.{os.getpid()}.tmp")
        staging.write_text(text, encoding="utf-8")
        try:
            build_config(config_file=staging, environ={}, flags={"node.data_dir": str(data_dir)})
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    node_id, public_key = _identity_lines(data_dir, create=True)
    sys.stdout.write(
        f"initialised {data_dir}\n"
        f"config      {target}\n"
        f"node id     {node_id}\n"
        f"public key  {public_key}\n"
        f"next: whnode run --data-dir {data_dir}\n"
    )
    return ExitCode.OK


def _cmd_id(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config = _sources(args, environ).build()
    node_id, public_key = _identity_lines(config.node.data_dir, create=False)
    if args.json:
        _print_json({"node_id": node_id, "public_key": public_key})
    else:
        sys.stdout.write(f"node id     {node_id}\npublic key  {public_key}\n")
    return ExitCode.OK


def _cmd_run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from whnode import daemon
    from whnode.logs import configure_logging

    sources = _sources(args, environ)
    config = sources.build()
    configure_logging(config.log)
    from whnode.sdnotify import Notifier

    return daemon.run(config, reload=sources.build, notifier=Notifier(environ.get("NOTIFY_SOCKET")))


def _node_url(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    if args.node:
        url: str = args.node  # whnode.Client checks it
        return url.rstrip("/")
    node = _sources(args, environ).build().node
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
    base = _node_url(args, environ)
    info = _node_info(base)
    if args.json:
        _print_json(info)
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
    base = _node_url(args, environ)
    info = _node_info(base)
    peers = info.get("peers")
    if not isinstance(peers, list):
        raise RemoteError(f"{base}/v1/node: the answer has no peers list")
    if args.json:
        _print_json(peers)
        return ExitCode.OK
    rows = [peer if isinstance(peer, dict) else {"peer": peer} for peer in peers]
    if rows:
        sys.stdout.write(_table(rows) + "\n")
    sys.stdout.write(f"{len(rows)} peer{'s' if len(rows) != 1 else ''}\n")
    return ExitCode.OK


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

        _print_json(menu_document(result.menu, result.record))


def _cmd_get(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from whnode.record.model import parse_dispensary_id

    try:
        dispensary_id = parse_dispensary_id(args.dispensary)
    except ValueError as exc:
        raise UsageError(f"{args.dispensary!r} is not a dispensary id: {exc}") from exc
    if args.embedded:
        result = _get_embedded(args, environ, dispensary_id)
    else:
        result = _get_remote(_node_url(args, environ), dispensary_id, args.max_age, args.at)
    write_menu(result, args.format, now_ms=int(time.time() * 1000))
    return ExitCode.OK


def _get_embedded(
    args: argparse.Namespace, environ: Mapping[str, str], dispensary_id: str
) -> MenuResult:
    from whnode import daemon
    from whnode.logs import configure_logging
    from whnode.record.acceptance import open_record

    sources = _sources(args, environ)
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


PASSTHROUGH = {"seed": "whnode.seed", "sandbox": "whnode.sandbox.cli"}
"""Commands whose arguments all belong to another module's ``main(argv) -> int``."""


def _call_main(module_name: str, argv: Sequence[str]) -> int:
    """Run another module's ``main(argv) -> int``."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise
        raise WhnodeError(f"{module_name} is not installed in this build") from exc
    result: int = module.main(list(argv))
    return result


def _dispatch(module_name: str) -> Callable[[argparse.Namespace, Any], int]:
    def handler(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
        del environ
        return _call_main(module_name, args.rest)

    return handler


def _cmd_bench(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    del environ
    return _call_main(BENCHES[args.name], args.bench_args)


def _cmd_demo(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from whnode import demo

    return demo.main(
        demo.DemoOptions(
            nodes=args.nodes,
            requests=args.requests,
            dispensaries=args.dispensaries,
            once=args.once,
            concurrency=args.concurrency,
            python=sys.executable,
            environ={k: v for k, v in environ.items() if not k.startswith(ENV_PREFIX)},
        )
    )


# ---------------------------------------------------------------------------------------------
# Parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def parse_time_ms(text: str) -> int:
    """``--at``: ISO-8601 (naive means UTC) or integer milliseconds since the epoch."""
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither ISO-8601 (2025-01-31T12:00:00Z) nor epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _examples(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def _config_parent(*, logging_flags: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("configuration (flags > WHNODE_* environment > file)")
    group.add_argument("--data-dir", metavar="DIR", help="data directory (default ./whnode-data)")
    group.add_argument(
        "--config", metavar="FILE", help="config file (default DIR/whnode.toml, or $WHNODE_CONFIG)"
    )
    group.add_argument(
        "--set",
        metavar="SECTION.KEY=VALUE",
        action="append",
        help="set any configuration key, e.g. --set cache.hot_cache_bytes=134217728 (repeatable)",
    )
    group.add_argument("--host", metavar="ADDRESS", help="bind address (node.host)")
    group.add_argument("--port", metavar="PORT", help="UDP+TCP port, 0 for any (node.port)")
    group.add_argument(
        "--seed", metavar="HOST:PORT", action="append", help="bootstrap seed (repeatable)"
    )
    if logging_flags:
        group.add_argument(
            "--log-format", choices=[f.value for f in LogFormat], help="log format on stderr"
        )
        group.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR")
    return parent


def build_parser(*, width: int | None = None) -> argparse.ArgumentParser:
    """The ``whnode`` argument parser (``width`` fixes help wrapping, for generated docs)."""
    formatter: Any = argparse.RawDescriptionHelpFormatter
    if width is not None:
        formatter = functools.partial(formatter, width=width)
    parser = argparse.ArgumentParser(
        prog="whnode",
        description="whnode: a peer-to-peer cache network for dispensary menus.",
        epilog=_examples("whnode init && whnode run", "whnode get weedmaps:ultra-health-gallup"),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"whnode {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config = _config_parent(logging_flags=False)
    config_logging = _config_parent(logging_flags=True)

    def add(
        name: str,
        summary: str,
        examples: Sequence[str],
        *,
        parents: Sequence[Any] = (),
        add_help: bool = True,
    ) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = commands.add_parser(
            name,
            add_help=add_help,
            help=summary,
            description=summary[:1].upper() + summary[1:] + ".",
            epilog=_examples(*examples),
            parents=list(parents),
            formatter_class=formatter,
        )
        return command

    init = add(
        "init",
        "create the data directory, the node identity and a commented whnode.toml",
        ["whnode init --data-dir ~/.whnode --seed seed1.example.org:8468"],
        parents=[config],
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing whnode.toml")
    init.set_defaults(handler=_cmd_init)

    run = add(
        "run",
        "run the node daemon in the foreground (SIGTERM/Ctrl-C drain and stop, SIGHUP reloads"
        " sources)",
        ["whnode run --data-dir ~/.whnode --log-format json"],
        parents=[config_logging],
    )
    run.set_defaults(handler=_cmd_run)

    ident = add(
        "id",
        "print the node id and public key kept in the data directory",
        ["whnode id --data-dir ~/.whnode"],
        parents=[config],
    )
    ident.add_argument("--json", action="store_true", help="print JSON")
    ident.set_defaults(handler=_cmd_id)

    get = add(
        "get",
        "fetch one dispensary's menu through a running node or an embedded one",
        [
            "whnode get weedmaps:ultra-health-gallup --node http://127.0.0.1:8468",
            "whnode get dutchie:5f3e... --max-age 300 --format summary",
            "whnode get jane:1547 --at 2025-01-31T12:00:00Z --embedded --seed seed.example:8468",
        ],
        parents=[config_logging],
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
        "--max-age", type=_positive_float, metavar="SECONDS", help="accept snapshots this old"
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

    for name, summary, handler in (
        ("status", "show a running node's status (GET /v1/node)", _cmd_status),
        ("peers", "list a running node's peers", _cmd_peers),
    ):
        command = add(
            name, summary, [f"whnode {name} --node http://127.0.0.1:8468"], parents=[config]
        )
        command.add_argument(
            "--node",
            metavar="URL",
            help="the node's URL (default: the api file of the node running on the data"
            " directory, else the configured host and port)",
        )
        command.add_argument("--json", action="store_true", help="print the raw JSON")
        command.set_defaults(handler=handler)

    config_command = add(
        "config",
        "inspect the effective configuration",
        ["whnode config show --format json"],
    )
    config_actions = config_command.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = config_actions.add_parser(
        "show",
        help="print the effective configuration, secrets masked",
        description="Print the effective configuration (flags > environment > file >"
        " defaults), secrets masked.",
        epilog=_examples(
            "WHNODE_NODE_PORT=9000 whnode config show --set cache.history_per_dispensary=10"
        ),
        parents=[config_logging],
        formatter_class=formatter,
    )
    show.add_argument("--format", choices=["toml", "json"], default="toml", help="output format")
    show.set_defaults(handler=_cmd_config_show)

    demo = add(
        "demo",
        "start a local network of real processes (seed, five nodes, sandbox) and run a workload",
        ["whnode demo", "whnode demo --once --requests 200"],
    )
    demo.add_argument("--once", action="store_true", help="run a short workload and exit")
    demo.add_argument("--nodes", type=_positive_int, default=5, help="nodes to start")
    demo.add_argument(
        "--requests", type=_positive_int, default=None, help="requests in the workload"
    )
    demo.add_argument(
        "--dispensaries", type=_positive_int, default=None, help="sandbox dispensaries"
    )
    demo.add_argument(
        "--concurrency", type=_positive_int, default=16, help="requests in flight at once"
    )
    demo.set_defaults(handler=_cmd_demo)

    for name, summary, example in (
        (
            "seed",
            "run a routing-only bootstrap seed peer (options: whnode seed --help)",
            "whnode seed --port 8468",
        ),
        (
            "sandbox",
            "serve the simulated upstream APIs (options: whnode sandbox --help)",
            "whnode sandbox --port 8600 --host 127.0.0.1",
        ),
    ):
        # listed for --help and the docs; main() hands the arguments to the module unparsed
        passthrough = add(name, summary, [example], add_help=False)
        passthrough.add_argument(
            "rest", nargs=argparse.REMAINDER, metavar="...", help="the command's own options"
        )
        passthrough.set_defaults(handler=_dispatch(PASSTHROUGH[name]))

    bench = add(
        "bench",
        "run a benchmark that prints figures",
        ["whnode bench codec", "whnode bench cluster --help"],
    )
    bench.add_argument("name", choices=sorted(BENCHES), help="benchmark")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="the benchmark's arguments")
    bench.set_defaults(handler=_cmd_bench)
    return parser


def _version() -> str:
    try:
        return metadata.version("whnode")
    except metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Entry point


def _report(exc: BaseException) -> None:
    sys.stderr.write(f"whnode: error: {exc}\n")


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; returns its exit code (see :class:`ExitCode`)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in PASSTHROUGH:
        # argparse cannot hand over a remainder that starts with an option: dispatch directly
        module_name = PASSTHROUGH[arguments[0]]
        args = argparse.Namespace(handler=_dispatch(module_name), rest=arguments[1:])
    else:
        try:
            args = build_parser().parse_args(arguments)
        except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
            return exc.code if isinstance(exc.code, int) else ExitCode.USAGE_ERROR
    handler: Callable[[argparse.Namespace, Mapping[str, str]], int] = args.handler
    try:
        return int(handler(args, os.environ if environ is None else environ))
    except KeyboardInterrupt:
        sys.stderr.write("whnode: interrupted\n")
        return ExitCode.INTERRUPTED
    except WhnodeError as exc:
        _report(exc)
        return exit_code_for(exc)
    except OSError as exc:
        _report(exc)
        return ExitCode.RUNTIME_ERROR
    except Exception:
        sys.stderr.write("whnode: internal error (please report it):\n")
        traceback.print_exc()
        return ExitCode.RUNTIME_ERROR


# ---------------------------------------------------------------------------------------------
# Generated documentation


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices: dict[str, argparse.ArgumentParser] = action.choices
            return choices
    return {}


def render_cli_markdown() -> str:
    """docs/cli.md: every command's help (with its example) and the exit codes table."""
    parser = build_parser(width=HELP_WIDTH)
    lines = [
        "# Command-line interface",
        "",
        "<!-- Generated from whnode/cli.py by whnode.cli.render_cli_markdown(); do not edit. -->",
        "",
        "`whnode` (or `python -m whnode`) runs one command. Commands that read configuration",
        "take `--data-dir`, `--config`, `--set SECTION.KEY=VALUE` and a few shortcuts; see",
        "[configuration.md](configuration.md) for every key and the precedence rules",
        "(flags > `WHNODE_*` environment > `whnode.toml` > defaults).",
        "",
        "## Exit codes",
        "",
        "| Code | Name | Meaning |",
        "|---:|---|---|",
    ]
    docs = _member_docs(ExitCode)
    for code in ExitCode:
        lines.append(f"| {code.value} | `{code.name}` | {docs.get(code.name, '')} |")
    lines += [
        "",
        "`whnode run` and `whnode demo` stop cleanly on SIGTERM and on the first Ctrl-C and then",
        "exit 0 (a second Ctrl-C while draining exits 130). User errors print one line",
        "`whnode: error: ...` on stderr, never a traceback. `whnode config show` refuses",
        "exactly what `whnode run` refuses, with the same message naming the key.",
        "",
        "## The data directory",
        "",
        "`whnode run` (and `whnode get --embedded`, `whnode seed`) takes an exclusive lock on",
        "the data directory (`whnode.lock`, holding the pid) for as long as it runs: a second",
        "process on the same directory exits 1 at once, naming the pid of the first. The kernel",
        "drops the lock when the process ends, even by `kill -9`. `whnode run` creates a missing",
        "data directory (mode 0700) and a new identity in it (0600), as `whnode init` does but",
        "without a `whnode.toml`; `whnode id`, `whnode config show` and `whnode status` never",
        "create anything (`whnode id` on a directory without identity exits 2).",
        "",
        "A running node writes its HTTP URL to the `api` file of its data directory (removed",
        "when it stops). `whnode status`, `whnode peers` and `whnode get` without `--node` use",
        "it while the node runs, whatever port it was given (`--port 0` included); otherwise",
        "they use the configured host and port. An `api` file left by a killed process is",
        "ignored (its lock is gone).",
        "",
        "## whnode",
        "",
        "```",
        parser.format_help().rstrip(),
        "```",
    ]
    for name, command in _subcommands(parser).items():
        lines += ["", f"## whnode {name}", "", "```", command.format_help().rstrip(), "```"]
        for action_name, action in _subcommands(command).items():
            lines += [
                "",
                f"### whnode {name} {action_name}",
                "",
                "```",
                action.format_help().rstrip(),
                "```",
            ]
    return "\n".join(lines) + "\n"


def _member_docs(cls: type[Any]) -> dict[str, str]:
    """Docstrings written under enum members / dataclass fields, by name."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    class_def = tree.body[0]
    assert isinstance(class_def, ast.ClassDef)
    docs: dict[str, str] = {}
    body = class_def.body
    for index, node in enumerate(body[:-1]):
        following = body[index + 1]
        if not (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)):
            continue
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            docs[node.targets[0].id] = str(following.value.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            docs[node.target.id] = str(following.value.value)
    return docs


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_configuration_markdown() -> str:
    """docs/configuration.md, generated from ``whnode.config.describe_config()``."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from whnode/config.py by whnode.cli.render_configuration_markdown();",
        "     do not edit. -->",
        "",
        "A node has one configuration object (`whnode.config.Config`), built once by the",
        "command-line interface and passed down; nothing below `whnode/cli.py` reads the",
        "environment or argv. An application embedding `whnode.Node` builds it with",
        "`whnode.config.build_config(...)` or constructs the dataclasses directly.",
        "",
        "## Where values come from (highest first)",
        "",
        "1. **Command-line flags**: `--set SECTION.KEY=VALUE` (repeatable) and the shortcuts",
        "   `--data-dir` (`node.data_dir`), `--host` (`node.host`), `--port` (`node.port`),",
        "   `--seed HOST:PORT` (`node.seeds`, repeatable), `--log-format` (`log.format`),",
        "   `--log-level` (`log.level`). A shortcut wins over `--set` of the same key.",
        "2. **Environment**: `WHNODE_<SECTION>_<KEY>` in upper case, e.g. `WHNODE_NODE_PORT=9000`,",
        "   `WHNODE_CACHE_HOT_CACHE_BYTES=134217728`. Lists are comma-separated",
        "   (`WHNODE_NODE_SEEDS=a.example:8468,b.example:8468`); booleans are",
        "   `true/false/1/0/yes/no/on/off`.",
        f"3. **The file**: `{CONFIG_FILE_NAME}` (TOML) in the data directory, or the file named",
        "   by `--config FILE` or `$WHNODE_CONFIG`. `whnode init` writes a commented one.",
        "   Upstream sources (base URL and credentials per vendor) can only be given here, as",
        "   `[[upstream.sources]]` tables.",
        "4. **Defaults**: the table below.",
        "",
        "The data directory itself comes from flags, then the environment, then the default",
        "(the file lives in it, so it cannot move it). Unknown sections or keys, values of the",
        "wrong type and values out of range are refused with a message naming the key (exit",
        'code 2). The file\'s values keep their TOML types: `port = "9000"` and',
        '`seeds = "a:1"` are refused, not converted (environment variables and flags are text',
        "and are parsed). Every rule is checked when the configuration is built, so `whnode",
        "config show` refuses exactly what `whnode run` refuses, with the same message; upstream",
        "sources are checked there too (known vendor, absolute http(s) `base_url`, credentials).",
        "`whnode config show` prints the effective configuration (TOML, or JSON with `--format",
        "json`) with secrets (keys named like key, secret, token, password, credential) masked",
        "as `***`.",
        "`whnode run` rereads the file on SIGHUP and applies the upstream sources.",
        "",
        "Example:",
        "",
        "```toml",
        "[node]",
        'seeds = ["seed1.example.org:8468"]',
        "port = 8468",
        "",
        "[cache]",
        "hot_cache_bytes = 134217728",
        "",
        *SOURCE_EXAMPLE,
        "```",
    ]
    current = ""
    for key, type_name, default, description in describe_config():
        section, _, name = key.partition(".")
        if section != current:
            current = section
            lines += [
                "",
                f"## [{section}]",
                "",
                "| Key | Type | Default | Environment | Description |",
                "|---|---|---|---|---|",
            ]
        env_name = f"{ENV_PREFIX}{section.upper()}_{name.upper()}"
        lines.append(
            f"| `{name}` | `{_cell(type_name)}` | `{_cell(default)}` | `{env_name}` "
            f"| {_cell(description)} |"
        )
    return "\n".join(lines) + "\n"


def write_docs(docs_dir: Path = Path("docs")) -> None:
    """Regenerate docs/cli.md and docs/configuration.md."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    (docs_dir / "cli.md").write_text(render_cli_markdown(), encoding="utf-8")
    (docs_dir / "configuration.md").write_text(render_configuration_markdown(), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
