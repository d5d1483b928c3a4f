"""What every command shares: exit codes, the configuration sources of a command, JSON out."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from whnode.config import Config, build_config
from whnode.errors import RemoteError, UsageError


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


def config_flags(args: argparse.Namespace) -> dict[str, Any]:
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


def config_sources(args: argparse.Namespace, environ: Mapping[str, str]) -> ConfigSources:
    config_file = getattr(args, "config", None)
    return ConfigSources(
        config_file=Path(config_file) if config_file else None,
        environ=dict(environ),
        flags=config_flags(args),
    )


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
