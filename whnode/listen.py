"""One port number on two protocols: the DHT on UDP and HTTP on TCP, for a node and a seed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aiohttp import web

from whnode.dht import DhtNode
from whnode.errors import ListenError, describe

__all__ = ["BIND_ATTEMPTS", "listen_udp_and_tcp"]

BIND_ATTEMPTS: Final = 30
"""Attempts at finding a port number free for both UDP and TCP when the port is 0."""


async def listen_udp_and_tcp(
    host: str,
    port: int,
    new_dht: Callable[[], DhtNode],
    new_site: Callable[[int], web.BaseSite],
) -> tuple[DhtNode, int]:
    """Bind a new DHT node on UDP ``host:port``, then a new site on TCP at the port number it
    got; with port 0, a number taken on TCP is given up and another tried (BIND_ATTEMPTS).

    Raises ListenError naming the protocol and the system's reason (``Address already in
    use``); a DHT node whose TCP twin could not bind is closed again.
    """
    last_error: OSError | None = None
    for _ in range(BIND_ATTEMPTS if port == 0 else 1):
        dht = new_dht()
        try:
            bound = await dht.listen(host, port)
        except OSError as exc:
            raise ListenError(f"cannot listen on UDP {host}:{port}: {describe(exc)}") from exc
        try:
            await new_site(bound).start()
        except OSError as exc:
            last_error = exc
            await dht.aclose()
            continue
        return dht, bound
    reason = describe(last_error) if last_error is not None else "no free port number"
    raise ListenError(f"cannot listen on TCP {host}:{port}: {reason}")
