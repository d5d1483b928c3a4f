"""``whnode seed``: the node daemon with ``node.routing_only`` (whnode.seed), its flags
shortcuts for configuration keys and its data directory its own."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence

from whnode.cli.base import ConfigSources, config_sources
from whnode.cli.parsing import Commands
from whnode.config import ENV_PREFIX, Config

SEED_SHORTCUTS = {
    "seeds_file": "node.seeds_file",
    "advertise_host": "seed.public_address",
    "stats_interval": "seed.stats_interval",
    "health_grace": "seed.health_grace",
    "rate": "seed.datagrams_per_source_per_second",
    "burst": "seed.datagram_burst_per_source",
    "rate_per_ip": "seed.datagrams_per_ip_per_second",
    "burst_per_ip": "seed.datagram_burst_per_ip",
}
"""``whnode seed`` flags and the configuration keys they set."""


def seed_sources(args: argparse.Namespace, environ: Mapping[str, str]) -> ConfigSources:
    """The configuration sources of ``whnode seed``: a node's, the seed's shortcuts on top,
    ``--peer`` lines added to ``node.seeds``, and the seed's own default data directory."""
    from whnode.seed import DEFAULT_DATA_DIR

    sources = config_sources(args, environ)
    flags = dict(sources.flags)
    for attribute, key in SEED_SHORTCUTS.items():
        value = getattr(args, attribute, None)
        if value is not None:
            flags[key] = value
    peers = list(flags.get("node.seeds") or ()) + list(getattr(args, "peer", None) or ())
    if peers:
        flags["node.seeds"] = peers
    flags["node.routing_only"] = True  # a seed is a node that routes only (whnode.seed)
    if "node.data_dir" not in flags and f"{ENV_PREFIX}NODE_DATA_DIR" not in environ:
        flags["node.data_dir"] = str(DEFAULT_DATA_DIR)
    return dataclasses.replace(sources, flags=flags)


def seed_config(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """The configuration ``whnode seed ARGV`` runs with (for checking deployment files)."""
    from whnode.cli.main import build_parser

    args = build_parser().parse_args(["seed", *argv])
    return seed_sources(args, environ).build()


def _cmd_seed(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """The node daemon (whnode.daemon) with ``node.routing_only``: one program, one Config."""
    from whnode.daemon import run
    from whnode.logs import configure_logging
    from whnode.sdnotify import Notifier

    config = seed_sources(args, environ).build()
    configure_logging(config.log)
    return run(config, notifier=Notifier(environ.get("NOTIFY_SOCKET")))


def register(commands: Commands) -> None:
    seed = commands.add(
        "seed",
        "run a routing-only bootstrap seed peer: it routes, stores nothing and calls no"
        " upstream; TCP on the DHT's port serves /healthz and /metrics; SIGTERM or Ctrl-C"
        " saves the peer table and exits 0; the data directory defaults to ./whnode-seed-data",
        [
            "whnode seed --host 0.0.0.0 --port 8468 --data-dir /var/lib/whnode-seed"
            " --peer seed2.example.org:8468"
        ],
        parents=[commands.config_logging],
    )
    group = seed.add_argument_group("seed (shortcuts for [seed] and [node] keys)")
    group.add_argument(
        "--peer",
        action="append",
        metavar="SEED",
        help="another seed to join, HOST:PORT optionally followed by its node id as in a seeds"
        " file, e.g. 'seed2.example.org:8468 3a7b...' (node.seeds, repeatable)",
    )
    group.add_argument(
        "--seeds-file", metavar="FILE", help="seeds list of other seeds to join (node.seeds_file)"
    )
    group.add_argument(
        "--advertise-host",
        metavar="ADDRESS",
        help="public address or DNS name shown in the seeds line logged at start-up"
        " (seed.public_address)",
    )
    for flag, key, metavar in (
        ("--stats-interval", "seed.stats_interval", "SECONDS"),
        ("--health-grace", "seed.health_grace", "SECONDS"),
        ("--rate", "seed.datagrams_per_source_per_second", "N"),
        ("--burst", "seed.datagram_burst_per_source", "N"),
        ("--rate-per-ip", "seed.datagrams_per_ip_per_second", "N"),
        ("--burst-per-ip", "seed.datagram_burst_per_ip", "N"),
    ):
        group.add_argument(flag, metavar=metavar, help=f"sets {key}")
    seed.set_defaults(handler=_cmd_seed)
