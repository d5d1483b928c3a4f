"""The persisted peer list: plain JSON, written atomically, never pickle (KADEMLIA.md 12).

Format (version 1)::

    {"format": "whnode-peers", "version": 1, "node_id": "<40 hex>",
     "peers": [{"node_id": "<40 hex>", "host": "192.0.2.7", "port": 8468,
                "routing_only": false}, ...]}

The file is only a hint: every peer read back is pinged, and its id verified against its
key, before it enters the routing table. These functions block (file I/O): call them in a
thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from whnode import limits
from whnode.dht.contact import NODE_ID_BYTES, Contact, NodeId
from whnode.dht.exceptions import PeersFileError
from whnode.errors import UsageError

__all__ = ["MAX_PEERS_FILE_BYTES", "load_peers", "save_peers"]

MAX_PEERS_FILE_BYTES: Final = limits.MAX_PEERS_FILE_BYTES
"""See whnode.limits."""
FORMAT = "whnode-peers"
VERSION = 1


def save_peers(path: Path, own_id: bytes, contacts: Sequence[Contact]) -> None:
    """Write ``contacts`` to ``path`` atomically (temporary file, fsync, rename)."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "node_id": own_id.hex(),
        "peers": [
            {
                "node_id": contact.node_id.hex(),
                "host": contact.host,
                "port": contact.port,
                "routing_only": contact.routing_only,
            }
            for contact in contacts
        ],
    }
    data = json.dumps(document, indent=1).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


def load_peers(path: Path, *, limit: int) -> list[Contact]:
    """Read at most ``limit`` contacts; a missing file is an empty list.

    Raises PeersFileError when the file is unreadable, too large or malformed.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PEERS_FILE_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PeersFileError(f"cannot read {path}: {exc}") from exc
    if len(data) > MAX_PEERS_FILE_BYTES:
        raise PeersFileError(f"{path} is larger than {MAX_PEERS_FILE_BYTES} bytes")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PeersFileError(f"{path} is not JSON: {exc}") from exc
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or document.get("version") != VERSION
        or not isinstance(document.get("peers"), list)
    ):
        raise PeersFileError(f"{path} is not a version {VERSION} whnode peer list")
    contacts: list[Contact] = []
    for entry in document["peers"][:limit]:
        contacts.append(_decode_entry(path, entry))
    return contacts


def _decode_entry(path: Path, entry: object) -> Contact:
    if not isinstance(entry, dict):
        raise PeersFileError(f"{path}: a peer is an object")
    node_id, host, port = entry.get("node_id"), entry.get("host"), entry.get("port")
    routing_only = entry.get("routing_only", False)
    if (
        not isinstance(node_id, str)
        or len(node_id) != 2 * NODE_ID_BYTES
        or not isinstance(host, str)
        or type(port) is not int
        or not isinstance(routing_only, bool)
    ):
        raise PeersFileError(f"{path}: malformed peer {entry!r:.200}")
    try:
        return Contact(NodeId(bytes.fromhex(node_id)), host, port, routing_only=routing_only)
    except (ValueError, UsageError) as exc:
        raise PeersFileError(f"{path}: malformed peer {entry!r:.200}") from exc
