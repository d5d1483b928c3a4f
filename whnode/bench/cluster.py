"""``whnode bench cluster``: upstream calls and latency of the network under a Zipf workload.

Starts an in-process cluster on loopback with the sandbox upstream, replays a Zipf request
trace over several freshness windows (short ``max_age``), and prints:

- upstream calls made by the network, against the ideal (the same trace replayed against one
  central cache with the same freshness policy), against per-node caches without the network,
  and against no cache;
- latency p50/p99 by answer path (hot cache, local store, remote owner, upstream fill);
- RPCs and wall time per owner lookup at several network sizes (routing-only nodes).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from whnode.testing.replay import (
    Request,
    central_cache_calls,
    per_node_cache_calls,
    zipf_trace,
)

__all__ = ["main"]


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def _workload(args: argparse.Namespace) -> dict[str, object]:
    from whnode.sandbox import SandboxConfig, run_sandbox
    from whnode.testing.cluster import LocalCluster

    with tempfile.TemporaryDirectory(prefix="whnode-bench-") as directory:
        config = SandboxConfig(population=args.dispensaries, max_items=args.max_items)
        async with run_sandbox(config) as sandbox:
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

                async def one(request: Request) -> None:
                    nonlocal failures
                    delay = start + request.time_ms / 1000 - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    async with semaphore:
                        node = cluster.nodes[request.node]
                        sent = time.monotonic()
                        observed.append(
                            Request(int((sent - start) * 1000), request.dispensary_id, request.node)
                        )
                        try:
                            answer = await node.service.get_menu(
                                request.dispensary_id, max_age=args.max_age
                            )
                        except Exception:
                            failures += 1
                            return
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

                reporter = asyncio.create_task(progress())
                await asyncio.gather(*(tracked(request) for request in trace))
                reporter.cancel()
                wall = time.monotonic() - start
                await cluster.wait_idle()
                network_calls = sum(
                    node.service.statistics().upstream_calls for node in cluster.nodes
                )
                pages = sandbox.calls()
        observed.sort(key=lambda request: request.time_ms)
        max_age_ms = int(args.max_age * 1000)
        return {
            "requests": len(trace),
            "failures": failures,
            "wall": wall,
            "network": network_calls,
            "pages": pages,
            "ideal": central_cache_calls(observed, max_age_ms),
            "per_node": per_node_cache_calls(observed, max_age_ms),
            "latencies": dict(latencies),
        }


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
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lookup-sizes", default="20,100,300")
    parser.add_argument("--skip-lookups", action="store_true")
    args = parser.parse_args(argv)

    print(
        f"Zipf workload: {args.nodes} nodes, {args.dispensaries} dispensaries, "
        f"{args.requests} requests over {args.duration:.0f} s, max_age {args.max_age:.0f} s"
    )
    result = asyncio.run(_workload(args))
    ideal = int(result["ideal"])  # type: ignore[call-overload]
    network = int(result["network"])  # type: ignore[call-overload]
    print()
    print(f"requests            {result['requests']:>8}  (failed: {result['failures']})")
    print(f"wall time           {float(result['wall']):>8.1f} s")  # type: ignore[arg-type]
    print("upstream menu fetches:")
    print(f"  no cache          {result['requests']:>8}")
    print(f"  per-node caches   {result['per_node']:>8}")
    print(f"  whnode network    {network:>8}  ({network / max(ideal, 1):.3f}x ideal)")
    print(f"  ideal (central)   {ideal:>8}")
    print(f"  sandbox HTTP requests (pages): {result['pages']}")
    print("latency by path (ms):")
    latencies: dict[str, list[float]] = result["latencies"]  # type: ignore[assignment]
    for path in ("hot", "store", "owner", "fill", "stale"):
        values = latencies.get(path, [])
        if values:
            print(
                f"  {path:<6} n={len(values):>6}  p50 {_percentile(values, 0.5):7.2f}  "
                f"p99 {_percentile(values, 0.99):7.2f}  mean {statistics.fmean(values):7.2f}"
            )
    if not args.skip_lookups:
        sizes = [int(size) for size in args.lookup_sizes.split(",") if size]
        print("owner lookups (routing-only nodes):")
        for row in asyncio.run(_lookups(sizes)):
            print("  " + "  ".join(f"{key} {value:.2f}" for key, value in row.items()))
    return 0 if result["failures"] == 0 else 1
