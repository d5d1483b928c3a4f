"""Replays of a request trace against reference caches, for the cluster benchmark.

A trace is a sequence of requests ``(time_ms, dispensary_id, node_index)`` in time order. The
ideal is one central cache with the same freshness policy (a record is reused while its age
is at most ``max_age``): the fewest upstream calls any cache can make for that trace.

The latency-aware ideal is the same central cache whose fills take time (the fill latencies
measured in a run): a request that arrives while a fill of its dispensary runs joins it, and
a record's age counts from the start of its fill (when upstream is asked). A request is
answered by a record that was fresh when the request arrived.

``duplicate_fills`` finds, in the upstream fetches a network made, those that overlap an
earlier fetch's freshness window, and names the cause of each.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Fetch",
    "Request",
    "central_cache_calls",
    "duplicate_fills",
    "latency_aware_central_calls",
    "per_node_cache_calls",
    "zipf_trace",
]


@dataclass(frozen=True, slots=True)
class Request:
    time_ms: int
    dispensary_id: str
    node: int


def _cache_calls(requests: Iterable[tuple[int, str]], max_age_ms: int) -> int:
    fetched: dict[str, int] = {}
    calls = 0
    for time_ms, dispensary_id in requests:
        last = fetched.get(dispensary_id)
        if last is None or time_ms - last > max_age_ms:
            fetched[dispensary_id] = time_ms
            calls += 1
    return calls


def central_cache_calls(trace: Sequence[Request], max_age_ms: int) -> int:
    """Upstream calls made by one central cache serving the whole trace."""
    return _cache_calls(((r.time_ms, r.dispensary_id) for r in trace), max_age_ms)


def per_node_cache_calls(trace: Sequence[Request], max_age_ms: int) -> int:
    """Upstream calls made when every node keeps its own cache and no network exists."""
    return _cache_calls(((r.time_ms, f"{r.node}/{r.dispensary_id}") for r in trace), max_age_ms)


def zipf_choices(
    population: Sequence[str], count: int, *, exponent: float, rng: random.Random
) -> list[str]:
    """``count`` draws from ``population`` with Zipf weights 1/rank**exponent."""
    weights = [1.0 / math.pow(rank, exponent) for rank in range(1, len(population) + 1)]
    return rng.choices(list(population), weights=weights, k=count)


def zipf_trace(
    population: Sequence[str],
    count: int,
    *,
    nodes: int,
    duration_ms: int,
    exponent: float = 1.0,
    seed: int = 1,
) -> list[Request]:
    """A Zipf-distributed trace spread evenly over ``duration_ms`` and over ``nodes``."""
    rng = random.Random(seed)
    chosen = zipf_choices(population, count, exponent=exponent, rng=rng)
    return [
        Request(time_ms=index * duration_ms // count, dispensary_id=d, node=rng.randrange(nodes))
        for index, d in enumerate(chosen)
    ]


def latency_aware_central_calls(
    trace: Sequence[Request], max_age_ms: int, fill_latencies_ms: Sequence[float]
) -> int:
    """Upstream calls of one central cache whose fills take ``fill_latencies_ms`` (used in
    turn, cycling; instantaneous when empty).

    A request finds a record that is fresh at its arrival (age <= ``max_age_ms``), or joins
    a running fill of its dispensary stamped no more than ``max_age_ms`` before its arrival,
    or starts a fill stamped with its arrival time that completes one latency later.
    """
    latencies = itertools.cycle(fill_latencies_ms or [0.0])
    held: dict[str, int] = {}  # dispensary -> stamp of the newest completed record
    running: dict[str, int] = {}  # dispensary -> stamp of its newest running fill
    completions: list[tuple[float, str, int]] = []
    calls = 0
    for request in sorted(trace, key=lambda r: r.time_ms):
        now = request.time_ms
        while completions and completions[0][0] <= now:
            _, done, stamp = heapq.heappop(completions)
            held[done] = max(held.get(done, stamp), stamp)
            if running.get(done) == stamp:
                del running[done]
        dispensary = request.dispensary_id
        if now - held.get(dispensary, -max_age_ms - 1) <= max_age_ms:
            continue
        if now - running.get(dispensary, -max_age_ms - 1) <= max_age_ms:
            continue  # joins the running fill
        calls += 1
        running[dispensary] = now
        heapq.heappush(completions, (now + next(latencies), dispensary, now))
    return calls


@dataclass(frozen=True, slots=True)
class Fetch:
    """One upstream fetch made by a node of a network."""

    dispensary_id: str
    fetched_at_ms: int
    node: str
    reason: str
    """whnode.service.filllog.FillReason value."""


DUPLICATE_CAUSES = ("failover", "too-old join", "owner disagreement", "expiry during fill")


def duplicate_fills(fetches: Iterable[Fetch], max_age_ms: int) -> Counter[str]:
    """Fetches of a dispensary that fall within ``max_age_ms`` of its previous fetch (their
    freshness windows overlap), counted by cause.

    The cause is the later fetch's: a fill after failover (``failover``), a refill by a
    request that joined a fill too old for it (``too-old join``), a fill at another node
    than the previous one (``owner disagreement``: two nodes each took themselves for the
    one to fill), else a fill at the same node (``expiry during fill``: the record it held
    or was filling expired between the request's arrival and its check).
    """
    by_dispensary: dict[str, list[Fetch]] = {}
    for fetch in fetches:
        by_dispensary.setdefault(fetch.dispensary_id, []).append(fetch)
    causes: Counter[str] = Counter()
    for items in by_dispensary.values():
        items.sort(key=lambda fetch: fetch.fetched_at_ms)
        for previous, fetch in itertools.pairwise(items):
            if fetch.fetched_at_ms - previous.fetched_at_ms > max_age_ms:
                continue
            if fetch.reason == "failover":
                causes["failover"] += 1
            elif fetch.reason == "too_old_join":
                causes["too-old join"] += 1
            elif fetch.node != previous.node:
                causes["owner disagreement"] += 1
            else:
                causes["expiry during fill"] += 1
    return causes
