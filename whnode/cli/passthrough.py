"""Commands whose options belong to another module: ``whnode sandbox``."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from whnode.cli.parsing import Commands
from whnode.errors import WhnodeError

PASSTHROUGH = {"sandbox": "whnode.sandbox.cli"}
"""Commands whose arguments all belong to another module's ``main(argv) -> int``."""


def call_main(module_name: str, argv: Sequence[str]) -> int:
    """Run another module's ``main(argv) -> int``."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise
        raise WhnodeError(f"{module_name} is not installed in this build") from exc
    result: int = module.main(list(argv))
    return result


def dispatch(module_name: str) -> Callable[[argparse.Namespace, Any], int]:
    def handler(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
        del environ
        return call_main(module_name, args.rest)

    return handler


def register(commands: Commands) -> None:
    for name, summary, example in (
        (
            "sandbox",
            "serve the simulated upstream APIs (options: whnode sandbox --help)",
            "whnode sandbox --port 8600 --host 127.0.0.1",
        ),
    ):
        # listed for --help and the docs; main() hands the arguments to the module unparsed
        passthrough = commands.add(name, summary, [example], add_help=False)
        passthrough.add_argument(
            "rest", nargs=argparse.REMAINDER, metavar="...", help="the command's own options"
        )
        passthrough.set_defaults(handler=dispatch(PASSTHROUGH[name]))
