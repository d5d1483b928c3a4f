"""Replays of a request trace against reference caches, for the cluster benchmark.

A trace is a sequence of requests ``(time_ms, dispensary_id, node_index)`` in time order. The
ideal is one central cache with the same freshness policy (a record is reused while its age
is at most ``max_age``): the fewest upstream calls any cache can make for that trace.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Request", "central_cache_calls", "per_node_cache_calls", "zipf_trace"]


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
