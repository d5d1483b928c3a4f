"""Command-line interface: argv, environment and config file become one config object."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

BENCHES = {
    "codec": "whnode.bench.codec",
    "store": "whnode.bench.store",
    "parse": "whnode.bench.parse",
    "fetch": "whnode.bench.fetch",
    "cluster": "whnode.bench.cluster",
    "http": "whnode.bench.http",
}


def _run_bench(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHES[args.name])
    result: int = module.main(list(args.bench_args))
    return result


def _run_sandbox(args: argparse.Namespace) -> int:
    module = importlib.import_module("whnode.sandbox.cli")
    result: int = module.main(list(args.sandbox_args))
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whnode", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench", help="run a benchmark that prints figures")
    bench.add_argument("name", choices=sorted(BENCHES))
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(handler=_run_bench)
    sandbox = commands.add_parser("sandbox", help="serve the simulated upstream APIs",
                                  add_help=False)
    sandbox.add_argument("sandbox_args", nargs=argparse.REMAINDER)
    sandbox.set_defaults(handler=_run_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
