"""Fair shares of a contended node (whnode.api.fairness), on a virtual clock."""

from __future__ import annotations

import math

from whnode.api.fairness import MAX_DELAY, MIN_SHARE, PERIOD, FairShare


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drive(
    fair: FairShare, clock: Clock, seconds: float, rates: dict[str, float], lag: float
) -> dict[str, list[float]]:
    """Requests of each client at its rate (each waits out its delay before the next, as a
    client on one connection would not: these are open-loop arrivals), the loop lagging by
    ``lag``; the delays each client was given."""
    step = 0.01
    due = dict.fromkeys(rates, clock.now)
    delays: dict[str, list[float]] = {key: [] for key in rates}
    end = clock.now + seconds
    while clock.now < end:
        for key, rate in rates.items():
            while due[key] <= clock.now:
                wait = fair.delay(key, clock.now)
                delays[key].append(wait)
                if wait > 0:
                    fair.waited(key)
                due[key] += 1.0 / rate
        fair.observe_lag(lag, clock.now)
        clock.now += step
    return delays


def test_a_heavy_client_of_a_lagging_node_is_shaped_and_a_light_one_is_not() -> None:
    clock = Clock()
    fair = FairShare(clock=clock)
    delays = drive(fair, clock, 3.0, {"flooder": 700.0, "app": 40.0}, lag=0.02)
    assert fair.share < 100  # about the light client's rate (max-min), not the flooder's
    assert fair.share >= MIN_SHARE
    assert max(delays["app"]) == 0.0
    late = delays["flooder"][len(delays["flooder"]) // 2 :]
    assert sum(1 for wait in late if wait > 0) > len(late) / 2
    assert fair.statistics().shaped > 0
    assert fair.statistics().contended_periods > 0


def test_nobody_is_shaped_while_the_loop_keeps_up() -> None:
    clock = Clock()
    fair = FairShare(clock=clock)
    delays = drive(fair, clock, 2.0, {"flooder": 700.0, "app": 40.0}, lag=0.0)
    assert math.isinf(fair.share)
    assert max(delays["flooder"]) == 0.0
    assert fair.statistics().shaped == 0


def test_a_client_alone_is_never_shaped_however_late_the_loop() -> None:
    clock = Clock()
    fair = FairShare(clock=clock)
    delays = drive(fair, clock, 2.0, {"only": 900.0}, lag=0.5)
    assert math.isinf(fair.share)
    assert max(delays["only"]) == 0.0


def test_the_share_is_lifted_after_a_quiet_spell() -> None:
    clock = Clock()
    fair = FairShare(clock=clock)
    drive(fair, clock, 1.0, {"flooder": 700.0, "app": 40.0}, lag=0.02)
    assert not math.isinf(fair.share)
    drive(fair, clock, 1.0, {"flooder": 30.0, "app": 40.0}, lag=0.0)
    assert not math.isinf(fair.share)  # one quiet second does not lift it
    drive(fair, clock, 30.0, {"flooder": 30.0, "app": 40.0}, lag=0.0)
    assert math.isinf(fair.share)


def test_a_turn_beyond_the_longest_wait_is_refused_not_queued() -> None:
    clock = Clock()
    fair = FairShare(clock=clock)
    drive(fair, clock, 1.0, {"flooder": 700.0, "app": 40.0}, lag=0.02)
    share = fair.share
    # a new client bursting at one instant: turns 1/share apart up to MAX_DELAY, then refused
    waits = [fair.delay("burst", clock.now) for _ in range(int(share * MAX_DELAY) + 50)]
    queued = [wait for wait in waits if wait <= MAX_DELAY]
    assert max(queued) > MAX_DELAY - 2 / share
    assert sum(1 for wait in waits if wait > MAX_DELAY) >= 40
    assert fair.statistics().refused >= 40
    assert PERIOD > 0
