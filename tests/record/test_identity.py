"""The node identity file: created once, 0600, atomically; unsafe or corrupt files refused."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from whnode.errors import UsageError
from whnode.identity import (
    IDENTITY_FILE,
    IdentityError,
    identity_path,
    load_identity,
    load_or_create_identity,
)
from whnode.record.keys import SigningKey, node_id_for


def test_created_once_with_mode_0600_and_reloaded(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = load_or_create_identity(data_dir)
    path = data_dir / IDENTITY_FILE
    assert identity_path(data_dir) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) & 0o077 == 0
    again = load_or_create_identity(data_dir)
    assert again.public_key == key.public_key
    assert node_id_for(again.public_key) == key.node_id
    assert [entry.name for entry in data_dir.iterdir()] == [IDENTITY_FILE]


def test_the_file_holds_the_seed_as_64_hex_digits(tmp_path: Path) -> None:
    key = load_or_create_identity(tmp_path)
    assert (tmp_path / IDENTITY_FILE).read_text() == key.private_bytes().hex() + "\n"
    assert SigningKey.from_private_bytes(key.private_bytes()).public_key == key.public_key


def test_an_existing_data_dir_keeps_its_mode(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    load_or_create_identity(tmp_path)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602, 0o700, 0o610])
def test_a_key_accessible_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    load_or_create_identity(tmp_path)
    path = tmp_path / IDENTITY_FILE
    os.chmod(path, mode)
    if mode & 0o077 == 0:
        load_or_create_identity(tmp_path)  # 0700 is the owner's business
        return
    with pytest.raises(IdentityError, match=f"chmod 600 {path}"):
        load_or_create_identity(tmp_path)


def test_a_read_only_key_is_fine(tmp_path: Path) -> None:
    key = load_or_create_identity(tmp_path)
    os.chmod(tmp_path / IDENTITY_FILE, 0o400)
    assert load_or_create_identity(tmp_path).public_key == key.public_key


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n",
        b"not hex at all\n",
        b"ab" * 31 + b"\n",
        b"ab" * 33 + b"\n",
        b"\xff\xfe",
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        b"0" * 10_000,
    ],
)
def test_a_corrupt_key_is_refused_not_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / IDENTITY_FILE
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(IdentityError, match="corrupt"):
        load_or_create_identity(tmp_path)
    assert path.read_bytes() == content


def test_a_key_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / IDENTITY_FILE).mkdir(mode=0o700)
    with pytest.raises(IdentityError, match="regular file"):
        load_or_create_identity(tmp_path)


def test_a_dangling_symlink_is_refused_not_replaced(tmp_path: Path) -> None:
    (tmp_path / IDENTITY_FILE).symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(IdentityError, match="cannot read"):
        load_or_create_identity(tmp_path)
    assert (tmp_path / IDENTITY_FILE).is_symlink()


def test_an_unwritable_data_dir_is_an_identity_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(IdentityError, match="cannot create"):
        load_or_create_identity(blocker / "data")


def test_identity_errors_are_usage_errors() -> None:
    assert issubclass(IdentityError, UsageError)


def test_a_missing_file_is_an_identity_error_when_loading_directly(tmp_path: Path) -> None:
    with pytest.raises(IdentityError):
        load_identity(tmp_path / IDENTITY_FILE)


def test_a_leftover_temporary_file_does_not_matter(tmp_path: Path) -> None:
    leftover = tmp_path / f".{IDENTITY_FILE}.123.abcd1234.tmp"
    leftover.write_text("garbage from a crash")
    key = load_or_create_identity(tmp_path)
    assert load_or_create_identity(tmp_path).public_key == key.public_key
    assert leftover.read_text() == "garbage from a crash"


def test_concurrent_creators_in_several_processes_end_with_one_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    script = (
        "import sys, time; from pathlib import Path\n"
        "from whnode.identity import load_or_create_identity\n"
        "start = float(sys.argv[2])\n"
        "while time.time() < start: pass\n"
        "print(load_or_create_identity(Path(sys.argv[1])).public_key.hex())\n"
    )
    start = time.time() + 1.5  # every process is past its imports and waits for this moment
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(data_dir), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = [process.communicate(timeout=60) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err for _, err in results]
    keys = {out.strip() for out, _ in results}
    assert len(keys) == 1
    assert load_or_create_identity(data_dir).public_key.hex() in keys
    assert [entry.name for entry in data_dir.iterdir()] == [IDENTITY_FILE]


def test_a_creator_that_loses_the_race_uses_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = SigningKey.generate()
    real_link = os.link

    def link_after_someone_else(source: Path, destination: Path) -> None:
        descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(descriptor, winner.private_bytes().hex().encode() + b"\n")
        os.close(descriptor)
        real_link(source, destination)

    monkeypatch.setattr(os, "link", link_after_someone_else)
    assert load_or_create_identity(tmp_path).public_key == winner.public_key
    assert [entry.name for entry in tmp_path.iterdir()] == [IDENTITY_FILE]


def test_a_file_system_without_hard_links_still_gets_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*_: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    key = load_or_create_identity(tmp_path)
    assert stat.S_IMODE((tmp_path / IDENTITY_FILE).stat().st_mode) == 0o600
    assert load_or_create_identity(tmp_path).public_key == key.public_key
    assert [entry.name for entry in tmp_path.iterdir()] == [IDENTITY_FILE]
