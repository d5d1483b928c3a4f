"""Command-line interface: argv, environment and config file become one config object.

``whnode`` and ``python -m whnode`` run :func:`main`. This package is the only place that
reads argv and the environment; every command builds one frozen :class:`whnode.config.Config`
with ``build_config`` (flags > environment > file > defaults) and hands it down.

One module per command group, each adding its commands to the parser with
``register(commands)``: :mod:`~whnode.cli.run` (init, run, id), :mod:`~whnode.cli.get`,
:mod:`~whnode.cli.status` (status, peers), :mod:`~whnode.cli.config` (config show),
:mod:`~whnode.cli.demo`, :mod:`~whnode.cli.passthrough` (seed, sandbox) and
:mod:`~whnode.cli.bench` (the benchmark registry, ``BENCHES``). :mod:`~whnode.cli.main` builds
the parser and runs a command.

Errors never end in a traceback when the user can fix them: :func:`exit_code_for` maps the
``whnode.errors`` tree to the documented exit codes (:class:`ExitCode`) and the message goes
to stderr. docs/cli.md and docs/configuration.md are generated from the parser and the
config dataclasses by :func:`render_cli_markdown` and :func:`render_configuration_markdown`.
"""

from __future__ import annotations

from whnode.cli.base import ExitCode, exit_code_for
from whnode.cli.bench import BENCHES
from whnode.cli.config import render_toml
from whnode.cli.docs import render_cli_markdown, render_configuration_markdown, write_docs
from whnode.cli.get import MenuResult, write_menu
from whnode.cli.main import build_parser, main
from whnode.cli.parsing import parse_time_ms
from whnode.cli.passthrough import PASSTHROUGH

__all__ = [
    "BENCHES",
    "PASSTHROUGH",
    "ExitCode",
    "MenuResult",
    "build_parser",
    "exit_code_for",
    "main",
    "parse_time_ms",
    "render_cli_markdown",
    "render_configuration_markdown",
    "render_toml",
    "write_docs",
    "write_menu",
]
