"""Argument types and the registrar every command module adds its commands through."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from whnode.config import LogFormat

HELP_WIDTH = 100
"""Column width of generated help text (docs are generated at this width too)."""


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def positive_int(text: str) -> int:
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


def examples_text(*lines: str) -> str:
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


class Commands:
    """The ``whnode`` subcommands being built: each command module's ``register`` adds its own."""

    def __init__(self, parser: argparse.ArgumentParser, *, width: int | None = None) -> None:
        formatter: Any = argparse.RawDescriptionHelpFormatter
        if width is not None:
            formatter = functools.partial(formatter, width=width)
        self.formatter: Any = formatter
        parser.formatter_class = formatter
        self.subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        self.config = _config_parent(logging_flags=False)
        """Parent parser of the configuration flags."""
        self.config_logging = _config_parent(logging_flags=True)
        """Parent parser of the configuration flags and the logging flags."""

    def add(
        self,
        name: str,
        summary: str,
        examples: Sequence[str],
        *,
        parents: Sequence[Any] = (),
        add_help: bool = True,
    ) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = self.subparsers.add_parser(
            name,
            add_help=add_help,
            help=summary,
            description=summary[:1].upper() + summary[1:] + ".",
            epilog=examples_text(*examples),
            parents=list(parents),
            formatter_class=self.formatter,
        )
        return command
