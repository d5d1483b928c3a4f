"""``whnode init`` and ``whnode id``: data directory, identity, commented whnode.toml."""

from __future__ import annotations

import hashlib
import json
import re
import stat
import tomllib
from pathlib import Path

from whnode.config import Config, build_config

from .conftest import Cli, run_process


def identity_of(cli: Cli, data_dir: Path) -> dict[str, str]:
    outcome = cli("id", "--json", "--data-dir", str(data_dir))
    assert outcome.code == 0, outcome.err
    document: dict[str, str] = json.loads(outcome.out)
    return document


def test_init_creates_directory_identity_and_config(cli: Cli, tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    outcome = cli("init", "--data-dir", str(data_dir))
    assert outcome.code == 0, outcome.err
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    config_file = data_dir / "whnode.toml"
    assert tomllib.loads(config_file.read_text(encoding="utf-8")) == {
        name: {} for name in Config.__dataclass_fields__ if name != "upstream"
    } | {"upstream": {}}
    identity = identity_of(cli, data_dir)
    public_key = bytes.fromhex(identity["public_key"])
    assert len(public_key) == 32
    assert identity["node_id"] == hashlib.sha1(public_key).hexdigest()
    assert identity["node_id"] in outcome.out
    plain = cli("id", "--data-dir", str(data_dir))
    assert plain.out.split() == [
        "node",
        "id",
        identity["node_id"],
        "public",
        "key",
        public_key.hex(),
    ]


def test_init_refuses_to_overwrite_unless_forced(cli: Cli, tmp_path: Path) -> None:
    assert cli("init", "--data-dir", str(tmp_path)).code == 0
    before = identity_of(cli, tmp_path)
    (tmp_path / "whnode.toml").write_text("[node]\nport = 1234\n", encoding="utf-8")
    again = cli("init", "--data-dir", str(tmp_path), "--port", "9")
    assert again.code == 2
    target = tmp_path / "whnode.toml"
    assert again.err == f"whnode: error: {target} already exists; use --force to overwrite it\n"
    assert "port = 1234" in (tmp_path / "whnode.toml").read_text(encoding="utf-8")
    forced = cli("init", "--data-dir", str(tmp_path), "--port", "9", "--force")
    assert forced.code == 0, forced.err
    assert identity_of(cli, tmp_path) == before  # the identity is never replaced
    assert build_config(environ={}, flags={"node.data_dir": str(tmp_path)}).node.port == 9


def test_init_writes_flags_as_active_values(cli: Cli, tmp_path: Path) -> None:
    outcome = cli(
        "init",
        "--data-dir",
        str(tmp_path),
        "--port",
        "9100",
        "--seed",
        "seed.example:8468",
        "--set",
        "cache.history_per_dispensary=7",
        "--set",
        "node.routing_only=yes",
        env={"WHNODE_NODE_REPLICATION": "5"},
    )
    assert outcome.code == 0, outcome.err
    text = (tmp_path / "whnode.toml").read_text(encoding="utf-8")
    assert tomllib.loads(text) == {
        "node": {"port": 9100, "seeds": ["seed.example:8468"], "routing_only": True},
        "cache": {"history_per_dispensary": 7},
        "freshness": {},
        "upstream": {},
        "pool": {},
        "api": {},
        "trust": {},
        "log": {},
        "seed": {},
    }  # the environment is not written into the file
    assert "# Number of owners (r) that hold each dispensary's records.\n# replication = 7" in text


def test_every_commented_default_is_valid(cli: Cli, tmp_path: Path) -> None:
    assert cli("init", "--data-dir", str(tmp_path)).code == 0
    text = (tmp_path / "whnode.toml").read_text(encoding="utf-8")
    uncommented = re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE)
    assert uncommented != text
    path = tmp_path / "uncommented.toml"
    path.write_text(uncommented, encoding="utf-8")
    effective = build_config(config_file=path, environ={}, flags={"node.data_dir": str(tmp_path)})
    assert effective == build_config(environ={}, flags={"node.data_dir": str(tmp_path)})


def test_init_validates_before_writing(cli: Cli, tmp_path: Path) -> None:
    outcome = cli("init", "--data-dir", str(tmp_path / "x"), "--port", "99999")
    assert outcome.code == 2
    assert "node.port must be 0..65535" in outcome.err
    assert not (tmp_path / "x" / "whnode.toml").exists()


def test_id_never_creates_an_identity(cli: Cli, tmp_path: Path) -> None:
    for data_dir in (tmp_path / "missing", tmp_path):
        outcome = cli("id", "--data-dir", str(data_dir))
        assert outcome.code == 2
        assert outcome.err == (
            f"whnode: error: no node identity in {data_dir}; run `whnode init` first\n"
        )
    assert list(tmp_path.iterdir()) == []


def test_init_and_id_as_real_processes_use_the_environment(tmp_path: Path) -> None:
    env = {"WHNODE_NODE_DATA_DIR": str(tmp_path / "env-dir")}
    assert run_process("init", env=env, cwd=tmp_path).code == 0
    shown = run_process("id", "--json", env=env, cwd=tmp_path)
    assert shown.code == 0, shown.err
    assert len(json.loads(shown.out)["node_id"]) == 40
    assert (tmp_path / "env-dir" / "whnode.toml").is_file()
