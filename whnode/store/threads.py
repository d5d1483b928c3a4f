"""Worker threads that run blocking calls for one event loop, answering in batches.

Like ``loop.run_in_executor`` on a ``ThreadPoolExecutor``, with two differences that matter
for a store doing thousands of small SQLite calls per second:

- the loop side creates one asyncio future per call and hands the call over through a
  ``queue.SimpleQueue`` (no concurrent.futures.Future, no chaining callbacks);
- a worker that finds more calls queued runs them back to back (up to ``MAX_BATCH``) and
  hands all their results to the loop with one ``call_soon_threadsafe``: one loop wake-up per
  batch instead of one per call when many coroutines use the store at once.

With one thread, calls run in submission order. A call whose awaiting coroutine was cancelled
still runs if it had been handed over (it cannot be interrupted); its result is dropped.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

__all__ = ["MAX_BATCH", "WorkerThreads"]

_T = TypeVar("_T")

MAX_BATCH: Final = 32
"""Most calls a worker runs before handing their results to the loop."""

_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any] | None"]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    """On the loop: complete the futures of one batch (skipping cancelled ones)."""
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class WorkerThreads:
    """``count`` daemon threads named ``name-N`` serving calls from one event loop."""

    def __init__(self, name: str, count: int) -> None:
        self._name = name
        self._count = count
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the threads; every later ``call`` must come from ``loop``."""
        self._loop = loop
        for index in range(self._count):
            thread = threading.Thread(target=self._serve, name=f"{self._name}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def call(self, function: Callable[..., _T], *arguments: Any) -> _T:
        """Run ``function(*arguments)`` on a worker thread and return (or raise) its outcome."""
        loop = self._loop
        assert loop is not None, "WorkerThreads.call before start"
        future: asyncio.Future[_T] = loop.create_future()
        self._queue.put((function, arguments, future))
        return await future

    def submit_nowait(self, function: Callable[..., object], *arguments: Any) -> None:
        """Queue ``function(*arguments)`` from any thread; its outcome is not reported.

        ``function`` must handle its own errors: an exception escaping it is dropped.
        """
        self._queue.put((function, arguments, None))

    def close(self) -> None:
        """Ask every thread to exit once the calls queued before this one have run."""
        for _ in self._threads:
            self._queue.put(None)

    def join(self) -> None:
        """Wait for the threads to exit (blocking: call it from another worker thread)."""
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    def _serve(self) -> None:
        while True:
            job = self._queue.get()
            outcomes: list[_Outcome] = []
            while job is not None:
                function, arguments, future = job
                try:
                    result = function(*arguments)
                except Exception as exc:
                    if future is not None:
                        outcomes.append((future, None, exc))
                else:
                    if future is not None:
                        outcomes.append((future, result, None))
                if len(outcomes) >= MAX_BATCH:
                    break
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
            if outcomes:
                self._hand_back(outcomes)
            if job is None:
                return

    def _hand_back(self, outcomes: list[_Outcome]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            loop.call_soon_threadsafe(_settle, outcomes)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for these results any more
