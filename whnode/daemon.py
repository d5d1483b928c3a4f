"""The node daemon: one :class:`whnode.node.Node` in the foreground, its lifetime tied to signals.

:func:`run` is what ``whnode run`` calls with the config the CLI built. It owns the event loop
(uvloop when installed; the library never requires it) and every signal:

- SIGTERM and the first SIGINT stop the node within ``node.drain_timeout`` (8 s): first
  ``/readyz`` answers 503 while everything is still served (a quarter of the drain, at most
  2 s: load balancers and clients stop sending), then the listener closes and in-flight
  requests get the rest of the drain; then everything closes (at most 5 s more) and the
  exit code is 0. A second SIGTERM/SIGINT while draining abandons the drain (exit code 130).
- Under systemd (``Type=notify``), ``READY=1`` is sent once the node serves, ``RELOADING=1``
  around a SIGHUP and ``STOPPING=1`` when the drain begins (``whnode.sdnotify``).
- SIGHUP rebuilds the configuration (the CLI passes a ``reload`` callable that rereads the
  config file with the same environment and flags) and hands it to
  ``Node.reload_sources(config)``; an invalid file is logged and the running sources are kept.

Nothing here reads argv or the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from whnode.config import Config
from whnode.errors import WhnodeError
from whnode.sdnotify import Notifier

if TYPE_CHECKING:
    from whnode.node import Node
    from whnode.service.types import MenuAnswer

__all__ = ["EXIT_FORCED", "EXIT_OK", "fetch_menu", "loop_factory", "run", "serve"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FORCED = 130
"""A second stop signal abandoned the drain."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

STOP_GRACE_SECONDS = 5.0
"""Time allowed beyond ``node.drain_timeout`` for closing stores, pools and sockets."""
NOT_READY_SECONDS = 2.0
"""First phase of a drain: ``/readyz`` answers 503 while everything is still served."""
NOT_READY_SHARE = 0.25
"""... for at most this share of ``node.drain_timeout``."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when uvloop is installed, else None (the default loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(
    config: Config,
    *,
    reload: Callable[[], Config] | None = None,
    notifier: Notifier | None = None,
) -> int:
    """Serve ``config``'s node until a stop signal; return the process exit code.

    ``notifier`` tells systemd (``Type=notify``) when the node is ready, reloading and
    stopping; the CLI builds it from ``$NOTIFY_SOCKET``.
    """
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(serve(config, reload=reload, notifier=notifier))


class _Signals:
    """Signal handlers on the running loop: stop requests and reload requests."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.reload = asyncio.Event()
        self.stop_signal: int | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._on_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self.reload.set)

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (*STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(signum)

    def _on_stop(self, signum: int) -> None:
        if self.stop.is_set():
            log.warning("second stop signal: abandoning the drain")
            self.force.set()
            return
        self.stop_signal = signum
        log.info("received %s: draining and stopping", signal.Signals(signum).name)
        self.stop.set()


async def _first(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of ``awaitables`` completes; cancel the others."""
    tasks = [asyncio.ensure_future(item) for item in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve(
    config: Config,
    *,
    reload: Callable[[], Config] | None = None,
    started: Callable[[Node], None] | None = None,
    notifier: Notifier | None = None,
) -> int:
    """Start a node, serve until a stop signal, drain and stop; return the exit code.

    ``started`` is called with the running node once it serves (for embedding and tests).
    """
    from whnode.node import Node

    loop = asyncio.get_running_loop()
    notify = notifier or Notifier(None)
    signals = _Signals()
    signals.install(loop)
    try:
        node = Node(config)
        start = asyncio.ensure_future(node.start())
        await _first(asyncio.shield(start), signals.stop.wait())
        if not start.done():  # a stop signal during start-up
            start.cancel()
        try:
            await start
        except asyncio.CancelledError:
            log.info("start-up interrupted")
        except BaseException:
            with contextlib.suppress(Exception):  # release whatever did start
                await node.aclose(drain_timeout=0)
            raise
        else:
            log.info(
                "daemon running on the %s event loop: SIGTERM or Ctrl-C drains and stops%s",
                type(loop).__module__.partition(".")[0],
                "" if config.node.routing_only else ", SIGHUP reloads the upstream sources",
            )
            notify.ready(f"serving on {node.http_url}")
            if started is not None:
                started(node)
            reloader = asyncio.ensure_future(_reload_loop(node, config, signals, reload, notify))
            await _first(signals.stop.wait(), reloader)
        return await _stop(node, config, signals, notify)
    finally:
        signals.uninstall(loop)


async def _stop(node: Node, config: Config, signals: _Signals, notify: Notifier) -> int:
    """Drain within ``node.drain_timeout``, then close (module docstring)."""
    loop = asyncio.get_running_loop()
    drain = config.node.drain_timeout
    drain_deadline = loop.time() + drain
    node.begin_drain()
    notify.stopping("draining")
    unready = min(NOT_READY_SECONDS, drain * NOT_READY_SHARE)
    if config.node.routing_only:  # a seed answers datagrams, nothing a balancer drains
        unready = 0.0
    if unready > 0:
        log.info(
            "draining: /readyz answers 503 for %.1f s, then the listener closes and in-flight"
            " requests get %.1f s more",
            unready,
            drain - unready,
        )
        await _first(asyncio.sleep(unready), signals.force.wait())
    remaining = max(0.0, drain_deadline - loop.time())
    stopping = asyncio.ensure_future(node.aclose(drain_timeout=remaining))
    deadline = remaining + STOP_GRACE_SECONDS
    try:
        async with asyncio.timeout(deadline):
            await _first(asyncio.shield(stopping), signals.force.wait())
    except TimeoutError:
        log.error("stop did not finish within %.1f s of the drain", deadline)
    if not stopping.done():
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        return EXIT_FORCED
    stopping.result()  # surface an error raised while stopping
    log.info("stopped")
    return EXIT_OK


async def _reload_loop(
    node: Node,
    config: Config,
    signals: _Signals,
    reload: Callable[[], Config] | None,
    notify: Notifier,
) -> None:
    current = config
    while True:
        await signals.reload.wait()
        signals.reload.clear()
        notify.reloading()
        try:
            current = await _reload_once(node, current, reload)
        finally:
            notify.ready(f"serving on {node.http_url}")


async def _reload_once(node: Node, current: Config, reload: Callable[[], Config] | None) -> Config:
    """Apply one SIGHUP; returns the configuration now in force."""
    if reload is None:
        log.warning("SIGHUP: this node has no configuration file to reload")
        return current
    try:
        fresh = await asyncio.to_thread(reload)
    except WhnodeError as exc:
        log.error("SIGHUP: configuration not reloaded: %s", exc)
        return current
    try:
        node.reload_sources(fresh)
    except WhnodeError as exc:
        log.error("SIGHUP: sources not reloaded: %s", exc)
        return current
    except Exception:
        log.exception("SIGHUP: reloading sources failed; the running sources are kept")
        return current
    ignored = _changed_sections(current, fresh) - {"upstream"}
    if ignored:
        log.warning("SIGHUP: changes to [%s] take effect on restart", "], [".join(ignored))
    log.info("SIGHUP: reloaded %d upstream source(s)", len(fresh.upstream.sources))
    return dataclasses.replace(current, upstream=fresh.upstream)


def _changed_sections(old: Config, new: Config) -> set[str]:
    return {
        field.name
        for field in dataclasses.fields(old)
        if getattr(old, field.name) != getattr(new, field.name)
    }


async def fetch_menu(
    config: Config, dispensary_id: str, *, max_age: float | None, at_ms: int | None
) -> MenuAnswer:
    """Start a node in this process, answer one menu request, stop; returns a MenuAnswer."""
    from whnode.node import Node

    async with Node(config) as node:
        return await node.service.get_menu(dispensary_id, max_age=max_age, at_ms=at_ms)
