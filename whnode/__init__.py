"""whnode: a peer-to-peer cache network for dispensary menus.

The public surface::

    whnode.Node      a full node embedded in-process (whnode.node)
    whnode.Client    a light client of one or more nodes' HTTP API that verifies every
                     record's signature itself (whnode.client)
    whnode.Config    the one configuration object (whnode.config)
    whnode.WhnodeError, UsageError, ConfigError, RemoteError   the exception root and its
                     two branches (whnode.errors)

``Node`` and ``Client`` are imported on first use: ``import whnode.record`` (done by every
parse worker process) must not pull in aiohttp, kademlia and the whole node.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from whnode.errors import ConfigError, RemoteError, UsageError, WhnodeError
from whnode.version import VERSION

if TYPE_CHECKING:
    from whnode.client import Client
    from whnode.config import Config
    from whnode.node import Node

__all__ = [
    "Client",
    "Config",
    "ConfigError",
    "Node",
    "RemoteError",
    "UsageError",
    "WhnodeError",
    "__version__",
]

__version__: str = VERSION

_LAZY = {"Node": "whnode.node", "Client": "whnode.client", "Config": "whnode.config"}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'whnode' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
