"""The persisted peer list: plain JSON, atomic, validated on the way in."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from whnode.dht import Contact, NodeId, PeersFileError
from whnode.dht.peers_file import MAX_PEERS_FILE_BYTES, load_peers, save_peers


def contacts(count: int) -> list[Contact]:
    return [
        Contact(NodeId(os.urandom(20)), "192.0.2.1", 2000 + index, routing_only=index % 2 == 1)
        for index in range(count)
    ]


def test_round_trip_is_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "state" / "peers.json"
    peers = [*contacts(5), Contact(NodeId(os.urandom(20)), "2001:db8::7", 8468)]
    save_peers(path, os.urandom(20), peers)
    document = json.loads(path.read_text("utf-8"))
    assert document["format"] == "whnode-peers"
    assert len(document["peers"]) == 6
    loaded = load_peers(path, limit=100)
    assert loaded == peers
    assert [contact.routing_only for contact in loaded] == [c.routing_only for c in peers]
    assert load_peers(path, limit=2) == peers[:2]
    assert os.listdir(path.parent) == ["peers.json"]  # no temporary file left behind


def test_missing_file_is_an_empty_list(tmp_path: Path) -> None:
    assert load_peers(tmp_path / "absent.json", limit=10) == []


def test_overwrite_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    save_peers(path, os.urandom(20), contacts(3))
    newer = contacts(2)
    save_peers(path, os.urandom(20), newer)
    assert load_peers(path, limit=10) == newer


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe not utf-8",
        b"[1, 2, 3]",
        b'{"format": "whnode-peers", "version": 2, "peers": []}',
        b'{"format": "other", "version": 1, "peers": []}',
        b'{"format": "whnode-peers", "version": 1, "peers": [1]}',
        b'{"format": "whnode-peers", "version": 1, "peers": '
        b'[{"node_id": "00", "host": "192.0.2.1", "port": 1}]}',
        b'{"format": "whnode-peers", "version": 1, "peers": [{"node_id": "'
        + b"0" * 40
        + b'", "host": "example.com", "port": 1}]}',
        b'{"format": "whnode-peers", "version": 1, "peers": [{"node_id": "'
        + b"0" * 40
        + b'", "host": "192.0.2.1", "port": 70000}]}',
        b'{"format": "whnode-peers", "version": 1, "peers": [{"node_id": "'
        + b"z" * 40
        + b'", "host": "192.0.2.1", "port": 7}]}',
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(content)
    with pytest.raises(PeersFileError):
        load_peers(path, limit=10)


def test_pickle_is_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(pickle.dumps({"neighbors": [("192.0.2.1", 1)]}))
    with pytest.raises(PeersFileError):
        load_peers(path, limit=10)


def test_oversize_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(b" " * (MAX_PEERS_FILE_BYTES + 1))
    with pytest.raises(PeersFileError, match="larger"):
        load_peers(path, limit=10)
