"""``whnode bench cluster``: upstream calls and latency of the network under a Zipf workload.

Starts an in-process cluster on loopback with the sandbox upstream, replays a Zipf request
trace over several freshness windows (short ``max_age``), and prints:

- upstream calls made by the network, against the ideal (the same trace replayed against one
  central cache with the same freshness policy), against a latency-aware ideal (that central
  cache with fills taking the fill latencies measured in the run), against per-node caches
  without the network, and against no cache;
- duplicate fills: two upstream fetches of one dispensary whose freshness windows overlap,
  counted network-wide from every node's record of its fills, by cause (failover, too-old
  join, owner disagreement, expiry during fill), and requests that failed over, by error;
- latency p50/p99 by answer path (hot cache, local store, remote owner, upstream fill) and
  of the fills themselves;
- RPCs and wall time per owner lookup at several network sizes (routing-only nodes).

``--stress N`` runs N CPU-burning processes beside the cluster for the whole run, so that a
busy machine can be reproduced; the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from whnode.service.filllog import UpstreamFetch
from whnode.testing.replay import (
    DUPLICATE_CAUSES,
    Fetch,
    Request,
    central_cache_calls,
    duplicate_fills,
    latency_aware_central_calls,
    per_node_cache_calls,
    zipf_trace,
)

__all__ = ["ClusterRun", "cpu_burners", "load_average", "main"]

HEDGE_OUTCOMES = ("sent", "won", "declined", "resent", "replica_resent")
LAG_PROBE_SECONDS = 0.05


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (``/proc/loadavg``), or "?" where unknown."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@contextlib.contextmanager
def cpu_burners(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` processes that burn a CPU each until the block ends."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield burners
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()


@dataclass(frozen=True, slots=True)
class ClusterRun:
    """What one run of the Zipf workload measured."""

    requests: int
    failures: int
    too_old: int
    """Answers whose record was older than max_age when the request arrived (must be 0)."""
    wall: float
    network: int
    """Upstream fetches made by the network (the nodes' own count)."""
    pages: int
    menu_fetches: int
    """First pages the sandbox served (its own count of menu fetches)."""
    ideal: int
    latency_ideal: int
    per_node: int
    latencies: dict[str, list[float]]
    fill_ms: list[float]
    upstream_ms: list[float]
    reasons: Counter[str]
    duplicates: Counter[str]
    failovers: Counter[str]
    hedges: Counter[str]
    errors: Counter[str]
    owner_rank: Counter[str]
    """Upstream fetches by the filling node's rank among the dispensary's true owners."""
    cpu: float
    """CPU seconds the cluster's process used during the trace (all its threads)."""
    lag_ms: list[float]
    """Event-loop lag samples: how late a 50 ms sleep woke up."""
    owner_lists: Counter[str]
    """Owner lists by how they were made (awaited lookup, reused answer, background)."""


@dataclass(frozen=True, slots=True)
class _Upstream:
    base_url: str
    dispensaries: list[str]
    counts: Callable[[], Awaitable[tuple[int, int]]]
    """HTTP requests (pages) and menu fetches the sandbox served."""


@contextlib.asynccontextmanager
async def _sandbox(args: argparse.Namespace) -> AsyncIterator[_Upstream]:
    """The sandbox upstream: a process of its own (upstream APIs are remote: their work is
    not the nodes'), or with ``--sandbox-in-process`` on the cluster's event loop."""
    if args.sandbox_in_process:
        from whnode.sandbox import SandboxConfig, run_sandbox

        config = SandboxConfig(population=args.dispensaries, max_items=args.max_items)
        async with run_sandbox(config) as sandbox:

            async def local_counts() -> tuple[int, int]:
                return sandbox.calls(), sandbox.menu_fetches()

            yield _Upstream(sandbox.base_url, list(sandbox.dispensaries), local_counts)
        return
    import aiohttp

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "whnode",
        "sandbox",
        "--port",
        "0",
        "--population",
        str(args.dispensaries),
        "--max-items",
        str(args.max_items),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        dispensaries: list[str] = []
        while True:
            line = (await process.stdout.readline()).decode().strip()
            if not line:
                raise RuntimeError("the sandbox process ended before serving")
            if line.startswith("sandbox serving "):
                base_url = line.rsplit(" at ", 1)[1]
                break
            dispensaries.append(line)

        async def remote_counts() -> tuple[int, int]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{base_url}/_sandbox/stats") as response,
            ):
                stats = await response.json()
            return int(stats["requests"]), int(stats["menu_fetches"])

        yield _Upstream(base_url, dispensaries, remote_counts)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _workload(args: argparse.Namespace) -> ClusterRun:
    from whnode.testing.cluster import LocalCluster

    with tempfile.TemporaryDirectory(prefix="whnode-bench-") as directory:
        async with _sandbox(args) as sandbox:
            population = sorted(d for d in sandbox.dispensaries if ":store-" in d)[
                : args.dispensaries
            ]
            trace = zipf_trace(
                population,
                args.requests,
                nodes=args.nodes,
                duration_ms=int(args.duration * 1000),
                exponent=args.zipf,
                seed=args.seed,
            )
            async with LocalCluster(
                args.nodes, Path(directory), sandbox_url=sandbox.base_url
            ) as cluster:
                latencies: dict[str, list[float]] = defaultdict(list)
                failures = 0
                start = time.monotonic()
                semaphore = asyncio.Semaphore(args.concurrency)
                observed: list[Request] = []
                fetches: list[UpstreamFetch] = []
                for node in cluster.nodes:
                    node.service.observe_fills(fetches.append)

                too_old = 0

                async def one(request: Request) -> None:
                    nonlocal failures, too_old
                    delay = start + request.time_ms / 1000 - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    async with semaphore:
                        node = cluster.nodes[request.node]
                        sent = time.monotonic()
                        observed.append(
                            Request(int((sent - start) * 1000), request.dispensary_id, request.node)
                        )
                        arrived_ms = node.service.now_ms()
                        try:
                            answer = await node.service.get_menu(
                                request.dispensary_id, max_age=args.max_age
                            )
                        except Exception:
                            failures += 1
                            return
                        if arrived_ms - answer.record.fetched_at_ms > args.max_age * 1000:
                            too_old += 1
                        latencies[answer.path.value].append((time.monotonic() - sent) * 1000)

                done = 0

                async def progress() -> None:
                    while done < len(trace):
                        await asyncio.sleep(1)
                        print(f"  {done}/{len(trace)} requests", flush=True)

                async def tracked(request: Request) -> None:
                    nonlocal done
                    await one(request)
                    done += 1

                lag_ms: list[float] = []

                async def lag() -> None:
                    while True:
                        before = time.monotonic()
                        await asyncio.sleep(LAG_PROBE_SECONDS)
                        lag_ms.append((time.monotonic() - before - LAG_PROBE_SECONDS) * 1000)

                cpu_before = time.process_time()
                reporter = asyncio.create_task(progress())
                prober = asyncio.create_task(lag())
                await asyncio.gather(*(tracked(request) for request in trace))
                reporter.cancel()
                prober.cancel()
                wall = time.monotonic() - start
                cpu = time.process_time() - cpu_before
                await cluster.wait_idle()
                network_calls = sum(
                    node.service.statistics().upstream_calls for node in cluster.nodes
                )
                errors: Counter[str] = Counter()
                failovers: Counter[str] = Counter()
                hedges: Counter[str] = Counter()
                owner_lists: Counter[str] = Counter()
                for node in cluster.nodes:
                    service_statistics = node.service.statistics()
                    errors.update(service_statistics.errors_by_kind)
                    failovers.update(service_statistics.failovers)
                    hedges.update(service_statistics.hedges)
                    owner_lists.update(service_statistics.owner_lists)
                owner_rank: Counter[str] = Counter()
                for fetch in fetches:
                    true_owners = [bytes(n.node_id) for n in cluster.owners(fetch.dispensary_id)]
                    if fetch.node_id in true_owners:
                        owner_rank[f"owner #{true_owners.index(fetch.node_id) + 1}"] += 1
                    else:
                        owner_rank["not an owner"] += 1
                pages, menu_fetches = await sandbox.counts()
        observed.sort(key=lambda request: request.time_ms)
        max_age_ms = int(args.max_age * 1000)
        fetches.sort(key=lambda fetch: fetch.fetched_at_ms)
        fill_ms = [fetch.duration_ms for fetch in fetches]
        return ClusterRun(
            requests=len(trace),
            failures=failures,
            too_old=too_old,
            wall=wall,
            network=network_calls,
            pages=pages,
            menu_fetches=menu_fetches,
            ideal=central_cache_calls(observed, max_age_ms),
            latency_ideal=latency_aware_central_calls(observed, max_age_ms, fill_ms),
            per_node=per_node_cache_calls(observed, max_age_ms),
            latencies=dict(latencies),
            fill_ms=fill_ms,
            upstream_ms=[fetch.upstream_ms for fetch in fetches],
            reasons=Counter(fetch.reason.value for fetch in fetches),
            duplicates=duplicate_fills(
                (
                    Fetch(f.dispensary_id, f.fetched_at_ms, f.node_id.hex(), f.reason.value)
                    for f in fetches
                ),
                max_age_ms,
            ),
            failovers=failovers,
            hedges=hedges,
            errors=errors,
            owner_rank=owner_rank,
            cpu=cpu,
            lag_ms=lag_ms,
            owner_lists=owner_lists,
        )


async def _lookups(sizes: list[int]) -> list[dict[str, float]]:
    from whnode.bench.cluster_dht import measure_lookups

    rows = []
    for size in sizes:
        result = await measure_lookups(size, routing_only=True)
        rows.append({"nodes": float(size), **{k: float(v) for k, v in result.items()}})
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench cluster", description=__doc__)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--dispensaries", type=int, default=300)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--duration", type=float, default=24.0, help="seconds of trace")
    parser.add_argument("--max-age", type=float, default=6.0, help="freshness window, seconds")
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent")
    parser.add_argument("--max-items", type=int, default=40, help="largest sandbox menu")
    parser.add_argument(
        "--sandbox-in-process",
        action="store_true",
        help="run the sandbox upstream on the cluster's event loop (default: its own process)",
    )
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lookup-sizes", default="20,100,300")
    parser.add_argument("--skip-lookups", action="store_true")
    parser.add_argument(
        "--stress", type=int, default=0, help="CPU-burning processes beside the cluster"
    )
    args = parser.parse_args(argv)

    print(
        f"Zipf workload: {args.nodes} nodes, {args.dispensaries} dispensaries, "
        f"{args.requests} requests over {args.duration:.0f} s, max_age {args.max_age:g} s, "
        f"concurrency {args.concurrency}, {args.stress} CPU burner(s)"
    )
    load_before = load_average()
    with cpu_burners(args.stress):
        run = asyncio.run(_workload(args))
        load_after = load_average()
    _report(run, load_before, load_after)
    if not args.skip_lookups:
        sizes = [int(size) for size in args.lookup_sizes.split(",") if size]
        print("owner lookups (routing-only nodes):")
        for row in asyncio.run(_lookups(sizes)):
            print("  " + "  ".join(f"{key} {value:.2f}" for key, value in row.items()))
    return 0 if run.failures == 0 else 1


def _spread(values: list[float]) -> str:
    return (
        f"n={len(values):>6}  p50 {_percentile(values, 0.5):8.1f}  "
        f"p95 {_percentile(values, 0.95):8.1f}  p99 {_percentile(values, 0.99):8.1f}  "
        f"mean {statistics.fmean(values) if values else float('nan'):8.1f}"
    )


def _report(run: ClusterRun, load_before: str, load_after: str) -> None:
    print()
    print(f"load average        {load_before} (start)  {load_after} (end)")
    print(
        f"requests            {run.requests:>8}  (failed: {run.failures}, "
        f"older than max_age on arrival: {run.too_old})"
    )
    print(
        f"wall time           {run.wall:>8.1f} s  (CPU of the cluster's process {run.cpu:.1f} s, "
        f"{run.cpu / max(run.wall, 1e-9):.0%} of one core)"
    )
    print(f"event-loop lag (ms) {_spread(run.lag_ms)}")
    print("upstream menu fetches:")
    print(f"  no cache          {run.requests:>8}")
    print(f"  per-node caches   {run.per_node:>8}")
    print(
        f"  whnode network    {run.network:>8}  ({run.network / max(run.ideal, 1):.3f}x ideal, "
        f"{run.network / max(run.latency_ideal, 1):.3f}x latency-aware ideal)"
    )
    print(f"  ideal (central)   {run.ideal:>8}")
    print(f"  latency-aware     {run.latency_ideal:>8}  (central, fills as slow as measured)")
    print(f"  sandbox menu fetches {run.menu_fetches}, HTTP requests (pages) {run.pages}")
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(run.reasons.items()))
    print(f"  fills by reason: {reasons or 'none'}")
    ranks = ", ".join(f"{rank} {count}" for rank, count in sorted(run.owner_rank.items()))
    print(f"  fills by the filling node's rank among the true owners: {ranks or 'none'}")
    total = sum(run.duplicates.values())
    print(f"duplicate fills     {total:>8}  (freshness windows overlapping, network-wide)")
    for cause in DUPLICATE_CAUSES:
        print(f"  {cause:<20} {run.duplicates.get(cause, 0):>6}")
    print(f"failovers           {sum(run.failovers.values()):>8}")
    for kind, count in run.failovers.most_common(8):
        print(f"  {kind:<20} {count:>6}")
    hedges = ", ".join(f"{outcome} {run.hedges.get(outcome, 0)}" for outcome in HEDGE_OUTCOMES)
    print(f"hedges to a second owner: {hedges}")
    lists = ", ".join(f"{kind} {count}" for kind, count in sorted(run.owner_lists.items()))
    print(f"owner lists: {lists or 'none'}")
    if run.errors:
        errors = ", ".join(f"{kind} {count}" for kind, count in run.errors.most_common(8))
        print(f"errors: {errors}")
    print("latency by path (ms):")
    for path in ("hot", "store", "owner", "fill", "stale"):
        values = run.latencies.get(path, [])
        if values:
            print(f"  {path:<9} {_spread(values)}")
    print(f"  all       {_spread([v for values in run.latencies.values() for v in values])}")
    print("fills at the owner (ms):")
    print(f"  whole     {_spread(run.fill_ms)}")
    print(f"  upstream  {_spread(run.upstream_ms)}")
