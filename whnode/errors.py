"""The root of every exception whnode raises on purpose.

::

    WhnodeError
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

__all__ = ["ConfigError", "RemoteError", "UsageError", "WhnodeError"]


class WhnodeError(Exception):
    """Base class of every whnode exception."""


class UsageError(WhnodeError):
    """The caller misused an API or gave an invalid value."""


class ConfigError(UsageError):
    """A configuration value (file, environment or flag) is invalid."""


class RemoteError(WhnodeError):
    """Something outside this process (a peer, a file, an upstream) misbehaved."""
