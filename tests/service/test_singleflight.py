"""Single-flight: concurrent callers share one operation, errors reach every waiter."""

from __future__ import annotations

import asyncio

import pytest

from whnode.service.singleflight import SingleFlight


async def test_concurrent_callers_share_one_run() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def operation() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    waiters = [asyncio.create_task(flight.run("d", operation)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == [42] * 50
    assert calls == 1
    assert flight.coalesced == 49
    assert not flight.running("d")
    # a later call runs again
    assert await flight.run("d", operation) == 42
    assert calls == 2


async def test_error_reaches_every_waiter_and_clears_the_key() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()

    async def failing() -> int:
        await gate.wait()
        raise ValueError("upstream broke")

    waiting = asyncio.gather(*(flight.run("d", failing) for _ in range(5)), return_exceptions=True)
    while flight.coalesced < 4:  # every caller joined the one running operation
        await asyncio.sleep(0)
    gate.set()
    results = await waiting
    assert all(isinstance(result, ValueError) for result in results)
    assert flight.coalesced == 4
    assert not flight.running("d")


async def test_cancelled_waiter_does_not_cancel_the_shared_operation() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()

    async def operation() -> int:
        await gate.wait()
        return 7

    first = asyncio.create_task(flight.run("d", operation))
    second = asyncio.create_task(flight.run("d", operation))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await second == 7
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_aclose_cancels_running_operations() -> None:
    flight: SingleFlight[str, int] = SingleFlight()

    async def forever() -> int:
        await asyncio.Event().wait()
        return 0

    task = flight.start("d", forever)
    await asyncio.sleep(0)
    await flight.aclose()
    assert task.cancelled()
