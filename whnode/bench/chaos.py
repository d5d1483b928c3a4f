"""``whnode bench chaos``: the network under churn, crowded joins, kill -9 and bad links.

Scenarios (``--scenarios``, comma-separated; all by default):

- ``churn``: N full nodes in this process (``whnode.testing.LocalCluster``, real sockets on
  loopback, the sandbox upstream), D dispensaries filled, then a fraction of the nodes killed
  abruptly (every socket closed at once, nothing drained or handed off). A request stream
  goes on from the survivors; printed: the share of dispensaries answered without an
  upstream fetch, upstream fetches meanwhile, the time until every request succeeds again,
  and the recovery curve (latency percentiles per second, dead contacts still in the live
  nodes' routing tables).
- ``joins``: N DHT nodes joining at the same moment through one routing-only seed; after a
  wait, how many are isolated (an empty routing table, or known to no other node) and
  whether owner lookups from random nodes are exact.
- ``kill9``: a real node process (``whnode run``) killed with SIGKILL again and again while
  it fills, answers puts and replicates; after each restart its SQLite store must pass
  ``PRAGMA integrity_check`` and hold every record it acknowledged (``whnode.bench.kill9``).
- ``netem`` and ``partition``: node processes in network namespaces with delay, jitter and
  loss between them, and a partition into two halves that heals (``whnode.bench.netns``).

``--stress N`` runs N CPU-burning processes beside every scenario. Every option scales a
scenario down for a quick look; the tests run small versions of each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from whnode.bench.cluster import cpu_burners, load_average
from whnode.bench.kill9 import Kill9Options, print_kill9, run_kill9
from whnode.bench.netns import (
    NetemOptions,
    namespaces_unavailable,
    print_netem,
    print_partition,
    run_network_scenarios,
)
from whnode.config import FreshnessConfig, NodeConfig
from whnode.dht import DhtConfig, DhtNode, PublicKey, xor_distance

if TYPE_CHECKING:
    from whnode.node import Node

__all__ = [
    "ChurnOptions",
    "ChurnResult",
    "JoinOptions",
    "JoinResult",
    "Second",
    "main",
    "run_churn",
    "run_joins",
]

HOST = "127.0.0.1"
RECOVERED_P95_MS = 500.0
"""The latency goal after a crash: p95 under this, every second from then on."""
FRESH_SECONDS = 3600.0
"""Freshness lifetime of every record in the churn scenario (longer than any run)."""
SCENARIOS = ("churn", "joins", "kill9", "netem", "partition")


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------------------------
# Churn


@dataclass(frozen=True, slots=True)
class ChurnOptions:
    nodes: int = 100
    dispensaries: int = 300
    kill_fraction: float = 0.3
    duration: float = 45.0
    """Seconds of requests after the kill."""
    rate: float = 20.0
    """Requests per second after the kill (each from a random survivor, for a random
    dispensary; every dispensary is asked once in the first D/rate seconds)."""
    replication: int = NodeConfig().replication
    max_items: int = 40
    seed: int = 1
    rpc_timeout: float = 2.0
    """The DHT's RPC timeout (2 s is the default of a production node)."""


@dataclass(frozen=True, slots=True)
class Second:
    """One second of the recovery curve."""

    second: int
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    dead_in_tables: int
    """Table entries of live nodes naming a killed node, at the end of the second."""


@dataclass(slots=True)
class ChurnResult:
    nodes: int
    killed: int
    dispensaries: int
    join_seconds: float
    fill_seconds: float
    refilled: int
    """Dispensaries fetched upstream again after the kill."""
    orphaned: int
    """Dispensaries whose every owner (the ``replication`` closest nodes) was killed."""
    refilled_with_owner_alive: int
    """Dispensaries fetched again although one of their owners survived (should be 0)."""
    copies_min: int
    """Fewest stores holding a dispensary's record before the kill."""
    copies_median: float
    lost: int
    """Dispensaries whose every stored copy was on a killed node."""
    refilled_with_copy_alive: int
    """Dispensaries fetched again although a live node stored a copy."""
    upstream_after: int
    """Upstream menu fetches after the kill (all dispensaries)."""
    requests: int
    failures: int
    last_failure: float | None
    """Seconds after the kill of the last failed request (None: none failed)."""
    recovered: float | None
    """Seconds after the kill from which every second's p95 stays under RECOVERED_P95_MS."""
    dead_entries_at_kill: int
    fill_failures: int
    """Fill requests (before the kill) that failed and were asked again."""
    curve: list[Second] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def share_without_upstream(self) -> float:
        return 1 - self.refilled / self.dispensaries


async def run_churn(options: ChurnOptions, directory: Path) -> ChurnResult:
    from whnode.sandbox import SandboxConfig, run_sandbox
    from whnode.testing.cluster import LocalCluster

    rng = random.Random(options.seed)
    config = SandboxConfig(population=options.dispensaries, max_items=options.max_items)
    async with run_sandbox(config) as sandbox:
        population = sorted(d for d in sandbox.dispensaries if ":store-" in d)
        population = population[: options.dispensaries]
        started = time.monotonic()
        async with LocalCluster(
            options.nodes,
            directory,
            sandbox_url=sandbox.base_url,
            replication=options.replication,
            node={"rpc_timeout": options.rpc_timeout, "lookup_deadline": 5.0},
            # Records stay fresh for the whole run, however long the fill phase takes on a
            # busy machine: a dispensary fetched again after the kill lost its copies (the
            # default heuristic gives a new menu 60 s, and a slow fill phase let the first
            # records expire during the run, counted as fetched again).
            freshness=FreshnessConfig(min_ttl=FRESH_SECONDS, default_ttl=FRESH_SECONDS),
        ) as cluster:
            join_seconds = time.monotonic() - started
            started = time.monotonic()
            gate = asyncio.Semaphore(16)

            fill_failures = 0

            async def fill(dispensary_id: str) -> None:
                nonlocal fill_failures
                async with gate:
                    for _ in range(3):  # a busy machine may time a fill out: ask again
                        node = cluster.nodes[rng.randrange(1, len(cluster.nodes))]
                        try:
                            await node.service.get_menu(dispensary_id)
                            return
                        except Exception:
                            fill_failures += 1

            await asyncio.gather(*(fill(d) for d in population))
            await cluster.wait_idle()
            fill_seconds = time.monotonic() - started

            victims = rng.sample(
                range(1, options.nodes), round(options.kill_fraction * options.nodes)
            )
            killed_ids = {bytes(cluster.nodes[index].node_id) for index in victims}
            orphaned = {
                d
                for d in population
                if all(
                    bytes(owner.node_id) in killed_ids
                    for owner in cluster.owners(d, options.replication)
                )
            }
            # Where the copies are before the kill (stores only; a requester's hot cache
            # is not counted): lost copies, not lookups that miss them, bound the share.
            holders = await _holders(cluster.live, population)
            copies = sorted(len(nodes) for nodes in holders.values())
            lost = {d for d, nodes in holders.items() if nodes <= killed_ids}
            before = {d: sandbox.menu_fetches(d) for d in population}
            fetches_before = sandbox.menu_fetches()
            await cluster.crash_nodes(victims)
            kill_time = time.monotonic()
            survivors = cluster.live

            def dead_entries() -> int:
                return sum(
                    1
                    for node in survivors
                    for contact in node.dht.contacts()
                    if contact.node_id in killed_ids
                )

            dead_at_kill = dead_entries()
            order = rng.sample(population, len(population))
            total = int(options.duration * options.rate)
            plan = order + [rng.choice(population) for _ in range(max(0, total - len(order)))]
            outcomes: list[tuple[float, float, bool]] = []
            errors: Counter[str] = Counter()
            samples: dict[int, int] = {}

            async def one(offset: float, dispensary_id: str) -> None:
                await asyncio.sleep(max(0.0, kill_time + offset - time.monotonic()))
                node = rng.choice(survivors)
                sent = time.monotonic()
                ok = True
                try:
                    await node.service.get_menu(dispensary_id)
                except Exception as exc:
                    ok = False
                    errors[type(exc).__name__] += 1
                outcomes.append((sent - kill_time, time.monotonic() - sent, ok))

            async def sampler() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    samples[int(time.monotonic() - kill_time)] = dead_entries()

            watcher = asyncio.create_task(sampler())
            await asyncio.gather(*(one(index / options.rate, d) for index, d in enumerate(plan)))
            watcher.cancel()
            refetched = {d for d in population if sandbox.menu_fetches(d) > before[d]}
            upstream_after = sandbox.menu_fetches() - fetches_before
    curve = _curve(outcomes, samples)
    failures = [at for at, _, ok in outcomes if not ok]
    return ChurnResult(
        nodes=options.nodes,
        killed=len(victims),
        dispensaries=len(population),
        join_seconds=join_seconds,
        fill_seconds=fill_seconds,
        refilled=len(refetched),
        orphaned=len(orphaned),
        refilled_with_owner_alive=len(refetched - orphaned),
        copies_min=copies[0] if copies else 0,
        copies_median=statistics.median(copies) if copies else 0.0,
        lost=len(lost),
        refilled_with_copy_alive=len(refetched - lost),
        upstream_after=upstream_after,
        requests=len(outcomes),
        failures=len(failures),
        last_failure=max(failures) if failures else None,
        recovered=_recovered(curve),
        dead_entries_at_kill=dead_at_kill,
        fill_failures=fill_failures,
        curve=curve,
        errors=errors,
    )


async def _holders(nodes: Sequence[Node], population: Sequence[str]) -> dict[str, set[bytes]]:
    """The ids of the nodes whose store holds a record of each dispensary."""
    holders: dict[str, set[bytes]] = {d: set() for d in population}
    for node in nodes:
        for d in population:
            if await node.store.newest(d) is not None:
                holders[d].add(bytes(node.node_id))
    return holders


def _curve(outcomes: list[tuple[float, float, bool]], samples: dict[int, int]) -> list[Second]:
    by_second: dict[int, list[tuple[float, bool]]] = {}
    for at, latency, ok in outcomes:
        by_second.setdefault(int(at), []).append((latency * 1000, ok))
    curve = []
    last_dead = 0
    for second in range(max(by_second, default=-1) + 1):
        items = by_second.get(second, [])
        latencies = [latency for latency, _ in items]
        last_dead = samples.get(second + 1, last_dead)
        curve.append(
            Second(
                second=second,
                requests=len(items),
                failures=sum(1 for _, ok in items if not ok),
                p50_ms=percentile(latencies, 0.5),
                p95_ms=percentile(latencies, 0.95),
                max_ms=max(latencies, default=float("nan")),
                dead_in_tables=last_dead,
            )
        )
    return curve


def _recovered(curve: list[Second]) -> float | None:
    """The first second from which every later second has p95 < goal and no failure."""
    recovered: float | None = None
    for point in curve:
        good = point.failures == 0 and (not point.requests or point.p95_ms < RECOVERED_P95_MS)
        if good and recovered is None:
            recovered = float(point.second)
        elif not good:
            recovered = None
    return recovered


def print_churn(result: ChurnResult, options: ChurnOptions) -> None:
    print(
        f"churn: {result.nodes} nodes (joined in {result.join_seconds:.1f} s), "
        f"{result.dispensaries} dispensaries filled in {result.fill_seconds:.1f} s "
        f"({result.fill_failures} fill requests failed and were asked again), "
        f"replication {options.replication}, rpc_timeout {options.rpc_timeout:g} s; "
        f"{result.killed} nodes killed abruptly"
    )
    share = result.share_without_upstream
    print(
        f"  answered without upstream   {share:.2%} of dispensaries "
        f"({result.refilled} fetched again; goal >= 99.9%)"
    )
    print(
        f"  all owners killed           {result.orphaned} dispensaries (the bound: with r owners "
        f"each, a share of about {options.kill_fraction:.0%}^r loses every copy); "
        f"fetched again with an owner alive: {result.refilled_with_owner_alive}"
    )
    print(
        f"  copies before the kill      {result.copies_min} at least, median"
        f" {result.copies_median:g} (stores); every copy killed: {result.lost} dispensaries;"
        f" fetched again with a copy alive: {result.refilled_with_copy_alive}"
    )
    print(f"  upstream fetches after kill {result.upstream_after}")
    print(
        f"  requests after kill         {result.requests} at {options.rate:g}/s, "
        f"{result.failures} failed {dict(result.errors) if result.errors else ''}"
    )
    last = "none failed" if result.last_failure is None else f"{result.last_failure:.1f} s"
    print(f"  last failed request         {last} after the kill")
    recovered = "never" if result.recovered is None else f"{result.recovered:.0f} s"
    print(
        f"  p95 under {RECOVERED_P95_MS:.0f} ms for good   from {recovered} after the kill "
        "(goal <= 15 s)"
    )
    print(f"  dead contacts in live tables: {result.dead_entries_at_kill} at the kill")
    print("  second  requests  failed   p50 ms   p95 ms   max ms  dead in tables")
    for point in result.curve:
        print(
            f"  {point.second:6d}  {point.requests:8d}  {point.failures:6d}  "
            f"{point.p50_ms:7.0f}  {point.p95_ms:7.0f}  {point.max_ms:7.0f}  "
            f"{point.dead_in_tables:14d}"
        )


# ---------------------------------------------------------------------------------------------
# Joins


@dataclass(frozen=True, slots=True)
class JoinOptions:
    nodes: int = 200
    wait: float = 30.0
    """Seconds after the joins start at which isolation is judged."""
    lookups: int = 40
    seed: int = 1


@dataclass(frozen=True, slots=True)
class JoinResult:
    nodes: int
    join_seconds: float
    """Until the last bootstrap() returned."""
    empty_tables: int
    unknown: int
    """Nodes that no other node (the seed included) has in its routing table."""
    isolated: int
    """Nodes with an empty table or unknown to every other node."""
    exact_lookups: int
    lookups: int
    table_median: float


JOIN_CONFIG = DhtConfig(rpc_timeout=2.0, lookup_deadline=5.0, owner_cache_seconds=0.0)


async def run_joins(options: JoinOptions) -> JoinResult:
    rng = random.Random(options.seed)
    seed = DhtNode(PublicKey(os.urandom(32)), replace(JOIN_CONFIG, routing_only=True))
    nodes = [DhtNode(PublicKey(os.urandom(32)), JOIN_CONFIG) for _ in range(options.nodes)]
    started = time.monotonic()
    try:
        await seed.listen(HOST, 0)
        for node in nodes:
            await node.listen(HOST, 0)
        await asyncio.gather(*(node.bootstrap([(HOST, seed.port)]) for node in nodes))
        join_seconds = time.monotonic() - started
        await asyncio.sleep(max(0.0, started + options.wait - time.monotonic()))
        known: set[bytes] = set()
        for holder in [seed, *nodes]:
            known.update(contact.node_id for contact in holder.contacts())
        empty = {node.node_id for node in nodes if not node.contacts()}
        unknown = {node.node_id for node in nodes if node.node_id not in known}
        exact = 0
        for _ in range(options.lookups):
            key = os.urandom(20)
            asker = rng.choice(nodes)
            found = await asker.find_owners(key, 3)
            truth = sorted(nodes, key=lambda node: xor_distance(node.node_id, key))[:3]
            exact += [c.node_id for c in found] == [node.node_id for node in truth]
        return JoinResult(
            nodes=options.nodes,
            join_seconds=join_seconds,
            empty_tables=len(empty),
            unknown=len(unknown),
            isolated=len(empty | unknown),
            exact_lookups=exact,
            lookups=options.lookups,
            table_median=statistics.median(len(node.contacts()) for node in nodes),
        )
    finally:
        await asyncio.gather(*(node.aclose() for node in [*nodes, seed]), return_exceptions=True)


def print_joins(result: JoinResult) -> None:
    print(
        f"joins: {result.nodes} nodes joining at once through one seed "
        f"(all bootstrap() calls returned after {result.join_seconds:.1f} s)"
    )
    print(
        f"  isolated after the wait     {result.isolated} (goal 0): "
        f"{result.empty_tables} with an empty table, {result.unknown} known to nobody"
    )
    print(f"  routing table size (median) {result.table_median:.0f}")
    print(f"  exact owner lookups         {result.exact_lookups}/{result.lookups}")


# ---------------------------------------------------------------------------------------------
# Command


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench chaos", description=__doc__)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--stress", type=int, default=0, help="CPU-burning processes beside it")
    parser.add_argument("--seed", type=int, default=1)
    churn = parser.add_argument_group("churn")
    churn.add_argument("--nodes", type=int, default=100)
    churn.add_argument("--dispensaries", type=int, default=300)
    churn.add_argument("--kill-fraction", type=float, default=0.3)
    churn.add_argument("--duration", type=float, default=45.0, help="seconds after the kill")
    churn.add_argument("--rate", type=float, default=20.0, help="requests/s after the kill")
    churn.add_argument("--replication", type=int, default=NodeConfig().replication)
    churn.add_argument("--rpc-timeout", type=float, default=2.0)
    joins = parser.add_argument_group("joins")
    joins.add_argument("--join-nodes", type=int, default=200)
    joins.add_argument("--join-wait", type=float, default=30.0)
    kill9 = parser.add_argument_group("kill9")
    kill9.add_argument("--cycles", type=int, default=100)
    network = parser.add_argument_group("netem and partition (network namespaces)")
    network.add_argument("--ns-nodes", type=int, default=8)
    network.add_argument("--ns-dispensaries", type=int, default=40)
    network.add_argument("--ns-requests", type=int, default=400)
    network.add_argument("--ns-duration", type=float, default=40.0)
    network.add_argument("--delay-ms", type=float, default=100.0)
    network.add_argument("--jitter-ms", type=float, default=20.0)
    network.add_argument("--loss", type=float, default=0.02)
    network.add_argument("--partition-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    print(f"load average before: {load_average()}; {args.stress} CPU burner(s)")
    with cpu_burners(args.stress):
        if "churn" in chosen:
            options = ChurnOptions(
                nodes=args.nodes,
                dispensaries=args.dispensaries,
                kill_fraction=args.kill_fraction,
                duration=args.duration,
                rate=args.rate,
                replication=args.replication,
                seed=args.seed,
                rpc_timeout=args.rpc_timeout,
            )
            with tempfile.TemporaryDirectory(prefix="whnode-chaos-") as directory:
                result = asyncio.run(run_churn(options, Path(directory)))
            print_churn(result, options)
            print(f"  load average after: {load_average()}")
        if "joins" in chosen:
            joined = asyncio.run(
                run_joins(JoinOptions(nodes=args.join_nodes, wait=args.join_wait, seed=args.seed))
            )
            print_joins(joined)
            print(f"  load average after: {load_average()}")
        if "kill9" in chosen:
            with tempfile.TemporaryDirectory(prefix="whnode-kill9-") as directory:
                killed = asyncio.run(
                    run_kill9(
                        Kill9Options(cycles=args.cycles, seed=args.seed),
                        Path(directory),
                        environ=dict(os.environ),
                    )
                )
            print_kill9(killed)
            print(f"  load average after: {load_average()}")
        wanted = {"netem", "partition"} & set(chosen)
        if wanted:
            reason = namespaces_unavailable()
            if reason is not None:
                print(f"netem, partition: not run: {reason}")
                return 1
            network_options = NetemOptions(
                nodes=args.ns_nodes,
                dispensaries=args.ns_dispensaries,
                requests=args.ns_requests,
                duration=args.ns_duration,
                delay_ms=args.delay_ms,
                jitter_ms=args.jitter_ms,
                loss=args.loss,
                partition_seconds=args.partition_seconds,
                seed=args.seed,
            )
            with tempfile.TemporaryDirectory(prefix="whnode-netns-") as directory:
                netem, partition = asyncio.run(
                    run_network_scenarios(
                        network_options,
                        Path(directory),
                        netem="netem" in wanted,
                        partition="partition" in wanted,
                    )
                )
            if netem is not None:
                print_netem(netem, network_options)
            if partition is not None:
                print_partition(partition)
            print(f"  load average after: {load_average()}")
    return 0
