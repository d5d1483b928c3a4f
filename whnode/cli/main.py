"""The parser of every command and the entry point that maps errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence

from whnode.cli import bench, config, demo, get, passthrough, queries, run, seed, status
from whnode.cli.base import ExitCode, exit_code_for
from whnode.cli.parsing import Commands, examples_text
from whnode.errors import WhnodeError
from whnode.version import VERSION

COMMAND_MODULES = (run, get, queries, status, config, demo, seed, passthrough, bench)
"""The modules that add commands, each with ``register(commands)``."""


def build_parser(*, width: int | None = None) -> argparse.ArgumentParser:
    """The ``whnode`` argument parser (``width`` fixes help wrapping, for generated docs)."""
    parser = argparse.ArgumentParser(
        prog="whnode",
        description="whnode: a peer-to-peer cache network for dispensary menus.",
        epilog=examples_text(
            "whnode init && whnode run", "whnode get weedmaps:ultra-health-gallup"
        ),
    )
    parser.add_argument("--version", action="version", version=f"whnode {VERSION}")
    commands = Commands(parser, width=width)
    for module in COMMAND_MODULES:  # the order of --help and of docs/cli.md
        module.register(commands)
    return parser


# ---------------------------------------------------------------------------------------------
# Entry point


def _report(exc: BaseException) -> None:
    sys.stderr.write(f"whnode: error: {exc}\n")


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; returns its exit code (see :class:`ExitCode`)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in passthrough.PASSTHROUGH:
        # argparse cannot hand over a remainder that starts with an option: dispatch directly
        module_name = passthrough.PASSTHROUGH[arguments[0]]
        args = argparse.Namespace(handler=passthrough.dispatch(module_name), rest=arguments[1:])
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
