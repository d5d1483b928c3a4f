"""``whnode config show`` and the TOML it and ``whnode init`` write."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from whnode.cli.base import ExitCode, config_sources, print_json
from whnode.cli.parsing import Commands, examples_text
from whnode.config import Config, build_config, describe_config, masked
from whnode.errors import UsageError


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


def plain_assignments(flags: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
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


def _cmd_config_show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config = config_sources(args, environ).build()
    data = masked(config)
    if args.format == "json":
        print_json(data)
    else:
        sys.stdout.write(render_toml(data))
    return ExitCode.OK


def register(commands: Commands) -> None:
    config_command = commands.add(
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
        epilog=examples_text(
            "WHNODE_NODE_PORT=9000 whnode config show --set cache.history_per_dispensary=10"
        ),
        parents=[commands.config_logging],
        formatter_class=commands.formatter,
    )
    show.add_argument("--format", choices=["toml", "json"], default="toml", help="output format")
    show.set_defaults(handler=_cmd_config_show)
