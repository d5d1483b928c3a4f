"""Crash safety: a real writer process killed with SIGKILL in the middle of a burst."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.store.test_durable import assert_totals_match
from whnode.store import DurableStore, Synchronous

REPOSITORY = Path(__file__).resolve().parents[2]

WRITER = """
import asyncio, hashlib, random, sys
from whnode.store import DurableStore, StoredRecord, Synchronous

async def main(path, synchronous, seed, start):
    rng = random.Random(seed)
    store = await DurableStore.open(
        path, history_per_dispensary=100_000, max_bytes=1 << 40,
        synchronous=Synchronous(synchronous),
    )
    t = start
    while True:
        t += 1
        dispensary = f"shop-{rng.randrange(20)}"
        data = rng.randbytes(rng.randrange(20_000, 60_000))
        record = StoredRecord(dispensary, t, hashlib.sha256(data[:64]).digest(), data)
        assert await store.put(record)
        sys.stdout.write(f"ack {dispensary} {t} {hashlib.sha256(data).hexdigest()}\\n")
        sys.stdout.flush()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


async def write_until_killed(
    path: Path, synchronous: Synchronous, seed: int, start: int
) -> dict[tuple[str, int], str]:
    """Run the writer, SIGKILL it after a random number of acks; return every ack it printed."""
    kill_after = random.Random(seed).randrange(30, 150)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(path),
        synchronous.value,
        str(seed),
        str(start),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert process.stdout is not None
    acked: dict[tuple[str, int], str] = {}

    def take(line: bytes) -> None:
        if not line.endswith(b"\n"):
            return  # cut by the kill: not a complete acknowledgement
        word, dispensary, t, digest = line.decode().split()
        assert word == "ack"
        acked[(dispensary, int(t))] = digest

    try:
        while len(acked) < kill_after:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
            assert line, f"writer exited early with {await process.wait()}"
            take(line)
    finally:
        process.send_signal(signal.SIGKILL)
    for line in (await process.stdout.read()).splitlines(keepends=True):
        take(line)
    assert await process.wait() == -signal.SIGKILL
    return acked


@pytest.mark.slow
@pytest.mark.parametrize("synchronous", [Synchronous.NORMAL, Synchronous.FULL])
async def test_every_acknowledged_write_survives_sigkill(
    tmp_path: Path, synchronous: Synchronous
) -> None:
    path = tmp_path / "store.sqlite3"
    acked: dict[tuple[str, int], str] = {}
    for round_number in range(3):
        acked |= await write_until_killed(
            path, synchronous, seed=round_number, start=1_000_000 * (round_number + 1)
        )
        # killed, not closed: the WAL is still there and opening must recover from it
        assert path.with_name(path.name + "-wal").stat().st_size > 0
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        async with await DurableStore.open(
            path, history_per_dispensary=100_000, max_bytes=1 << 40
        ) as store:
            assert await store.check_integrity() == []
            assert store.statistics().records >= len(acked)
            for (dispensary, t), digest in acked.items():
                record = await store.at(dispensary, t)
                assert record is not None, f"acknowledged write {dispensary}@{t} lost"
                assert record.fetched_at_ms == t
                assert hashlib.sha256(record.data).hexdigest() == digest
            assert_totals_match(store)
