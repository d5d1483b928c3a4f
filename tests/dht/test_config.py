"""Configuration and contact values refuse what cannot work."""

from __future__ import annotations

import os

import pytest

import whnode.dht
from whnode.dht import Contact, DhtConfig, DhtError, DhtNode, DhtUsageError, NodeId, PublicKey
from whnode.errors import ConfigError, RemoteError, UsageError


@pytest.mark.parametrize(
    "changes",
    [
        {"ksize": 0},
        {"alpha": 0},
        {"rpc_timeout": 0.0},
        {"rpc_timeout": float("inf")},
        {"lookup_deadline": -1.0},
        {"misses_before_eviction": 0},
        {"owner_cache_seconds": -1.0},
        {"lookup_width": 0},
        {"stall_timeout": float("nan")},
        {"advertise_host": "node.example.com"},
    ],
)
def test_invalid_configuration_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        DhtConfig(**changes)  # type: ignore[arg-type]


def test_defaults_match_the_contract() -> None:
    config = DhtConfig()
    assert (config.ksize, config.alpha, config.rpc_timeout) == (20, 3, 2.0)
    assert (config.misses_before_eviction, config.lookup_deadline) == (3, 5.0)
    assert (config.routing_only, config.owner_cache_seconds) == (False, 5.0)
    assert config.contacts_per_reply == 20
    assert config.stop_width == 8
    assert DhtConfig(ksize=4).stop_width == 4
    assert DhtConfig(lookup_width=None).stop_width == 20


@pytest.mark.parametrize(
    ("node_id", "host", "port"),
    [
        (bytes(range(19)), "192.0.2.1", 1),
        (bytes(range(20)), "example.com", 1),
        (bytes(range(20)), "192.0.2.1", 0),
        (bytes(range(20)), "192.0.2.1", 65536),
    ],
)
def test_invalid_contacts_cannot_be_built(node_id: bytes, host: str, port: int) -> None:
    with pytest.raises(DhtUsageError):
        Contact(NodeId(node_id), host, port)


def test_contact_host_is_canonical_and_flag_not_in_equality() -> None:
    node_id = NodeId(os.urandom(20))
    contact = Contact(node_id, "2001:DB8:0::1", 9)
    assert contact.host == "2001:db8::1"
    assert contact == Contact(node_id, "2001:db8::1", 9, routing_only=True)
    assert contact.address == ("2001:db8::1", 9)


def test_public_key_must_be_32_bytes() -> None:
    with pytest.raises(DhtUsageError):
        DhtNode(PublicKey(os.urandom(31)))


def test_exception_tree() -> None:
    assert issubclass(DhtError, RemoteError)
    assert issubclass(DhtUsageError, UsageError)
    assert issubclass(whnode.dht.InvalidMessage, DhtError)
    assert issubclass(whnode.dht.IdentityMismatch, whnode.dht.InvalidMessage)


def test_public_names_are_pinned() -> None:
    assert sorted(whnode.dht.__all__) == [
        "Contact",
        "DhtConfig",
        "DhtError",
        "DhtNode",
        "DhtStatistics",
        "DhtUsageError",
        "IdentityMismatch",
        "InvalidMessage",
        "NodeId",
        "PeersFileError",
        "PublicKey",
        "node_id_for",
        "xor_distance",
    ]
    for name in whnode.dht.__all__:
        assert getattr(whnode.dht, name) is not None
