"""One lifecycle name: ``aclose()`` ends what whnode starts; the old names warn and still work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from whnode.dht import DhtConfig, DhtNode, PublicKey
from whnode.node import Node
from whnode.store.durable import DurableStore
from whnode.testing.cluster import LocalCluster
from whnode.upstream.http import UpstreamHttp
from whnode.upstream.pool import ParsePool


@pytest.mark.parametrize(
    ("cls", "old"),
    [
        (Node, "stop"),
        (DhtNode, "stop"),
        (DurableStore, "close"),
        (UpstreamHttp, "close"),
        (ParsePool, "close"),
        (LocalCluster, "stop"),
    ],
)
def test_every_resource_ends_with_aclose_and_keeps_its_old_name_for_a_release(
    cls: type[Any], old: str
) -> None:
    assert callable(cls.aclose)
    assert getattr(cls, old).__wrapped__ is cls.aclose


async def test_an_old_name_warns_and_still_closes(tmp_path: Path) -> None:
    node = DhtNode(PublicKey(os.urandom(32)), DhtConfig(), peers_file=tmp_path / "peers.json")
    await node.listen("127.0.0.1", 0)
    with pytest.warns(DeprecationWarning, match=r"DhtNode.stop\(\) is deprecated; use aclose"):
        await node.stop()
    store = await DurableStore.open(
        tmp_path / "store.sqlite3", history_per_dispensary=4, max_bytes=1 << 24
    )
    with pytest.warns(DeprecationWarning, match="use aclose"):
        await store.close()
    await store.aclose()  # twice is harmless
