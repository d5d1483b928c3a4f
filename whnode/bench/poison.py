"""``whnode bench poison``: attackers publishing fake menus in an open network, and what it
costs everyone (docs/dht.md, "Menu poisoning").

For each attacker share (10 % and 20 % by default) an in-process network on loopback
(``--nodes`` in all, the sandbox upstream serving ``--targets`` dispensaries) runs:

1. the honest nodes start and read every target once (fills, replication);
2. the attacker nodes join: half of them (``--grinders``) each ground an id next to a
   target of their choice, generating keys until one is closer to its key than every honest
   node, up to ``--budget`` key generations; the others have random ids;
3. every attacker entitled to a target (within the owner ranks) signs a fake menu for it
   (every price lowered), answers it (signed anew, always fresh) to every fill, get and
   history request of its peers (``whnode.testing.forgery.Poisoner``), and PUTs it to the
   target's owners, the way a modified node would;
4. honest nodes read every target ``--reads`` times (a random honest node each time, so
   that most reads go to the owners).

Printed per run: the share of honest answers that are fake, the attackers' placements and
key generations per successful placement, the cross-check's RPCs per get and the upstream
fetches it made to resolve conflicts, the honest nodes' upstream calls per target before
the attack (step 1) and during it (from the attackers' join to the end of the reads), the
cross-check outcomes and owner resolutions, and every fake answer by kind (how it got
through: answer path, the reader's rank among the owners, which owners are attackers, and
the reader's cross-check outcomes with the checker marked A or H). Each share is run with
the cross-check on and off (``--no-baseline`` skips the second). Then the cost of
positioning at the default difficulty: key generations (and seconds) per placement next to
a target's closest honest node (``--cost-placements``), and an honest node's identity
generation time.

The network itself runs at difficulty 0 (loopback clusters do not grind identities): the
placement cost at difficulty d is 2^d times the cost at 0, which the last part measures.
``--stress N`` runs N CPU-burning processes beside the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import math
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Collection, Sequence
from pathlib import Path

import aiohttp

from whnode.bench.cluster import cpu_burners, load_average
from whnode.identity import generate_identity
from whnode.node import Node
from whnode.peer.client import PeerClient
from whnode.peer.exceptions import PeerError
from whnode.record.acceptance import open_record
from whnode.record.keys import SigningKey, node_id_for, routing_key
from whnode.record.model import Menu
from whnode.record.puzzle import DEFAULT_DIFFICULTY
from whnode.record.signed import SignedRecord
from whnode.sandbox import SandboxConfig, run_sandbox
from whnode.service.types import MenuAnswer
from whnode.testing import forgery
from whnode.testing.cluster import LocalCluster
from whnode.upstream.pool import ParsePool

__all__ = ["PoisonRun", "main", "run_poison"]

REPLICATION = 3
OWNER_RANKS = 6
"""node.replication + trust.owner_slack (the defaults): who is entitled to a target."""
READ_MAX_AGE = 300.0
CONCURRENCY = 8


@dataclasses.dataclass
class PoisonRun:
    """What one run measured."""

    share: float
    crosscheck: bool
    nodes: int
    attackers: int
    grinders: int
    targets: int
    budget: int
    placed_first: int = 0
    """Targets whose closest node is an attacker."""
    placed_owner: int = 0
    """Targets with an attacker among their REPLICATION owners."""
    grind_generations: int = 0
    grind_reached: int = 0
    fakes_published: int = 0
    """(attacker, target) pairs publishing a fake."""
    fakes_served: int = 0
    """Fakes the attackers answered to peers."""
    puts_accepted: int = 0
    puts_refused: int = 0
    reads: int = 0
    answers: int = 0
    fake_answers: int = 0
    errors: int = 0
    crosscheck_rpcs: int = 0
    resolution_fetches: int = 0
    blocked_pairs: int = 0
    upstream_calls_reads: int = 0
    upstream_calls_before: int = 0
    """Upstream calls of the honest nodes while they read every target once (step 1)."""
    upstream_calls_attack: int = 0
    """Upstream calls of the honest nodes from the attackers' join to the end of the reads."""
    leaks: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Fake answers by kind: the answer's path, the reader's rank among the target's
    owners, the attackers among them, and the reader's cross-check outcomes (checkers
    marked A for attacker, H for honest)."""
    outcomes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """The honest requesters' cross-check outcomes, over the whole run."""
    resolutions: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """The honest owners' resolutions, over the whole run."""
    seconds: float = 0.0

    @property
    def fake_share(self) -> float:
        return self.fake_answers / self.answers if self.answers else float("nan")

    @property
    def rpcs_per_get(self) -> float:
        return self.crosscheck_rpcs / self.reads if self.reads else float("nan")

    @property
    def generations_per_placement(self) -> float:
        return self.grind_generations / self.grind_reached if self.grind_reached else float("nan")


def _distance(node_id: bytes, key: bytes) -> int:
    return int.from_bytes(node_id, "big") ^ int.from_bytes(key, "big")


async def _bounded(jobs: Sequence[Awaitable[MenuAnswer]], concurrency: int) -> list[object]:
    """Await ``jobs`` with at most ``concurrency`` running; exceptions are returned."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Awaitable[MenuAnswer]) -> MenuAnswer:
        async with gate:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)


async def run_poison(
    *,
    share: float,
    nodes: int,
    targets: list[str],
    budget: int,
    grinders: float,
    reads: int,
    crosscheck: bool,
    sandbox_url: str,
    pool: ParsePool,
    directory: Path,
    rng: random.Random,
) -> PoisonRun:
    """One run (module docstring)."""
    began = time.monotonic()
    n_attackers = round(nodes * share)
    n_grinders = math.ceil(n_attackers * grinders)
    run = PoisonRun(share, crosscheck, nodes, n_attackers, n_grinders, len(targets), budget)
    async with LocalCluster(
        nodes - n_attackers, directory, sandbox_url=sandbox_url, pool=pool
    ) as cluster:
        honest = list(cluster.nodes)
        for node in honest:
            node.service.crosscheck.enabled = crosscheck
        # 1. honest reads of every target
        answers = await _bounded(
            [rng.choice(honest).service.get_menu(t, max_age=600) for t in targets], CONCURRENCY
        )
        truth: dict[str, SignedRecord] = {}
        for target, answer in zip(targets, answers, strict=True):
            if not isinstance(answer, BaseException):
                assert isinstance(answer, MenuAnswer)
                truth[target] = answer.record
        await cluster.wait_idle()
        run.upstream_calls_before = sum(n.service.statistics().upstream_calls for n in honest)
        for node in honest:
            node.service.crosscheck.trace = {}
        # 2. attackers: grinders next to targets of their choice, the others at random
        keys: list[SigningKey] = []
        chosen = rng.sample(targets, min(n_grinders, len(targets)))
        for target in chosen:
            key = routing_key(target)
            closest = min(_distance(node.node_id, key) for node in honest)
            ground = await asyncio.to_thread(
                forgery.grind_key_near, key, closer_than=closest, budget=budget
            )
            run.grind_generations += ground.generations
            run.grind_reached += int(ground.reached)
            keys.append(ground.key)
        keys += [SigningKey.generate() for _ in range(n_attackers - len(keys))]
        attackers = [
            Node(
                cluster.config_for(len(honest) + index, (cluster.seed_address,)),
                signing_key=key,
                parse_pool=pool,
            )
            for index, key in enumerate(keys)
        ]
        key_of = {bytes(key.node_id): key for key in keys}
        await asyncio.gather(*(node.start() for node in attackers))
        try:
            everyone = honest + attackers
            await asyncio.gather(*(node.dht.bootstrap([]) for node in everyone))
            attacker_ids = {node.node_id for node in attackers}
            # 3. fake menus from every entitled attacker: answered to every fill (signed
            #    anew, always fresh) and pushed to the owners
            fakes: dict[bytes, dict[str, Menu]] = {node.node_id: {} for node in attackers}
            pushes: list[tuple[Node, str, Menu, list[Node]]] = []
            for target, record in truth.items():
                key = routing_key(target)
                ranked = sorted(everyone, key=lambda node: _distance(node.node_id, key))
                owners = ranked[:REPLICATION]
                run.placed_first += int(ranked[0].node_id in attacker_ids)
                run.placed_owner += int(any(n.node_id in attacker_ids for n in owners))
                fake_menu = forgery.fake_menu(open_record(record))
                for attacker in ranked[:OWNER_RANKS]:
                    if attacker.node_id in attacker_ids:
                        fakes[attacker.node_id][target] = fake_menu
                        pushes.append((attacker, target, fake_menu, owners))
            poisoners = [
                forgery.Poisoner(node, key_of[node.node_id], fakes[node.node_id])
                for node in attackers
            ]
            run.fakes_published = len(pushes)
            async with aiohttp.ClientSession() as session:
                for attacker, target, fake_menu, owners in pushes:
                    fake = forgery.forge(
                        fake_menu, key_of[attacker.node_id], fetched_at_ms=attacker.service.now_ms()
                    )
                    client = PeerClient(session, node_id_hex=attacker.node_id.hex(), timeout=10)
                    for owner in owners:
                        if owner.node_id in attacker_ids:
                            continue  # its accomplices serve the fake anyway
                        try:
                            await client.put_record(owner.dht.self_contact, target, fake.encoded)
                            run.puts_accepted += 1
                        except PeerError:
                            run.puts_refused += 1
            await cluster.wait_idle()
            for _ in range(100):  # owners resolving conflicts in the background
                if not any(node.service.crosscheck._background for node in honest):
                    break
                await asyncio.sleep(0.05)
            upstream_before = sum(node.service.statistics().upstream_calls for node in honest)
            rpcs_before = sum(node.service.crosscheck.statistics().rpcs for node in honest)
            # 4. honest reads
            jobs = []
            readers: list[tuple[Node, str]] = []
            for _ in range(reads):
                for target in truth:
                    reader = rng.choice(honest)
                    readers.append((reader, target))
                    jobs.append(reader.service.get_menu(target, max_age=READ_MAX_AGE))
            results = await _bounded(jobs, CONCURRENCY)
            run.reads = len(jobs)
            for (reader, target), result in zip(readers, results, strict=True):
                if isinstance(result, BaseException):
                    run.errors += 1
                    continue
                run.answers += 1
                assert isinstance(result, MenuAnswer)
                publisher = bytes(node_id_for(result.record.publisher))
                if publisher in attacker_ids:
                    run.fake_answers += 1
                    run.leaks[_leak_kind(reader, target, result, everyone, attacker_ids)] += 1
            run.fakes_served = sum(poisoner.served for poisoner in poisoners)
            run.crosscheck_rpcs = (
                sum(node.service.crosscheck.statistics().rpcs for node in honest) - rpcs_before
            )
            run.upstream_calls_attack = (
                sum(node.service.statistics().upstream_calls for node in honest)
                - run.upstream_calls_before
            )
            run.upstream_calls_reads = (
                sum(node.service.statistics().upstream_calls for node in honest) - upstream_before
            )
            run.resolution_fetches = sum(
                node.service.crosscheck.statistics().resolutions.get("fetches", 0)
                for node in honest
            )
            for node in honest:
                run.outcomes.update(node.service.crosscheck.statistics().outcomes)
                run.resolutions.update(node.service.crosscheck.statistics().resolutions)
            run.blocked_pairs = sum(
                node.service.crosscheck.book.statistics().blocked_pairs for node in honest
            )
        finally:
            await asyncio.gather(*(node.stop() for node in attackers), return_exceptions=True)
    run.seconds = time.monotonic() - began
    return run


def _leak_kind(
    reader: Node,
    target: str,
    answer: MenuAnswer,
    everyone: list[Node],
    attacker_ids: Collection[bytes],
) -> str:
    """How a fake answer got through (PoisonRun.leaks)."""
    key = routing_key(target)
    ranked = [node.node_id for node in sorted(everyone, key=lambda n: _distance(n.node_id, key))]
    owners = ranked[:REPLICATION]
    rank = ranked.index(reader.node_id) if reader.node_id in ranked[:OWNER_RANKS] else -1
    role = f"owner{rank + 1}" if rank >= 0 else "reader"
    pattern = "".join("A" if node_id in attacker_ids else "H" for node_id in owners)
    record = answer.record
    trace = reader.service.crosscheck.trace or {}
    outcomes = trace.get(
        (target, bytes(node_id_for(record.publisher)), record.fetched_at_ms), ["unchecked"]
    )
    marked = []
    for outcome in outcomes:
        name, _, who = outcome.partition("@")
        if who:
            side = "A" if any(i.hex().startswith(who) for i in attacker_ids) else "H"
            name = f"{name}@{side}"
        marked.append(name)
    return f"{answer.path.value} {role} owners={pattern} {','.join(marked)}"


@dataclasses.dataclass(frozen=True)
class PlacementCost:
    difficulty: int
    placements: int
    median_keys: float
    mean_keys: float
    seconds_per_placement: float


def placement_cost(
    difficulty: int, placements: int, nodes: int, rng: random.Random
) -> PlacementCost:
    """Key generations and seconds per placement closer to a random key than the closest of
    ``nodes`` random honest ids, at ``difficulty``, over ``placements`` placements. The
    distribution has a long tail (a key whose closest node happens to be very close costs
    far more), so the median is the figure to quote and the mean is printed beside it."""
    generations: list[int] = []
    seconds: list[float] = []
    for _ in range(placements):
        key = rng.randbytes(20)
        closest = min(_distance(rng.randbytes(20), key) for _ in range(nodes))
        started = time.perf_counter()
        ground = forgery.grind_key_near(
            key, closer_than=closest, budget=2**40, difficulty=difficulty
        )
        seconds.append(time.perf_counter() - started)
        generations.append(ground.generations)
    return PlacementCost(
        difficulty,
        placements,
        statistics.median(generations),
        statistics.fmean(generations),
        sum(seconds) / len(seconds),
    )


def _print_cost(cost: PlacementCost, nodes: int) -> None:
    print(
        f"placement closer to a random target than the closest of {nodes} honest ids, "
        f"difficulty {cost.difficulty}: median {cost.median_keys:,.0f} keys, mean "
        f"{cost.mean_keys:,.0f}, {cost.seconds_per_placement:.2f} s per placement "
        f"(mean of {cost.placements})",
        flush=True,
    )


def identity_seconds(difficulty: int, count: int) -> float:
    """Mean seconds to create an honest identity at ``difficulty``."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        generate_identity(difficulty)
        times.append(time.perf_counter() - started)
    return statistics.fmean(times)


async def _main_async(args: argparse.Namespace) -> list[PoisonRun]:
    rng = random.Random(args.seed)
    config = SandboxConfig(catalog=False, population=args.targets, max_items=30)
    runs = []
    async with run_sandbox(config) as sandbox:
        targets = list(sandbox.dispensaries)[: args.targets]
        pool = ParsePool(workers=2, max_tasks_per_child=500, queue_depth=64)
        try:
            for share in args.shares:
                for crosscheck in (True, False) if args.baseline else (True,):
                    with tempfile.TemporaryDirectory(prefix="whnode-poison-") as tmp:
                        run = await run_poison(
                            share=share,
                            nodes=args.nodes,
                            targets=targets,
                            budget=args.budget,
                            grinders=args.grinders,
                            reads=args.reads,
                            crosscheck=crosscheck,
                            sandbox_url=sandbox.base_url,
                            pool=pool,
                            directory=Path(tmp),
                            rng=rng,
                        )
                    runs.append(run)
                    _print_run(run)
        finally:
            await pool.close()
    return runs


def _print_run(run: PoisonRun) -> None:
    print(
        f"attackers {run.share:4.0%} ({run.attackers} of {run.nodes}, {run.grinders} grinding, "
        f"budget {run.budget:,} keys) cross-check {'on ' if run.crosscheck else 'off'}: "
        f"fake answers {run.fake_answers}/{run.answers} = {run.fake_share:.2%} "
        f"(errors {run.errors}); placed first at {run.placed_first}/{run.targets} targets, "
        f"among owners at {run.placed_owner}; grinding {run.grind_reached}/{run.grinders} "
        f"reached, {run.generations_per_placement:,.0f} keys per placement; fakes "
        f"{run.fakes_published} (served {run.fakes_served}), PUTs accepted "
        f"{run.puts_accepted} refused {run.puts_refused}; cross-check "
        f"{run.rpcs_per_get:.2f} RPCs per get, "
        f"{run.resolution_fetches} resolving fetches, {run.upstream_calls_reads} upstream "
        f"calls during reads, {run.blocked_pairs} blocks; upstream calls per target "
        f"{run.upstream_calls_before / run.targets:.2f} before the attack, "
        f"{run.upstream_calls_attack / run.targets:.2f} during it; {run.seconds:.1f} s",
        flush=True,
    )
    if run.crosscheck:
        print(f"  cross-check outcomes {dict(run.outcomes.most_common())}", flush=True)
        print(f"  owners' resolutions {dict(run.resolutions.most_common())}", flush=True)
    for kind, count in run.leaks.most_common():
        print(f"  fake answers {count:3d}: {kind}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="whnode bench poison", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=50, help="nodes in all (honest + attackers)")
    parser.add_argument(
        "--shares",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[0.1, 0.2],
        help="attacker shares, comma-separated (default 0.1,0.2)",
    )
    parser.add_argument("--targets", type=int, default=100, help="target dispensaries")
    parser.add_argument("--budget", type=int, default=4096, help="key generations per grinder")
    parser.add_argument("--grinders", type=float, default=0.5, help="share of attackers grinding")
    parser.add_argument("--reads", type=int, default=3, help="honest reads per target")
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the runs with the cross-check off",
    )
    parser.add_argument(
        "--cost-placements",
        type=int,
        default=2,
        help=f"placements ground at difficulty {DEFAULT_DIFFICULTY} (0: skip)",
    )
    parser.add_argument(
        "--identities",
        type=int,
        default=3,
        help=f"honest identities generated at difficulty {DEFAULT_DIFFICULTY}",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--stress", type=int, default=0, help="CPU-burning processes beside the run"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"whnode bench poison: load average {load_average()}, {args.stress} CPU burner(s)")
    with cpu_burners(args.stress):
        asyncio.run(_main_async(args))
        rng = random.Random(args.seed)
        _print_cost(placement_cost(0, 200, args.nodes, rng), args.nodes)
        if args.cost_placements:
            cost = placement_cost(DEFAULT_DIFFICULTY, args.cost_placements, args.nodes, rng)
            _print_cost(cost, args.nodes)
        if args.identities:
            mean = identity_seconds(DEFAULT_DIFFICULTY, args.identities)
            print(
                f"honest identity at difficulty {DEFAULT_DIFFICULTY}: {mean:.2f} s "
                f"(mean of {args.identities}; once per node, at first start)"
            )
    print(f"load average at the end {load_average()}")
    return 0
