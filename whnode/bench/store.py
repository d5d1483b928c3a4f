"""``whnode bench store``: write and read throughput of the durable store (and the hot cache).

Writes ``--records`` records of random bytes (sizes uniform in [--min-kb, --max-kb]) spread
over ``--dispensaries`` dispensaries into a fresh store in a temporary directory, then reads
them back, each phase once with every operation awaited before the next and once with
``--concurrency`` coroutines at a time. Prints operations per second, MB/s and latency
percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from whnode.store.durable import DEFAULT_READERS, DurableStore
from whnode.store.hot import HotCache
from whnode.store.types import StoredRecord, Synchronous

__all__ = ["main"]

_BLOB_POOL = 64
"""Distinct random payloads generated (records reuse them; SQLite does not compress)."""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What one run measures."""

    records: int
    """Records written per write phase."""
    min_bytes: int
    """Smallest record."""
    max_bytes: int
    """Largest record."""
    dispensaries: int
    """Dispensaries the records are spread over."""
    concurrency: int
    """Coroutines running at once in the concurrent phases."""
    synchronous: Synchronous
    """SQLite synchronous level."""
    readers: int
    """Reader threads of the store."""
    history: int
    """History kept per dispensary."""
    directory: Path | None
    """Where to put the database (a fresh temporary directory when None)."""
    seed: int
    """Seed of the record generator."""


@dataclass(frozen=True, slots=True)
class PhaseResult:
    name: str
    operations: int
    seconds: float
    payload_bytes: int
    latencies: list[float]

    def line(self) -> str:
        rate = self.operations / self.seconds if self.seconds else float("inf")
        megabytes = self.payload_bytes / self.seconds / 1e6 if self.seconds else float("inf")
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1e3 if ordered else 0.0
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3 if ordered else 0.0
        return (
            f"{self.name:<38} {self.operations:>7} ops {rate:>10,.0f} ops/s "
            f"{megabytes:>8.1f} MB/s  p50 {p50:7.3f} ms  p99 {p99:7.3f} ms"
        )


def _parse(argv: Sequence[str]) -> BenchOptions:
    parser = argparse.ArgumentParser(prog="whnode bench store", description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--min-kb", type=float, default=20.0)
    parser.add_argument("--max-kb", type=float, default=60.0)
    parser.add_argument("--dispensaries", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--synchronous", choices=[level.value for level in Synchronous], default="normal"
    )
    parser.add_argument("--readers", type=int, default=DEFAULT_READERS)
    parser.add_argument("--history", type=int, default=48)
    parser.add_argument("--dir", type=Path, default=None, help="database directory (temp)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(list(argv))
    if args.records < 1 or args.dispensaries < 1 or args.concurrency < 1:
        parser.error("--records, --dispensaries and --concurrency must be >= 1")
    if not 0 < args.min_kb <= args.max_kb:
        parser.error("need 0 < --min-kb <= --max-kb")
    return BenchOptions(
        records=args.records,
        min_bytes=int(args.min_kb * 1000),
        max_bytes=int(args.max_kb * 1000),
        dispensaries=args.dispensaries,
        concurrency=args.concurrency,
        synchronous=Synchronous(args.synchronous),
        readers=args.readers,
        history=args.history,
        directory=args.dir,
        seed=args.seed,
    )


def _records(options: BenchOptions, start_ms: int) -> list[StoredRecord]:
    rng = random.Random(options.seed)
    pool = [
        rng.randbytes(rng.randint(options.min_bytes, options.max_bytes)) for _ in range(_BLOB_POOL)
    ]
    return [
        StoredRecord(
            dispensary_id=f"dispensary-{index % options.dispensaries:05d}",
            fetched_at_ms=start_ms + index,
            content_hash=hashlib.sha256(index.to_bytes(8, "big")).digest(),
            data=pool[index % _BLOB_POOL],
        )
        for index in range(options.records)
    ]


async def _sequential(name: str, operations: Sequence[Callable[[], Awaitable[int]]]) -> PhaseResult:
    latencies: list[float] = []
    payload = 0
    began = time.perf_counter()
    for operation in operations:
        started = time.perf_counter()
        payload += await operation()
        latencies.append(time.perf_counter() - started)
    return PhaseResult(name, len(operations), time.perf_counter() - began, payload, latencies)


async def _concurrent(
    name: str, operations: Sequence[Callable[[], Awaitable[int]]], concurrency: int
) -> PhaseResult:
    latencies: list[float] = []
    payload = 0
    iterator = iter(operations)

    async def worker() -> None:
        nonlocal payload
        for operation in iterator:
            started = time.perf_counter()
            size = await operation()
            latencies.append(time.perf_counter() - started)
            payload += size

    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return PhaseResult(name, len(operations), time.perf_counter() - began, payload, latencies)


def _puts(
    store: DurableStore, records: Sequence[StoredRecord]
) -> list[Callable[[], Awaitable[int]]]:
    def put(record: StoredRecord) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            if not await store.put(record):
                raise RuntimeError(f"put of {record.dispensary_id}@{record.fetched_at_ms} refused")
            return record.nbytes

        return run

    return [put(record) for record in records]


def _newest_reads(
    store: DurableStore, options: BenchOptions, count: int, seed: int
) -> list[Callable[[], Awaitable[int]]]:
    rng = random.Random(seed)

    def read(dispensary: str) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            record = await store.newest(dispensary)
            return 0 if record is None else record.nbytes

        return run

    return [read(f"dispensary-{rng.randrange(options.dispensaries):05d}") for _ in range(count)]


async def _write_phase(
    directory: Path, name: str, options: BenchOptions, concurrent: bool
) -> tuple[DurableStore, PhaseResult]:
    records = _records(options, start_ms=1_700_000_000_000)
    store = await DurableStore.open(
        directory / name,
        history_per_dispensary=options.history,
        max_bytes=1 << 42,
        synchronous=options.synchronous,
        readers=options.readers,
    )
    puts = _puts(store, records)
    if concurrent:
        label = f"put ({options.concurrency} concurrent)"
        result = await _concurrent(label, puts, options.concurrency)
    else:
        result = await _sequential("put (each awaited)", puts)
    return store, result


async def _run(options: BenchOptions, directory: Path) -> list[str]:
    lines: list[str] = []
    count = options.records

    store, result = await _write_phase(directory, "sequential.sqlite3", options, False)
    lines.append(result.line())
    try:
        reads = _newest_reads(store, options, count, seed=2)
        lines.append((await _sequential("newest (each awaited)", reads)).line())
    finally:
        await store.aclose()

    store, result = await _write_phase(directory, "concurrent.sqlite3", options, True)
    lines.append(result.line())
    try:
        reads = _newest_reads(store, options, count, seed=3)
        label = f"newest ({options.concurrency} concurrent)"
        lines.append((await _concurrent(label, reads, options.concurrency)).line())
        history_reads = [
            _history_read(store, f"dispensary-{index % options.dispensaries:05d}")
            for index in range(min(count, 2_000))
        ]
        lines.append((await _sequential("history(limit=10) (each awaited)", history_reads)).line())
        held = store.statistics()
        size = await asyncio.to_thread(_disk_bytes, directory, "concurrent.sqlite3")
        lines.append(
            f"store: {held.records} records, {held.bytes / 1e6:.1f} MB of records, "
            f"{size / 1e6:.1f} MB on disk (with WAL)"
        )
    finally:
        await store.aclose()

    lines.append(_hot_line(options))
    return lines


def _disk_bytes(directory: Path, name: str) -> int:
    return sum(path.stat().st_size for path in directory.glob(f"{name}*"))


def _history_read(store: DurableStore, dispensary: str) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        return sum(record.nbytes for record in await store.history(dispensary, 10))

    return run


def _hot_line(options: BenchOptions) -> str:
    records = _records(options, start_ms=1_700_000_000_000)
    cache = HotCache(max(sum(record.nbytes for record in records), 1))
    for record in records:
        cache.put(record)
    rng = random.Random(4)
    keys = [f"dispensary-{rng.randrange(options.dispensaries):05d}" for _ in range(options.records)]
    began = time.perf_counter()
    payload = 0
    for key in keys:
        found = cache.newest(key)
        payload += 0 if found is None else found.nbytes
    elapsed = time.perf_counter() - began
    return PhaseResult(
        "hot cache newest (sync, for reference)", len(keys), elapsed, payload, []
    ).line()


def main(argv: list[str]) -> int:
    """Run the benchmark and print its figures; return the exit status."""
    options = _parse(argv)
    sizes = (options.min_bytes / 1000, options.max_bytes / 1000)
    print(
        f"whnode bench store: {options.records} records of {sizes[0]:g}-{sizes[1]:g} KB over "
        f"{options.dispensaries} dispensaries; synchronous={options.synchronous.value}, "
        f"readers={options.readers}, history={options.history}"
    )
    if options.directory is not None:
        options.directory.mkdir(parents=True, exist_ok=True)
        lines = asyncio.run(_run(options, options.directory))
    else:
        with tempfile.TemporaryDirectory(prefix="whnode-bench-store-") as directory:
            lines = asyncio.run(_run(options, Path(directory)))
    for line in lines:
        print(line)
    return 0
