"""The lookup's rules on virtual time: ``LookupState`` driven by hand (``now += TICK``) over
an in-memory network, no sockets and no sleeping. tests/dht/test_lookup.py runs the same
rules over real UDP on loopback."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from whnode.dht.contact import Contact, NodeId
from whnode.dht.exceptions import DhtUsageError
from whnode.dht.lookup import PATIENCE_STALLS, LookupResult, LookupState

TICK = 1 / 64
"""Virtual seconds per step (a power of two: sums of ticks are exact)."""
STALL = 0.25
PATIENCE = PATIENCE_STALLS * STALL
RPC_TIMEOUT = 2.0
ALPHA = 3


def contact(rng: random.Random, *, routing_only: bool = False) -> Contact:
    return Contact(NodeId(rng.randbytes(20)), "127.0.0.1", rng.randrange(1024, 65535), routing_only)


@dataclass
class Net:
    """Peers in memory: each answers after its delay (None: never, the request fails after
    RPC_TIMEOUT) with the ``listed`` contacts closest to the target it knows."""

    nodes: list[Contact]
    delays: dict[bytes, float | None] = field(default_factory=dict)
    listed: int = 8
    also_listed: list[Contact] = field(default_factory=list)
    """Contacts every node lists before its own (a liar's or a stale table's)."""

    def delay(self, node_id: bytes) -> float | None:
        return self.delays.get(node_id, 3 * TICK)

    def answer(self, asked: bytes, target: bytes) -> list[Contact]:
        key = int.from_bytes(target, "big")
        others = [node for node in self.nodes if node.node_id != asked]
        others.sort(key=lambda node: int.from_bytes(node.node_id, "big") ^ key)
        return [*self.also_listed, *others[: self.listed]]


@dataclass
class Run:
    result: LookupResult
    ended_at: float
    asked: list[tuple[float, bytes]]
    stalled: list[tuple[float, bytes]]
    peak_unstalled: int


def drive(
    state: LookupState,
    net: Net,
    target: bytes,
    *,
    step: Callable[[float, float], float] | None = None,
) -> Run:
    """Run ``state`` to its end on virtual time. ``step(now, next_event)`` picks the next
    time; by default one TICK at a time."""
    now = 0.0
    due: dict[bytes, tuple[float, bool]] = {}  # node id -> (time, answers)
    asked_at: dict[bytes, float] = {}
    asked: list[tuple[float, bytes]] = []
    stalled: list[tuple[float, bytes]] = []
    peak = 0
    by_id: dict[bytes, Contact] = {node.node_id: node for node in net.nodes}
    for _ in range(100_000):
        stalled += [(now, node_id) for node_id in state.newly_stalled(now)]
        for node in state.next_requests(now):
            asked.append((now, node.node_id))
            asked_at[node.node_id] = now
            delay = net.delay(node.node_id)
            due[node.node_id] = (now + (RPC_TIMEOUT if delay is None else delay), delay is not None)
        assert set(due) == state.in_flight()
        unstalled = sum(1 for node_id in due if now - asked_at[node_id] < STALL)
        peak = max(peak, unstalled)
        if state.done(now):
            return Run(state.result(), now, asked, stalled, peak)
        wakeup = state.next_wakeup(now)
        assert wakeup > now
        if step is None:
            now += TICK
        else:
            now = step(now, min([wakeup, *(when for when, _ in due.values())]))
        for node_id, (when, answers) in sorted(due.items(), key=lambda item: item[1][0]):
            if when <= now:
                del due[node_id]
                if answers:
                    state.on_reply(by_id[node_id], net.answer(node_id, target))
                else:
                    state.on_failure(node_id)
    raise AssertionError("the lookup never ended")


def new_state(
    target: bytes,
    start: list[Contact],
    *,
    width: int = 3,
    deadline: float = 5.0,
    first: list[Contact] | None = None,
    wanted: Callable[[Contact], bool] | None = None,
    suspects: set[bytes] | None = None,
    patience: float = PATIENCE,
) -> LookupState:
    return LookupState(
        target,
        start,
        now=0.0,
        width=width,
        alpha=ALPHA,
        stall_timeout=STALL,
        patience=patience,
        deadline=deadline,
        first=first or [],
        wanted=wanted,
        is_suspect=(suspects or set()).__contains__,
        limit=width + 20,
    )


def closest(nodes: list[Contact], target: bytes, count: int) -> list[bytes]:
    key = int.from_bytes(target, "big")
    ids: list[bytes] = [node.node_id for node in nodes]
    return sorted(ids, key=lambda node_id: int.from_bytes(node_id, "big") ^ key)[:count]


def network(seed: int, size: int = 40) -> tuple[Net, bytes, list[Contact]]:
    rng = random.Random(seed)
    nodes = [contact(rng) for _ in range(size)]
    target = rng.randbytes(20)
    far = sorted(
        nodes, key=lambda node: int.from_bytes(node.node_id, "big") ^ int.from_bytes(target, "big")
    )
    return Net(nodes), target, far[-4:]  # start from the farthest nodes


@pytest.mark.parametrize("seed", range(5))
def test_converges_on_the_closest_nodes_that_answer(seed: int) -> None:
    net, target, start = network(seed)
    run = drive(new_state(target, start), net, target)
    assert run.result.converged
    answered = [node.node_id for node in run.result.answered]
    assert answered[:3] == closest(net.nodes, target, 3)
    assert answered == sorted(
        answered, key=lambda i: int.from_bytes(i, "big") ^ int.from_bytes(target, "big")
    )
    assert run.result.rpcs == len(run.asked) == len({node_id for _, node_id in run.asked})
    assert run.peak_unstalled <= ALPHA
    assert run.ended_at < 1.0  # a few round trips of 0.05 s


def test_a_stalled_request_frees_its_place_under_alpha() -> None:
    net, target, _ = network(11)
    for node in net.nodes:
        net.delays[node.node_id] = None  # every node is dead
    run = drive(new_state(target, net.nodes[:12], width=8), net, target)
    asked_times = [when for when, _ in run.asked]
    # alpha at once, alpha more after each stall time, never more than alpha unstalled; each
    # stalled node widens the frontier by one, so all twelve are asked
    assert (
        asked_times == [0.0] * ALPHA + [STALL] * ALPHA + [2 * STALL] * ALPHA + [3 * STALL] * ALPHA
    )
    assert run.peak_unstalled == ALPHA
    # each stalled node is reported once, one stall time after it was asked
    assert sorted(run.stalled) == sorted((when + STALL, node_id) for when, node_id in run.asked)
    assert run.result.answered == []
    # converged past the stalled nodes when the last one's patience ran out
    assert run.result.converged
    assert run.ended_at == 3 * STALL + PATIENCE


def test_a_dead_owner_costs_the_patience_not_an_rpc_timeout() -> None:
    net, target, start = network(12)
    dead = closest(net.nodes, target, 1)[0]
    net.delays[dead] = None
    run = drive(new_state(target, start), net, target)
    assert run.result.converged
    assert dead not in [node.node_id for node in run.result.answered]
    # the next closest node was asked when the dead one stalled: three live owners
    assert [node.node_id for node in run.result.answered[:3]] == closest(net.nodes, target, 4)[1:]
    asked_dead = next(when for when, node_id in run.asked if node_id == dead)
    assert (asked_dead + STALL, dead) in run.stalled
    # converged as soon as its patience ran out: before its RPC timeout
    assert run.ended_at == asked_dead + PATIENCE
    assert run.ended_at < asked_dead + RPC_TIMEOUT


def test_dead_nodes_closer_than_anyone_do_not_hide_the_live_owners() -> None:
    net, target, start = network(14)
    live_owners = closest(net.nodes, target, 3)
    key = int.from_bytes(target, "big")
    rng = random.Random(14)
    # twenty dead contacts closer to the target than any live node, listed by every node
    dead: list[Contact] = []
    while len(dead) < 20:
        node = contact(rng)
        if int.from_bytes(node.node_id, "big") ^ key < int.from_bytes(live_owners[0], "big") ^ key:
            dead.append(node)
    net.also_listed = dead
    for node in dead:
        net.delays[node.node_id] = None
    run = drive(new_state(target, start, deadline=10.0), net, target)
    assert run.result.converged
    assert [node.node_id for node in run.result.answered[:3]] == live_owners
    assert run.ended_at < RPC_TIMEOUT + PATIENCE  # no dead node is waited for to its timeout


@pytest.mark.parametrize(("delay", "kept"), [(PATIENCE - 0.1, True), (PATIENCE + 0.3, False)])
def test_a_slow_owner_is_kept_while_the_patience_lasts(delay: float, kept: bool) -> None:
    net, target, start = network(13)
    slow = closest(net.nodes, target, 1)[0]
    net.delays[slow] = delay
    run = drive(new_state(target, start), net, target)
    assert run.result.converged
    assert (slow in [node.node_id for node in run.result.answered]) is kept
    assert any(node_id == slow for _, node_id in run.stalled)  # it stalled in both cases


def test_suspects_are_asked_at_once_and_never_waited_for() -> None:
    net, target, start = network(14)
    suspects = closest(net.nodes, target, 2)
    for node_id in suspects:
        net.delays[node_id] = None
    run = drive(new_state(target, start, suspects=set(suspects)), net, target)
    assert run.result.converged
    assert {node_id for _, node_id in run.asked} >= set(suspects)
    assert not [node_id for _, node_id in run.stalled if node_id in suspects]
    assert run.ended_at < STALL  # no stall time waited for them
    # a suspect that answers while the lookup runs counts again
    net.delays[suspects[0]] = 0.01
    run = drive(new_state(target, start, suspects=set(suspects)), net, target)
    assert suspects[0] in [node.node_id for node in run.result.answered]


def test_the_deadline_ends_the_lookup_and_nothing_is_sent_after_it() -> None:
    net, target, start = network(15)
    for node in net.nodes:
        net.delays[node.node_id] = None
    state = new_state(target, start, deadline=0.625, patience=RPC_TIMEOUT)
    run = drive(state, net, target)
    assert run.ended_at == 0.625
    assert not run.result.converged
    assert max(when for when, _ in run.asked) < 0.625
    assert state.in_flight()  # left for the protocol to adopt
    assert state.next_requests(1.0) == []
    assert state.done(1.0)


def test_unwanted_nodes_route_but_the_frontier_counts_wanted_ones() -> None:
    rng = random.Random(16)
    nodes = [contact(rng, routing_only=index % 2 == 0) for index in range(40)]
    net = Net(nodes, listed=20)
    target = rng.randbytes(20)
    start = nodes[:4]

    def wanted(node: Contact) -> bool:
        return not node.routing_only

    run = drive(new_state(target, start, wanted=wanted), net, target)
    answered = run.result.answered
    owners = [node.node_id for node in answered if wanted(node)][:3]
    assert owners == closest([node for node in nodes if wanted(node)], target, 3)
    # every routing-only node closer than the third owner was asked (and answered)
    third = int.from_bytes(owners[2], "big") ^ int.from_bytes(target, "big")
    closer = [
        node.node_id
        for node in nodes
        if node.routing_only
        and int.from_bytes(node.node_id, "big") ^ int.from_bytes(target, "big") < third
    ]
    assert set(closer) <= {node.node_id for node in answered}


def test_first_contacts_are_asked_at_once_and_awaited() -> None:
    net, target, start = network(17)
    rng = random.Random(170)
    seeds = [contact(rng) for _ in range(ALPHA + 2)]  # far away, beyond alpha
    net.nodes.extend(seeds)
    for seed in seeds:
        net.delays[seed.node_id] = 0.01
    net.delays[seeds[0].node_id] = PATIENCE + 0.5  # slower than any patience
    run = drive(new_state(target, start, first=[*seeds, seeds[1]]), net, target)
    first_asks = [node_id for when, node_id in run.asked if when == 0.0][: len(seeds)]
    assert first_asks == [seed.node_id for seed in seeds]  # each once, whatever alpha
    assert run.ended_at >= PATIENCE + 0.5  # awaited although it stalled
    assert seeds[0].node_id in [node.node_id for node in run.result.answered]


@pytest.mark.parametrize("seed", range(3))
def test_next_wakeup_names_every_change_without_a_reply(seed: int) -> None:
    """Jumping from event to event (replies and next_wakeup) gives the same lookup as
    ticking: nothing changes between the times next_wakeup names."""
    net, target, start = network(seed + 20)
    near = closest(net.nodes, target, 5)
    net.delays[near[0]] = None
    net.delays[near[1]] = 0.5
    net.delays[near[2]] = PATIENCE + 0.25
    ticked = drive(new_state(target, start), net, target)
    jumped = drive(new_state(target, start), net, target, step=lambda now, event: event)
    assert jumped.result == ticked.result
    assert jumped.asked == ticked.asked
    assert jumped.ended_at == ticked.ended_at


def test_answers_must_match_a_request_in_flight() -> None:
    net, target, start = network(30)
    state = new_state(target, start)
    asked = state.next_requests(0.0)
    state.on_reply(asked[0], [])
    with pytest.raises(DhtUsageError):
        state.on_reply(asked[0], [])
    with pytest.raises(DhtUsageError):
        state.on_failure(net.nodes[0].node_id if net.nodes[0] not in asked else asked[0].node_id)
    with pytest.raises(DhtUsageError):
        new_state(target, start, width=0)
