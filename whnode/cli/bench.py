"""``whnode bench NAME``: the benchmark registry (a benchmark is one line in ``BENCHES``)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from whnode.cli.parsing import Commands
from whnode.cli.passthrough import call_main

BENCHES = {
    "codec": "whnode.bench.codec",
    "diff": "whnode.bench.diff",
    "search": "whnode.bench.search",
    "store": "whnode.bench.store",
    "parse": "whnode.bench.parse",
    "fetch": "whnode.bench.fetch",
    "cluster": "whnode.bench.cluster",
    "chaos": "whnode.bench.chaos",
    "http": "whnode.bench.http",
    "fidelity": "whnode.bench.fidelity",
    "flood": "whnode.bench.flood",
    "fuzz": "whnode.bench.fuzz",
    "poison": "whnode.bench.poison",
}
"""``whnode bench NAME`` runs ``main(argv) -> int`` of the module named here."""


def _cmd_bench(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    del environ
    return call_main(BENCHES[args.name], args.bench_args)


def register(commands: Commands) -> None:
    bench = commands.add(
        "bench",
        "run a benchmark that prints figures",
        ["whnode bench codec", "whnode bench cluster --help"],
    )
    bench.add_argument("name", choices=sorted(BENCHES), help="benchmark")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="the benchmark's arguments")
    bench.set_defaults(handler=_cmd_bench)
