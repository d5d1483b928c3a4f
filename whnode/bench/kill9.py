"""kill -9 cycles: a node process killed again and again while it fills, stores and replicates.

A seed, three nodes and the sandbox run as real processes (``whnode.demo.LocalNetwork``). A
load of public requests (short ``max_age``, so that owners fill again and replicate) goes to
every node, and signed records are put to the victim directly (``PUT /peer/v1/records``;
the nodes run the allowlist trust policy with the bench's key and their own on it).
At a random moment the victim is killed with SIGKILL; then, before it is started again on
the same data directory:

- its SQLite store must pass ``PRAGMA integrity_check``;
- every record it acknowledged must be in the store: a put it answered 201 or 200, and a
  public answer it served from its store (``store``) or from a fill of its own (``fill``
  with a record it signed: an owner stores a record before it answers with it; a record it
  only relayed from another owner is kept in memory, and is not counted);
- none of its parse-pool processes may outlive it (checked by pid within a few seconds).

Then it restarts (same identity, port and data directory) and the next cycle begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from whnode.demo import LocalNetwork
from whnode.identity import load_or_create_identity
from whnode.record.keys import SigningKey
from whnode.record.signed import sign_record
from whnode.testing.factories import make_menu
from whnode.testing.processes import descendants, living
from whnode.upstream.pool import package_menu

__all__ = ["Kill9Options", "Kill9Result", "print_kill9", "run_kill9"]

CHILD_EXIT_DEADLINE = 5.0
"""Seconds a killed node's pool processes get to exit."""
PEER_PREFIX = "/peer/v1"
COSE_TYPE = "application/cose"


@dataclass(frozen=True, slots=True)
class Kill9Options:
    cycles: int = 100
    dispensaries: int = 60
    max_age: float = 2.0
    """Freshness asked by the public load: short, so that fills and replication go on."""
    min_run: float = 0.3
    max_run: float = 1.5
    """Seconds of load before each kill, drawn uniformly."""
    lanes: int = 6
    """Concurrent request loops (public gets on every node, puts to the victim)."""
    seed: int = 1


@dataclass(slots=True)
class Kill9Result:
    cycles: int = 0
    integrity_failures: list[str] = field(default_factory=list)
    acknowledged: int = 0
    """Records the victim acknowledged over all cycles (puts and fill/store answers)."""
    puts_acknowledged: int = 0
    served_acknowledged: int = 0
    lost: list[tuple[str, int]] = field(default_factory=list)
    """Acknowledged (dispensary, fetched_at_ms) missing from the store after a kill."""
    pool_processes_seen: int = 0
    """The victim's child processes (fork server, workers, resource tracker) at the kills."""
    leftover_processes: int = 0
    """Pool processes of the victim still running CHILD_EXIT_DEADLINE after a kill."""
    restart_seconds: list[float] = field(default_factory=list)
    requests: int = 0
    request_failures: int = 0
    wall: float = 0.0


def _signed_record(key: SigningKey, dispensary_id: str, seed: int) -> tuple[bytes, int]:
    fetched_at_ms = int(time.time() * 1000)
    parsed = package_menu(
        make_menu(dispensary_id, n_products=12, seed=seed, fetched_at_ms=fetched_at_ms)
    )
    record = sign_record(
        payload=parsed.payload,
        dispensary_id=dispensary_id,
        fetched_at_ms=fetched_at_ms,
        content_hash=parsed.content_hash,
        signing_key=key,
    )
    return record.encoded, fetched_at_ms


def check_store(path: Path) -> tuple[str, set[tuple[str, int]]]:
    """``PRAGMA integrity_check`` of the store file and every (dispensary, fetched_at_ms) in
    it, read by a connection of our own while no node has it open."""
    connection = sqlite3.connect(path, timeout=5.0)
    try:
        verdict = "; ".join(row[0] for row in connection.execute("PRAGMA integrity_check"))
        rows = connection.execute("SELECT dispensary_id, fetched_at_ms FROM snapshots")
        return verdict, {(str(d), int(t)) for d, t in rows}
    finally:
        connection.close()


async def run_kill9(options: Kill9Options, root: Path, *, environ: dict[str, str]) -> Kill9Result:
    rng = random.Random(options.seed)
    key = SigningKey.generate()
    result = Kill9Result()
    started = time.monotonic()
    # The allowlist trust policy with the nodes' keys and the bench's own: the bench's puts
    # are records of a trusted publisher (under the open policy a put is kept only from an
    # owner of the dispensary, which the bench is not).
    publishers = [bytes(key.public_key).hex()]
    for index in range(3):
        node_key = await asyncio.to_thread(load_or_create_identity, root / f"node{index}")
        publishers.append(bytes(node_key.public_key).hex())
    trust = {"mode": "allowlist", "allowlist": publishers}
    async with LocalNetwork(
        root, environ=environ, dispensaries=options.dispensaries, node_settings={"trust": trust}
    ) as network:
        await network.start(3)
        await network.wait_meshed(timeout=20)
        victim = next(node for node in network.nodes if node.name == "node0")
        victim_key = publishers[1]
        assert victim.data_dir is not None
        store_path = victim.data_dir / "store.sqlite3"
        timeout = aiohttp.ClientTimeout(total=10)
        put_serial = 0

        async def lane(index: int, acknowledged: set[tuple[str, int]], stop: asyncio.Event) -> None:
            nonlocal put_serial
            while not stop.is_set():
                if index % 3 == 0:
                    put_serial += 1
                    dispensary_id = f"weedmaps:kill9-{options.seed}-{put_serial}"
                    data, fetched_at_ms = _signed_record(key, dispensary_id, put_serial)
                    url = f"{victim.url}{PEER_PREFIX}/records/{dispensary_id}"
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with network.session.put(
                            url, data=data, headers={"Content-Type": COSE_TYPE}, timeout=timeout
                        ) as response:
                            await response.read()
                            if response.status in (200, 201):
                                acknowledged.add((dispensary_id, fetched_at_ms))
                                result.puts_acknowledged += 1
                    continue
                node = victim if rng.random() < 0.5 else rng.choice(network.nodes)
                dispensary_id = rng.choice(network.dispensaries)
                url = f"{node.url}/v1/menus/{dispensary_id}?max_age={options.max_age:g}"
                result.requests += 1
                try:
                    async with network.session.get(url, timeout=timeout) as response:
                        body = await response.json() if response.status == 200 else None
                        path = response.headers.get("X-Whnode-Path", "")
                        publisher = response.headers.get("X-Whnode-Publisher", "")
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    result.request_failures += 1
                    continue
                if body is None:
                    result.request_failures += 1
                    continue
                # "store": from the victim's own store; "fill": a fill somewhere, the
                # victim's own when the record is signed with its key (stored before the answer)
                own = path == "store" or (path == "fill" and publisher == victim_key)
                if node is victim and own:
                    acknowledged.add((dispensary_id, int(body["fetched_at_ms"])))
                    result.served_acknowledged += 1

        for _ in range(options.cycles):
            acknowledged: set[tuple[str, int]] = set()
            stop = asyncio.Event()
            lanes = [
                asyncio.create_task(lane(index, acknowledged, stop))
                for index in range(options.lanes)
            ]
            await asyncio.sleep(rng.uniform(options.min_run, options.max_run))
            assert victim.process is not None
            pool = [pid for pid, _ in descendants(victim.process.pid)]
            result.pool_processes_seen += len(pool)
            os.kill(victim.process.pid, signal.SIGKILL)
            await victim.process.wait()
            stop.set()
            await asyncio.gather(*lanes, return_exceptions=True)
            deadline = time.monotonic() + CHILD_EXIT_DEADLINE
            left = living(pool)
            while left and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                left = living(left)
            result.leftover_processes += len(left)
            verdict, held = await asyncio.to_thread(check_store, store_path)
            if verdict != "ok":
                result.integrity_failures.append(verdict)
            result.acknowledged += len(acknowledged)
            result.lost.extend(sorted(acknowledged - held))
            restarted = time.monotonic()
            await network.restart(victim)
            result.restart_seconds.append(time.monotonic() - restarted)
            result.cycles += 1
    result.wall = time.monotonic() - started
    return result


def print_kill9(result: Kill9Result) -> None:
    restart = sorted(result.restart_seconds) or [float("nan")]
    print(
        f"kill9: {result.cycles} cycles of kill -9 of a node while it fills, stores and "
        f"replicates ({result.wall:.0f} s)"
    )
    print(
        f"  integrity_check failures    {len(result.integrity_failures)} "
        f"{result.integrity_failures[:3] if result.integrity_failures else ''}"
    )
    print(
        f"  acknowledged records        {result.acknowledged} "
        f"({result.puts_acknowledged} puts, {result.served_acknowledged} fill/store answers)"
    )
    print(f"  acknowledged and lost       {len(result.lost)} {result.lost[:3]}")
    print(
        f"  pool processes outliving it {result.leftover_processes} "
        f"(of {result.pool_processes_seen} alive at the kills)"
    )
    print(
        f"  restart to healthy          median {restart[len(restart) // 2]:.2f} s, "
        f"max {restart[-1]:.2f} s"
    )
    print(
        f"  public requests during it   {result.requests}, {result.request_failures} failed "
        "(requests to the victim while it is down fail; that is expected)"
    )
