"""The node identity file: created once, 0600, atomic; unsafe or corrupt files refused."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from whnode.identity import IDENTITY_FILE, IdentityError, load_or_create_identity
from whnode.record.keys import node_id_for


def test_created_once_with_mode_0600_and_reloaded(tmp_path: Path) -> None:
    key = load_or_create_identity(tmp_path / "data")
    path = tmp_path / "data" / IDENTITY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_identity(tmp_path / "data")
    assert again.public_key == key.public_key
    assert node_id_for(key.public_key) == key.node_id
    assert [p.name for p in path.parent.iterdir()] == [IDENTITY_FILE]


def test_group_or_world_readable_key_is_refused(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    os.chmod(tmp_path / IDENTITY_FILE, 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_or_create_identity(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not hex at all\n", b"ab" * 31 + b"\n", b"\xff\xfe"])
def test_corrupt_key_is_refused_not_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / IDENTITY_FILE
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(IdentityError, match="corrupt"):
        load_or_create_identity(tmp_path)
    assert path.read_bytes() == content


def test_leftover_temporary_file_does_not_matter(tmp_path: Path) -> None:
    (tmp_path / f".{IDENTITY_FILE}.123.abcd.tmp").write_text("garbage")
    key = load_or_create_identity(tmp_path)
    assert load_or_create_identity(tmp_path).public_key == key.public_key


def test_concurrent_creators_in_several_processes_end_with_one_key(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; "
        "from whnode.identity import load_or_create_identity; "
        "print(load_or_create_identity(Path(sys.argv[1])).public_key.hex())"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    outputs = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert all(process.returncode == 0 for process in processes)
    assert len(outputs) == 1
    assert load_or_create_identity(tmp_path).public_key.hex() in outputs
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
