"""``whnode sandbox``: serve the simulated upstream APIs until Ctrl-C (or SIGTERM).

Prints the dispensary ids served, one per line, then the base URL to point sources at.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

from whnode.errors import ConfigError
from whnode.sandbox.app import SandboxServer, run_sandbox
from whnode.sandbox.config import SandboxConfig
from whnode.sandbox.faults import FaultKind, FaultRule

__all__ = ["build_parser", "config_from_args", "main"]

DEFAULT_PORT = 8600


def _fault(text: str) -> FaultRule:
    kind, _, probability = text.partition(":")
    try:
        return FaultRule(FaultKind(kind), probability=float(probability or 1.0))
    except (ValueError, ConfigError) as exc:
        kinds = ", ".join(kind.value for kind in FaultKind)
        raise argparse.ArgumentTypeError(
            f"{text!r}: KIND[:PROBABILITY], KIND one of {kinds}"
        ) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whnode sandbox",
        description="Serve simulated Dutchie, Jane, Weedmaps and Leafly menu APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: any free)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every generated menu")
    parser.add_argument(
        "--dispensaries",
        type=int,
        default=None,
        metavar="N",
        help="serve N generated dispensaries (store-0001...) instead of the named catalog",
    )
    parser.add_argument(
        "--population", type=int, default=0, metavar="N", help="N generated ones besides it"
    )
    parser.add_argument("--max-items", type=int, default=2500, help="largest generated menu")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to each answer")
    parser.add_argument(
        "--rate", type=float, default=None, help="requests per second per client (429 above)"
    )
    parser.add_argument("--burst", type=int, default=10, help="rate-limit burst per client")
    parser.add_argument(
        "--change-interval", type=float, default=300.0, help="seconds per menu version"
    )
    parser.add_argument(
        "--change-rate", type=float, default=0.02, help="fraction of items changing per version"
    )
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND[:P]",
        help="inject a fault into every request with probability P (repeatable)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The SandboxConfig the parsed arguments describe (ConfigError when invalid)."""
    catalog = args.dispensaries is None
    return SandboxConfig(
        host=args.host,
        port=args.port,
        seed=args.seed,
        catalog=catalog,
        population=args.population if catalog else args.dispensaries,
        max_items=args.max_items,
        latency=args.latency_ms / 1000.0,
        rate=args.rate,
        burst=args.burst,
        change_interval=args.change_interval,
        change_rate=args.change_rate,
        faults=tuple(args.fault),
    )


def _announce(server: SandboxServer, out: TextIO) -> None:
    for dispensary_id in server.dispensaries:
        print(dispensary_id, file=out)
    print(f"sandbox serving {len(server.dispensaries)} dispensaries at {server.base_url}", file=out)
    out.flush()


async def _serve(config: SandboxConfig, out: TextIO) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with run_sandbox(config, on_started=lambda server: _announce(server, out)):
        await stop.wait()


def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    """Run the sandbox until interrupted; 2 on invalid arguments."""
    args = build_parser().parse_args(list(argv))
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"whnode sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, out or sys.stdout))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"whnode sandbox: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0
