"""The parse pool with real worker processes: results, errors, back-pressure, recycling, and
recovery from a job that kills its worker."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from whnode.errors import UsageError
from whnode.testing.clock import eventually
from whnode.upstream.exceptions import UpstreamParseError
from whnode.upstream.pool import ParsePool

POISON = -1


# Jobs: module level, so that worker processes can import them by name.
def square(value: int) -> int:
    return value * value


def pid_of_worker(_: int = 0) -> int:
    return os.getpid()


def nap(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


def kill_self_on_poison(value: int, delay: float = 0.0) -> int:
    """Sleeps ``delay`` then dies by SIGKILL if ``value`` is the poison."""
    time.sleep(delay)
    if value == POISON:
        os.kill(os.getpid(), signal.SIGKILL)
    return value * 2


def exit_abruptly(value: int) -> int:
    if value == POISON:
        os._exit(3)
    return value


def fail_with_value_error(value: int) -> int:
    raise ValueError(f"bad value {value}")


class Unpicklable(Exception):
    """An exception that cannot travel back: it holds a lock."""

    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = __import__("threading").Lock()


def fail_unpicklably(value: int) -> int:
    raise Unpicklable()


@pytest.fixture
async def pool() -> AsyncIterator[ParsePool]:
    async with ParsePool(workers=2, max_tasks_per_child=None, queue_depth=16) as parse_pool:
        yield parse_pool


async def test_runs_jobs_in_other_processes(pool: ParsePool) -> None:
    results = await asyncio.gather(*(pool.run(square, n) for n in range(20)))
    assert results == [n * n for n in range(20)]
    pids = set(await asyncio.gather(*(pool.run(nap, 0.05, n) for n in range(4))))
    assert pids == {0, 1, 2, 3}
    worker_pid = await pool.run(pid_of_worker)
    assert worker_pid != os.getpid()
    stats = pool.statistics()
    assert (stats.workers, stats.completed, stats.failed, stats.in_flight) == (2, 25, 0, 0)


async def test_job_errors_come_back_and_the_pool_keeps_serving(pool: ParsePool) -> None:
    with pytest.raises(ValueError, match="bad value 4"):
        await pool.run(fail_with_value_error, 4)
    with pytest.raises(UpstreamParseError, match="Unpicklable") as caught:
        await pool.run(fail_unpicklably, 1, source="jane", dispensary_id="jane:1547")
    assert (caught.value.source, caught.value.dispensary_id) == ("jane", "jane:1547")
    assert await pool.run(square, 9) == 81
    stats = pool.statistics()
    assert (stats.failed, stats.completed, stats.rebuilds) == (2, 1, 0)


@pytest.mark.parametrize("job", [kill_self_on_poison, exit_abruptly])
async def test_a_job_that_kills_its_worker_fails_alone(pool: ParsePool, job: object) -> None:
    """The poison fails with a clear error; innocent jobs in flight with it succeed; the next
    100 succeed."""
    assert callable(job)
    innocents = [asyncio.create_task(pool.run(kill_self_on_poison, n, 0.05)) for n in range(10)]
    await eventually(lambda: pool.statistics().in_flight > 0)  # innocents in the workers
    poison = asyncio.create_task(
        pool.run(job, POISON, source="weedmaps", dispensary_id="weedmaps:poison")
    )
    more = [asyncio.create_task(pool.run(kill_self_on_poison, n, 0.01)) for n in range(10, 20)]
    with pytest.raises(UpstreamParseError, match="worker process died") as caught:
        await poison
    assert caught.value.dispensary_id == "weedmaps:poison"
    assert await asyncio.gather(*innocents, *more) == [n * 2 for n in range(20)]

    assert await asyncio.gather(*(pool.run(square, n) for n in range(100))) == [
        n * n for n in range(100)
    ]
    stats = pool.statistics()
    assert stats.worker_killers == 1
    assert stats.rebuilds >= 1
    assert stats.completed == 120
    assert stats.failed == 1


async def test_back_pressure_bounds_jobs_in_flight() -> None:
    async with ParsePool(workers=2, max_tasks_per_child=None, queue_depth=3) as pool:
        await pool.warm_up()
        jobs = [asyncio.create_task(pool.run(nap, 0.5, n)) for n in range(9)]
        seen: list[tuple[int, int]] = []

        def observed() -> bool:
            stats = pool.statistics()
            seen.append((stats.in_flight, stats.waiting))
            return (stats.in_flight, stats.waiting) == (3, 6)

        await eventually(observed)
        assert await asyncio.gather(*jobs) == list(range(9))
        observed()
        assert max(in_flight for in_flight, _ in seen) == 3, seen  # never more than the depth
        assert pool.statistics().waiting == 0


async def test_workers_are_recycled_after_their_task_budget() -> None:
    async with ParsePool(workers=1, max_tasks_per_child=3, queue_depth=4) as pool:
        pids = [await pool.run(pid_of_worker) for _ in range(9)]
        burst = await asyncio.gather(*(pool.run(nap, 0.01, n) for n in range(12)))
        assert burst == list(range(12))
        assert len(set(pids)) == 3
        assert pids[0] == pids[2] != pids[3]
        assert pool.statistics().rotations >= 6


async def test_parse_refuses_no_pages_at_once(pool: ParsePool) -> None:
    with pytest.raises(UpstreamParseError, match="no pages") as caught:
        await pool.parse("leafly", "leafly:some-store", [], 1)
    assert caught.value.source == "leafly"


async def test_closed_pool_refuses_jobs() -> None:
    pool = ParsePool(workers=1)
    assert await pool.run(square, 3) == 9
    await pool.aclose()
    assert pool.closed()
    with pytest.raises(UsageError):
        await pool.run(square, 3)
    await pool.aclose()  # idempotent


def test_invalid_settings_are_usage_errors() -> None:
    for kwargs in ({"workers": 0}, {"queue_depth": 0}, {"max_tasks_per_child": 0}):
        with pytest.raises(UsageError):
            ParsePool(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="start method"):
        ParsePool(workers=1, start_method="fork")
