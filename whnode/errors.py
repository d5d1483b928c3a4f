"""The root of every exception whnode raises on purpose.

::

    WhnodeError
    ├── ListenError                 a port or address could not be bound (exit code 1)
    ├── UsageError                  the caller misused the API or gave bad configuration
    │   └── ConfigError             (whnode.config) a configuration value is invalid
    └── RemoteError                 a peer, a file or an upstream misbehaved
        ├── RecordError             (whnode.record.exceptions) a record was refused
        ├── StoreError              (whnode.store.exceptions) the durable store failed
        ├── DhtError                (whnode.dht.exceptions) routing failed
        ├── PeerError               (whnode.peer.exceptions) a peer's HTTP answer was bad
        └── UpstreamError           (whnode.upstream.exceptions) an upstream API failed

Local misuse (``UsageError``) is kept apart from remote misbehaviour (``RemoteError``), as in
h11: the first is a bug or a typo to fix, the second is expected and counted. Foreign
exceptions (aiohttp, sqlite3, cbor2, kademlia) are translated at each layer's edge with
``raise ... from exc``.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ListenError", "RemoteError", "UsageError", "WhnodeError", "describe"]


class WhnodeError(Exception):
    """Base class of every whnode exception."""


class UsageError(WhnodeError):
    """The caller misused an API or gave an invalid value."""


class ConfigError(UsageError):
    """A configuration value (file, environment or flag) is invalid."""


class ListenError(WhnodeError):
    """A socket could not be bound: the port is in use, or the address is not this host's.

    A runtime condition of this machine, not a configuration error (exit code 1)."""


def describe(exc: OSError) -> str:
    """The system's own words for an OSError (``Address already in use``), without asyncio's
    or aiohttp's wrapping text."""
    import os

    cause: BaseException | None = exc
    while cause is not None:  # uvloop wraps the bind error in an OSError without errno
        if isinstance(cause, OSError) and cause.errno is not None:
            return os.strerror(cause.errno)
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


class RemoteError(WhnodeError):
    """Something outside this process (a peer, a file, an upstream) misbehaved."""
