"""The process pool that turns raw upstream pages into encoded menus.

Parsing, normalizing, computing statistics, canonical encoding and compressing are CPU work:
they run in worker processes (``parse_menu_job``), so that the event loop only does I/O. The
main process sends raw page bytes and gets back a ``ParsedMenu`` (compressed payload, content
hash, counts), ready to be signed.

Design decisions:

- Start method ``forkserver`` (``spawn`` also allowed; ``fork`` refused). The node process runs
  an event loop and threads (aiohttp, the SQLite thread, the executor's own manager thread);
  forking it would copy locks held by other threads into the child. The fork server is a clean,
  single-threaded process that imports the parsing modules once (``FORKSERVER_PRELOAD``), so a
  new worker starts in milliseconds instead of re-importing everything as ``spawn`` does.
- Back-pressure: at most ``queue_depth`` jobs are admitted at once (an ``asyncio.Semaphore``);
  further callers wait in ``run``/``parse``. ``statistics().waiting`` counts them.
- Recycling: ``ProcessPoolExecutor(max_tasks_per_child=...)`` can deadlock on Python 3.11 to
  3.13 (CPython gh-115634: a worker that exits at its limit may never be replaced while jobs
  wait). Workers are recycled by rotating the whole executor instead: after ``workers *
  max_tasks_per_child`` jobs, new jobs go to a fresh executor and the old one is shut down as
  soon as its own jobs are done.
- A worker that dies (killed, segfault, ``os._exit``) breaks its whole executor
  (``BrokenProcessPool``) and fails every job in it, guilty or not. The executor is replaced at
  once and every job that was in it becomes a *suspect*: suspects are run again one at a time
  in a separate single-worker executor, where a death can only be the fault of the one job
  inside. A suspect that succeeds returns normally; one that kills its worker again fails with
  ``UpstreamParseError`` saying so. Innocent jobs never fail because of another job, and the
  pool keeps serving throughout.
- Worker-side exceptions must survive pickling to come back; those that would not are
  replaced by ``UpstreamParseError`` in the worker (an unpicklable result would break the pool).
- Workers die with their node, even when the node is killed with SIGKILL. A worker is a child
  of the fork server, not of the node, and every worker holds the write ends of the fork
  server's "alive" pipe, of the resource tracker's pipe and of its own call queue, so without
  help the three outlive a killed node for ever (reparented to init, 40-48 MB each). Each
  worker's initializer (``_die_with_node``) opens a pidfd on the node's pid and waits on it in
  a daemon thread: when the node ends, the worker exits at once (on Linux before 5.3, where
  pidfd_open is missing, the thread polls the node's pid every ``NODE_POLL_SECONDS``). It also
  sets PR_SET_PDEATHSIG, so that a worker dies with a killed fork server. Once the workers are
  gone, the fork server reads EOF on its alive pipe and exits, and then the resource tracker
  reads EOF on its pipe and exits: nothing of a killed node is left after a second or two.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import dataclasses
import logging
import multiprocessing
import os
import pickle
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from whnode import limits
from whnode.errors import UsageError
from whnode.lifecycle import AsyncClosing, deprecated_alias
from whnode.record.codec import encode_menu_with_hash
from whnode.record.exceptions import RecordError
from whnode.record.keys import ContentHash
from whnode.record.model import DropCount, Menu, MenuStatistics, ParseReport, Vendor
from whnode.upstream.adapters import ADAPTERS, Adapter
from whnode.upstream.adapters.base import ParseResult
from whnode.upstream.exceptions import AdapterParseError, UpstreamError, UpstreamParseError
from whnode.upstream.statistics import compute_statistics

__all__ = [
    "FORKSERVER_PRELOAD",
    "ParsePool",
    "ParsePoolStatistics",
    "ParsedMenu",
    "check_report",
    "describe_drops",
    "package_menu",
    "parse_menu_job",
    "run_parser",
]

LOG = logging.getLogger(__name__)

T = TypeVar("T")

START_METHODS: Final = ("forkserver", "spawn")
"""Start methods accepted for worker processes (``fork`` is refused: see the docstring)."""
FORKSERVER_PRELOAD: Final = (
    "whnode.upstream.pool",
    "whnode.upstream.adapters",
    "whnode.record.codec",
)
"""Modules the fork server imports once so that workers start ready."""
MAX_ERROR_CHARS: Final = 300
"""Longest foreign error text carried into an UpstreamParseError."""
NODE_POLL_SECONDS: Final = 0.5
"""How often a worker checks that its node lives where pidfd_open is not available."""
PR_SET_PDEATHSIG: Final = 1
"""prctl option: the signal a process gets when the thread that created it ends (Linux)."""
MIN_KEPT_SHARE: Final = 0.5
"""A parse that keeps fewer than this share of the items it saw (drops that lose nothing,
such as duplicates, count as kept) fails: a menu that silently lost most of its products is
worse than an error."""


# --------------------------------------------------------------------------- worker side
@dataclass(frozen=True, slots=True)
class ParsedMenu:
    """A parsed menu, encoded and ready to be signed."""

    dispensary_id: str
    vendor: Vendor
    menu_name: str
    fetched_at_ms: int
    """When the pages were fetched (ms since the epoch); the record's fetch time."""
    product_count: int
    content_hash: ContentHash
    """SHA-256 of the menu without fetch time and statistics (``codec.content_hash``)."""
    payload: bytes
    """The lz4-compressed canonical CBOR of the menu, statistics included (``encode_menu``)."""
    statistics: MenuStatistics


def _adapter_for(vendor: Vendor, dispensary_id: str) -> Adapter:
    adapter = ADAPTERS.get(vendor)
    if adapter is None:
        raise UpstreamParseError(
            f"no adapter parses {vendor} menus", source=str(vendor), dispensary_id=dispensary_id
        )
    return adapter


def _foreign(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


def describe_drops(drops: Iterable[DropCount]) -> str:
    """``no_size 112 (e.g. 101, 102), duplicate 3 (e.g. 7)``: drops by reason, most first."""
    parts = []
    for drop in sorted(drops, key=lambda drop: -drop.count):
        examples = f" (e.g. {', '.join(drop.examples)})" if drop.examples else ""
        parts.append(f"{drop.reason} {drop.count}{examples}")
    return ", ".join(parts) or "none"


def check_report(report: ParseReport, source: str, dispensary_id: str) -> None:
    """A parse that keeps fewer than half the items it saw is a parse failure, not a menu
    (``MIN_KEPT_SHARE``): an ``UpstreamParseError`` naming the reasons."""
    if report.items_seen and report.items_kept < report.items_seen * MIN_KEPT_SHARE:
        raise UpstreamParseError(
            f"kept {report.items_kept} of the {report.items_seen} items the pages hold; "
            f"dropped: {describe_drops(report.items_dropped)}"[:MAX_ERROR_CHARS],
            source=source,
            dispensary_id=dispensary_id,
        )


def package_menu(menu: Menu, report: ParseReport | None = None) -> ParsedMenu:
    """Attach statistics (and the parse report), encode and hash ``menu``: the CPU work after
    parsing. Raises ``UpstreamParseError`` for a menu without products or a parse that kept
    too little (``check_report``)."""
    source, dispensary_id = str(menu.vendor), str(menu.dispensary_id)
    if report is not None:
        check_report(report, source, dispensary_id)
    if not menu.products:
        raise UpstreamParseError(
            "the pages hold no products (an empty answer is not taken for an empty store)",
            source=source,
            dispensary_id=dispensary_id,
        )
    statistics = dataclasses.replace(compute_statistics(menu), parse_report=report)
    menu = dataclasses.replace(menu, statistics=statistics)
    assert menu.statistics is not None
    try:
        payload, digest = encode_menu_with_hash(menu)
    except RecordError as exc:
        raise UpstreamParseError(
            f"the menu cannot be encoded: {_foreign(exc)}",
            source=source,
            dispensary_id=dispensary_id,
        ) from exc
    return ParsedMenu(
        dispensary_id=dispensary_id,
        vendor=menu.vendor,
        menu_name=menu.name,
        fetched_at_ms=menu.fetched_at_ms,
        product_count=len(menu.products),
        content_hash=digest,
        payload=payload,
        statistics=menu.statistics,
    )


def run_parser(
    parse_pages: Callable[[str, list[bytes], int], Menu | ParseResult],
    vendor: str,
    dispensary_id: str,
    pages: Sequence[bytes],
    fetched_at_ms: int,
) -> ParsedMenu:
    """The worker's parse step around any ``parse_pages`` function (one that returns a Menu,
    or a ``ParseResult`` with its report): any failure on the pages becomes
    ``UpstreamParseError`` naming the source and the dispensary; then ``package_menu``."""
    try:
        parsed = parse_pages(dispensary_id, list(pages), fetched_at_ms)
        result = parsed if isinstance(parsed, ParseResult) else ParseResult(parsed)
    except Exception as exc:  # the parse boundary: untrusted input, any failure is the input's
        if isinstance(exc, UpstreamError) and not isinstance(exc, AdapterParseError):
            raise  # already names the source (AdapterParseError does not)
        raise UpstreamParseError(
            f"cannot parse the pages: {_foreign(exc)}", source=vendor, dispensary_id=dispensary_id
        ) from exc
    return package_menu(result.menu, result.report)


def parse_menu_job(
    vendor: str, dispensary_id: str, pages: Sequence[bytes], fetched_at_ms: int
) -> ParsedMenu:
    """Parse one menu's raw pages (runs in a worker process; also callable inline).

    Uses ``whnode.upstream.adapters.ADAPTERS[vendor].parse_with_report`` through
    ``run_parser``.
    """
    try:
        known = Vendor(vendor)
    except ValueError:
        raise UpstreamParseError(
            f"unknown vendor {vendor[:40]!r}", source=vendor[:40], dispensary_id=dispensary_id
        ) from None
    adapter = _adapter_for(known, dispensary_id)
    return run_parser(adapter.parse_with_report, vendor, dispensary_id, pages, fetched_at_ms)


def _run_guarded(fn: Callable[..., T], args: tuple[Any, ...], source: str, dispensary_id: str) -> T:
    """Run a job in the worker; make sure whatever it raises can travel back."""
    try:
        return fn(*args)
    except Exception as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise UpstreamParseError(
                f"job failed: {_foreign(exc)}", source=source, dispensary_id=dispensary_id
            ) from None
        raise


# --------------------------------------------------------------------------- worker lifetime
def _die_with_node(node_pid: int) -> None:
    """Worker initializer: end this worker as soon as process ``node_pid`` ends, however it
    ends (SIGKILL included). See the module docstring."""
    if os.getppid() != node_pid:
        # A fork server's child: die with it too. (Not for spawned workers, whose parent is the
        # node: the signal follows the creating thread, which may be a short-lived one.)
        _set_parent_death_signal(signal.SIGKILL)
    try:
        handle: int | None = os.pidfd_open(node_pid)
    except ProcessLookupError:
        os._exit(0)  # the node is already gone
    except (AttributeError, OSError):
        handle = None  # no pidfd_open (Linux < 5.3, other systems): poll instead
    threading.Thread(
        target=_wait_for_node, args=(node_pid, handle), name="whnode node watch", daemon=True
    ).start()


def _wait_for_node(node_pid: int, handle: int | None) -> None:
    if handle is not None:
        select.select([handle], [], [])  # a pidfd turns readable when its process ends
    else:
        while _alive(node_pid):
            time.sleep(NODE_POLL_SECONDS)
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _set_parent_death_signal(signum: int) -> None:
    """Linux: get ``signum`` when the parent (the fork server, for workers) dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _worker_pid() -> int:
    time.sleep(0.01)  # long enough that every priming job lands on a worker of its own
    return os.getpid()


# --------------------------------------------------------------------------- main side
@dataclass(frozen=True, slots=True)
class ParsePoolStatistics:
    """A snapshot of the pool's counters."""

    workers: int
    queue_depth: int
    in_flight: int
    """Jobs admitted and not finished."""
    waiting: int
    """Callers waiting for admission (back-pressure)."""
    completed: int
    failed: int
    """Jobs that raised (parse errors included)."""
    rebuilds: int
    """Executors replaced because a worker died."""
    rotations: int
    """Executors replaced to recycle workers."""
    isolated_retries: int
    """Suspect jobs run again alone after a worker death."""
    worker_killers: int
    """Jobs refused because they killed a worker twice."""


class _Generation:
    """One executor and what went into it."""

    __slots__ = ("executor", "in_flight", "primed", "retired", "submitted")

    def __init__(self, executor: concurrent.futures.ProcessPoolExecutor) -> None:
        self.executor = executor
        self.submitted = 0
        self.in_flight = 0
        self.primed = False
        self.retired = False


def default_workers() -> int:
    """One worker per core this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _prime(executor: concurrent.futures.ProcessPoolExecutor, workers: int) -> None:
    """Start every worker now (runs in a thread: starting processes blocks)."""
    futures = [executor.submit(_worker_pid) for _ in range(workers)]
    concurrent.futures.wait(futures)


def _shutdown(executors: list[concurrent.futures.ProcessPoolExecutor]) -> None:
    for executor in executors:
        executor.shutdown(wait=True, cancel_futures=True)


class ParsePool(AsyncClosing):
    """Worker processes for parsing, with back-pressure and recovery from dead workers.

    ``workers=None`` means one per core; ``max_tasks_per_child=None`` never recycles. Use as
    ``async with ParsePool() as pool`` or call ``await close()``. ``warm_up()`` starts the
    workers ahead of the first job. ``parse_job`` replaces ``parse_menu_job`` (a module-level
    function with the same signature, e.g. a test's own parser).
    """

    def __init__(
        self,
        workers: int | None = None,
        max_tasks_per_child: int | None = 200,
        queue_depth: int = limits.MAX_PARSE_QUEUE,
        *,
        start_method: str = "forkserver",
        parse_job: Callable[[str, str, list[bytes], int], ParsedMenu] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise UsageError("parse pool workers must be >= 1")
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise UsageError("parse pool max_tasks_per_child must be >= 1")
        if queue_depth < 1:
            raise UsageError("parse pool queue_depth must be >= 1")
        if start_method not in START_METHODS:
            raise UsageError(f"parse pool start method must be one of {START_METHODS}")
        self.workers = workers or default_workers()
        self.max_tasks_per_child = max_tasks_per_child
        self.queue_depth = queue_depth
        self.start_method = start_method
        self._parse_job = parse_job or parse_menu_job
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
        self._slots = asyncio.Semaphore(queue_depth)
        self._prime_lock = asyncio.Lock()
        self._priming: set[asyncio.Future[None]] = set()
        """Worker starts running in threads: a cancelled warm-up does not stop its thread, so
        ``aclose`` waits for them before shutting the executors down (a shutdown racing a
        start could leave the start's thread waiting, and the interpreter's exit with it)."""
        self._isolation_slots = asyncio.Semaphore(self.workers)
        self._current = self._new_generation()
        self._retired: set[_Generation] = set()
        self._isolation: set[concurrent.futures.ProcessPoolExecutor] = set()
        self._spare: list[concurrent.futures.ProcessPoolExecutor] = []
        self._closed = False
        self._waiting = 0
        self._in_flight = 0
        self._completed = 0
        self._failed = 0
        self._rebuilds = 0
        self._rotations = 0
        self._isolated = 0
        self._killers = 0

    def closed(self) -> bool:
        """Whether ``aclose()`` was called."""
        return self._closed

    def statistics(self) -> ParsePoolStatistics:
        return ParsePoolStatistics(
            workers=self.workers,
            queue_depth=self.queue_depth,
            in_flight=self._in_flight,
            waiting=self._waiting,
            completed=self._completed,
            failed=self._failed,
            rebuilds=self._rebuilds,
            rotations=self._rotations,
            isolated_retries=self._isolated,
            worker_killers=self._killers,
        )

    def ready(self) -> bool:
        """Whether the current workers are started: a job submitted now would not wait for
        processes to start."""
        return not self._closed and self._current.primed

    async def warm_up(self) -> None:
        """Start all workers of the current executor now rather than at the first job."""
        await self._primed(self._current)

    async def parse(
        self, vendor: Vendor | str, dispensary_id: str, pages: Sequence[bytes], fetched_at_ms: int
    ) -> ParsedMenu:
        """Parse one menu's pages in a worker (``parse_menu_job``)."""
        source = str(vendor)
        if not pages:
            raise UpstreamParseError(
                "no pages to parse", source=source, dispensary_id=dispensary_id
            )
        if len(pages) > limits.MAX_UPSTREAM_PAGES:
            raise UpstreamParseError(
                f"{len(pages)} pages, more than the {limits.MAX_UPSTREAM_PAGES} allowed",
                source=source,
                dispensary_id=dispensary_id,
            )
        return await self.run(
            self._parse_job,
            source,
            dispensary_id,
            list(pages),
            fetched_at_ms,
            source=source,
            dispensary_id=dispensary_id,
        )

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        source: str = "pool",
        dispensary_id: str = "-",
    ) -> T:
        """Run ``fn(*args)`` in a worker and return its result.

        ``fn`` must be a module-level function importable by the worker; ``source`` and
        ``dispensary_id`` name the job in errors. Waits for admission when ``queue_depth``
        jobs are already in. A job that kills its worker twice raises ``UpstreamParseError``.
        """
        if self._closed:
            raise UsageError("the parse pool is closed")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._in_flight += 1
        try:
            result = await self._run_admitted(fn, args, source, dispensary_id)
        except Exception:
            self._failed += 1
            raise
        finally:
            self._in_flight -= 1
            self._slots.release()
        self._completed += 1
        return result

    async def aclose(self) -> None:
        """Stop every worker; jobs still running are waited for, queued ones cancelled."""
        if self._closed:
            return
        self._closed = True
        if self._priming:
            await asyncio.gather(*self._priming, return_exceptions=True)
        executors = [self._current.executor] + [g.executor for g in self._retired]
        executors.extend(self._isolation)
        self._retired.clear()
        self._isolation.clear()
        self._spare.clear()
        await asyncio.to_thread(_shutdown, executors)

    close = deprecated_alias(aclose, "close")
    """Deprecated name of :meth:`aclose`, kept for a release."""

    # ------------------------------------------------------------------ internals
    def _executor(self, workers: int) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=self._context,
            initializer=_die_with_node,
            initargs=(os.getpid(),),
        )

    def _new_generation(self) -> _Generation:
        return _Generation(self._executor(self.workers))

    def _retire(self, generation: _Generation, *, cancel: bool) -> None:
        generation.retired = True
        if generation.in_flight:
            self._retired.add(generation)
        generation.executor.shutdown(wait=False, cancel_futures=cancel)

    def _generation_for_submit(self) -> _Generation:
        """The current executor, rotated first if it has run its budget of jobs."""
        generation = self._current
        limit = self.max_tasks_per_child
        if limit is not None and generation.submitted >= self.workers * limit:
            self._rotations += 1
            self._current = self._new_generation()
            self._retire(generation, cancel=False)
        return self._current

    def _replace_broken(self, generation: _Generation) -> None:
        if generation is not self._current or self._closed:
            return
        self._rebuilds += 1
        LOG.warning("a parse worker process died; the pool is rebuilt")
        self._current = self._new_generation()
        self._retire(generation, cancel=True)

    async def _primed(self, generation: _Generation) -> None:
        if generation.primed:
            return
        async with self._prime_lock:
            if not generation.primed:
                priming = asyncio.ensure_future(
                    asyncio.to_thread(_prime, generation.executor, self.workers)
                )
                self._priming.add(priming)
                priming.add_done_callback(self._priming.discard)
                try:
                    await asyncio.shield(priming)
                except (BrokenProcessPool, RuntimeError):
                    pass  # the submit that follows meets the same state and handles it
                generation.primed = True

    async def _run_admitted(
        self, fn: Callable[..., T], args: tuple[Any, ...], source: str, dispensary_id: str
    ) -> T:
        while True:
            if self._closed:
                raise UsageError("the parse pool is closed")
            generation = self._generation_for_submit()
            if not generation.primed:
                await self._primed(generation)
                continue  # things may have changed meanwhile: choose again
            # No await from choosing the executor to submitting: no one retires it between.
            generation.submitted += 1
            try:
                future = generation.executor.submit(_run_guarded, fn, args, source, dispensary_id)
            except BrokenProcessPool:
                self._replace_broken(generation)
                continue  # it never ran: simply submit again
            except RuntimeError:  # shut down meanwhile (rotated, or the pool closed)
                continue
            generation.in_flight += 1
            try:
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:
                self._replace_broken(generation)
                break
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self.closed() and future.cancelled() and not (task and task.cancelling()):
                    raise UsageError("the parse pool was closed before this job ran") from None
                raise
            finally:
                generation.in_flight -= 1
                if generation.retired and not generation.in_flight:
                    self._retired.discard(generation)
        return await self._run_isolated(fn, args, source, dispensary_id)

    async def _run_isolated(
        self, fn: Callable[..., T], args: tuple[Any, ...], source: str, dispensary_id: str
    ) -> T:
        """Run a suspect alone in a single-worker executor: if the worker dies now, the job
        is the cause. Up to ``workers`` suspects run at once, each in its own executor."""
        async with self._isolation_slots:
            if self._closed:
                raise UsageError("the parse pool is closed")
            self._isolated += 1
            if self._spare:
                executor = self._spare.pop()
            else:
                executor = self._executor(1)
                self._isolation.add(executor)
            reusable = False
            try:
                future = await asyncio.to_thread(
                    executor.submit, _run_guarded, fn, args, source, dispensary_id
                )
                try:
                    result = await asyncio.wrap_future(future)
                except BrokenProcessPool as exc:
                    self._killers += 1
                    LOG.warning("%s %s: a parse job killed its worker twice", source, dispensary_id)
                    raise UpstreamParseError(
                        "the parse worker process died while running this job, and again when "
                        "the job ran alone: the input is refused",
                        source=source,
                        dispensary_id=dispensary_id,
                    ) from exc
                except Exception:
                    reusable = True
                    raise
                reusable = True
                return result
            finally:
                if reusable and not self._closed:
                    self._spare.append(executor)
                else:  # broken, or a cancelled job may still be running in it
                    self._isolation.discard(executor)
                    executor.shutdown(wait=False, cancel_futures=True)
