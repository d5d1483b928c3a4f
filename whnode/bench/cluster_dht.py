"""``whnode bench cluster_dht``: RPCs and wall time per DHT owner lookup as the network grows.

Starts one routing-only seed and N DHT nodes on loopback in this process (joining in
batches), then runs owner lookups for random keys from random nodes, one at a time, with the
owner cache off, and checks every answer against brute force over all node ids. Prints, per
size: join time, routing table size, find_node RPCs per lookup, wall time per lookup and the
fraction of exact answers.

All nodes share one event loop and one CPU, so wall times are an upper bound of what
separate machines on a LAN would see; RPC counts are what a real network would send.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from dataclasses import replace

from whnode.dht import DhtConfig, DhtNode, PublicKey, xor_distance

__all__ = ["main", "measure_lookups"]

HOST = "127.0.0.1"
JOIN_BATCH = 25
"""Nodes joining at the same moment (batches follow each other)."""
OWNERS = 3
"""Owners asked for per lookup (the replication factor r)."""

BENCH_CONFIG = DhtConfig(
    rpc_timeout=2.0,
    lookup_deadline=5.0,
    owner_cache_seconds=0.0,
    maintenance_interval=600.0,
)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measure_lookups(
    n_nodes: int,
    routing_only: bool,
    *,
    lookups: int = 50,
    lookup_width: int | None = None,
    dead_fraction: float = 0.0,
    seed: int = 1,
) -> dict[str, float]:
    """Build an ``n_nodes`` network and measure ``lookups`` owner lookups.

    ``lookup_width`` None keeps DhtConfig's default. ``dead_fraction`` of the nodes are
    stopped after the join without telling anyone (as a crash would): the others still list
    them, and answers are checked against live nodes.

    With ``routing_only`` every node runs as a routing-only seed (no owner role) and the
    lookups are plain node lookups (``find_closest``) for the ``OWNERS`` closest nodes: the
    same crawl, over nodes that cost nothing but routing. Every value is a number.
    """
    rng = random.Random(seed)
    config = replace(BENCH_CONFIG, routing_only=routing_only)
    if lookup_width is not None:
        config = replace(config, lookup_width=lookup_width)
    seed_node = DhtNode(PublicKey(os.urandom(32)), replace(BENCH_CONFIG, routing_only=True))
    nodes = [DhtNode(PublicKey(os.urandom(32)), config) for _ in range(n_nodes)]
    everyone = [seed_node, *nodes]
    try:
        for node in everyone:
            await node.listen(HOST, 0)
        started = time.perf_counter()
        for first in range(0, n_nodes, JOIN_BATCH):
            batch = nodes[first : first + JOIN_BATCH]
            await asyncio.gather(*(node.bootstrap([(HOST, seed_node.port)]) for node in batch))
        join_seconds = time.perf_counter() - started
        join_rpcs = sum(node.statistics().rpcs_sent for node in everyone)
        dead = rng.sample(nodes, round(dead_fraction * n_nodes))
        await asyncio.gather(*(node.aclose() for node in dead))
        nodes = [node for node in nodes if node not in dead]

        candidates = [node.node_id for node in [seed_node, *nodes] if not node.routing_only]
        if routing_only:  # find_closest lists every node, the seed included
            candidates = [node.node_id for node in [seed_node, *nodes]]
        rpcs: list[float] = []
        millis: list[float] = []
        exact = 0
        for _ in range(lookups):
            key = rng.randbytes(20)
            asker = rng.choice(nodes)
            truth = sorted(candidates, key=lambda node_id: xor_distance(node_id, key))
            before = asker.statistics().lookup_rpcs
            started = time.perf_counter()
            if routing_only:
                found = await asker.find_closest(key, OWNERS)
                truth = [node_id for node_id in truth if node_id != asker.node_id]
            else:
                found = await asker.find_owners(key, OWNERS)
            millis.append((time.perf_counter() - started) * 1000)
            rpcs.append(asker.statistics().lookup_rpcs - before)
            exact += [contact.node_id for contact in found] == truth[:OWNERS]
        tables = [node.statistics().table_size for node in nodes]
        return {
            "nodes": n_nodes,
            "routing_only": float(routing_only),
            "lookup_width": config.stop_width,
            "lookups": lookups,
            "dead_fraction": dead_fraction,
            "rpcs_per_lookup": statistics.fmean(rpcs),
            "rpcs_max": max(rpcs),
            "ms_per_lookup": statistics.fmean(millis),
            "ms_p50": _percentile(millis, 0.5),
            "ms_p95": _percentile(millis, 0.95),
            "exact_fraction": exact / lookups,
            "join_seconds": join_seconds,
            "join_rpcs_per_node": join_rpcs / n_nodes,
            "table_size_mean": statistics.fmean(tables),
        }
    finally:
        await asyncio.gather(*(node.aclose() for node in everyone))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench cluster_dht", description=__doc__)
    parser.add_argument("--sizes", default="20,100,300", help="network sizes, comma-separated")
    parser.add_argument("--lookups", type=int, default=50, help="lookups per size")
    parser.add_argument(
        "--widths",
        default="20,8,3",
        help="lookup widths to compare (20 = ksize, the textbook termination; 8 = default)",
    )
    parser.add_argument(
        "--routing-only", action="store_true", help="routing-only nodes, plain node lookups"
    )
    parser.add_argument(
        "--dead", type=float, default=0.0, help="fraction of nodes crashed after the join"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    widths = [int(width) for width in args.widths.split(",") if width]

    kind = "node lookups, routing-only nodes" if args.routing_only else "owner lookups (r=3)"
    dead = f", {args.dead:.0%} of nodes crashed after joining" if args.dead else ""
    print(f"DHT {kind}; {args.lookups} lookups per row, one process on loopback{dead}")
    print(
        f"{'nodes':>6} {'width':>5} {'rpcs/lookup':>11} {'max':>4} {'ms/lookup':>9} "
        f"{'p95 ms':>7} {'exact':>6} {'join s':>7} {'join rpcs/node':>14} {'table':>6}"
    )
    for size in sizes:
        for width in widths:
            row = asyncio.run(
                measure_lookups(
                    size,
                    args.routing_only,
                    lookups=args.lookups,
                    lookup_width=width,
                    dead_fraction=args.dead,
                    seed=args.seed,
                )
            )
            print(
                f"{size:>6} {width:>5} {row['rpcs_per_lookup']:>11.1f} {row['rpcs_max']:>4.0f} "
                f"{row['ms_per_lookup']:>9.2f} {row['ms_p95']:>7.2f} "
                f"{row['exact_fraction']:>6.0%} {row['join_seconds']:>7.2f} "
                f"{row['join_rpcs_per_node']:>14.1f} {row['table_size_mean']:>6.1f}"
            )
    return 0
