"""The names ``import whnode`` offers are pinned."""

from __future__ import annotations

import subprocess
import sys

import whnode


def test_all_is_pinned() -> None:
    assert whnode.__all__ == [
        "Client",
        "Config",
        "ConfigError",
        "Node",
        "RemoteError",
        "UsageError",
        "WhnodeError",
        "__version__",
    ]


def test_every_name_resolves_to_the_right_object() -> None:
    from whnode.client import Client
    from whnode.config import Config
    from whnode.errors import ConfigError, RemoteError, UsageError, WhnodeError
    from whnode.node import Node

    assert whnode.Node is Node
    assert whnode.Client is Client
    assert whnode.Config is Config
    assert (whnode.WhnodeError, whnode.UsageError, whnode.ConfigError, whnode.RemoteError) == (
        WhnodeError,
        UsageError,
        ConfigError,
        RemoteError,
    )
    assert whnode.__version__ == "0.1.0"
    assert set(dir(whnode)) >= set(whnode.__all__)


def test_importing_the_record_layer_does_not_import_the_node() -> None:
    """Parse workers import whnode.record: they must not pay for aiohttp and the DHT."""
    code = (
        "import sys, whnode.record.model; "
        "print(sorted(m for m in ('whnode.node', 'aiohttp', 'kademlia') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
