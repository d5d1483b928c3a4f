"""``whnode demo``: a local network of real processes and a workload."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from whnode.cli.parsing import Commands, positive_int
from whnode.config import ENV_PREFIX


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


def register(commands: Commands) -> None:
    demo = commands.add(
        "demo",
        "start a local network of real processes (seed, five nodes, sandbox) and run a workload",
        ["whnode demo", "whnode demo --once --requests 200"],
    )
    demo.add_argument("--once", action="store_true", help="run a short workload and exit")
    demo.add_argument("--nodes", type=positive_int, default=5, help="nodes to start")
    demo.add_argument(
        "--requests", type=positive_int, default=None, help="requests in the workload"
    )
    demo.add_argument(
        "--dispensaries", type=positive_int, default=None, help="sandbox dispensaries"
    )
    demo.add_argument(
        "--concurrency", type=positive_int, default=16, help="requests in flight at once"
    )
    demo.set_defaults(handler=_cmd_demo)
