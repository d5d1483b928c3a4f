"""Every documented exit code, the data-directory lock and the api file, through real
``python -m whnode`` processes on loopback (port 0 or ports held by the test itself)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from whnode.cli import ExitCode
from whnode.datadir import API_FILE_NAME, LOCK_FILE_NAME, DataDirLock
from whnode.testing.clock import eventually_sync

from .conftest import Cli, run_process

LOOPBACK = "127.0.0.1"


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WHNODE_")}


@contextmanager
def daemon(data_dir: Path, *argv: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``whnode run`` on ``data_dir`` with port 0; yields (process, URL from its api file)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "whnode", "run", "--data-dir", str(data_dir), "--port", "0", *argv],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=_environment() | {"WHNODE_POOL_WORKERS": "1"},
    )
    try:
        api = data_dir / API_FILE_NAME
        eventually_sync(lambda: api.exists() or process.poll() is not None)
        assert process.poll() is None, process.communicate()[0]
        yield process, api.read_text(encoding="utf-8").strip()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def test_ok_usage_and_runtime_codes_of_a_real_process(tmp_path: Path) -> None:
    assert run_process("config", "show", "--data-dir", str(tmp_path)).code == ExitCode.OK
    bad = run_process("config", "show", "--data-dir", str(tmp_path), "--set", "node.ksize=0")
    assert bad.code == ExitCode.USAGE_ERROR
    assert bad.err == "whnode: error: node.ksize must be at least 1, not 0\n"


@pytest.mark.parametrize(
    ("command", "kind", "process"),
    [
        ("run", socket.SOCK_DGRAM, True),  # one real process; the others in this process
        ("run", socket.SOCK_STREAM, False),
        ("seed", socket.SOCK_DGRAM, False),
        ("seed", socket.SOCK_STREAM, False),
    ],
)
def test_a_port_in_use_is_a_runtime_error_saying_so(
    cli: Cli, tmp_path: Path, command: str, kind: socket.SocketKind, process: bool
) -> None:
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind((LOOPBACK, 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        argv = (command, "--data-dir", str(tmp_path), "--host", LOOPBACK, "--port", str(port))
        outcome = run_process(*argv) if process else cli(*argv)
    protocol = "UDP" if kind == socket.SOCK_DGRAM else "TCP"
    assert outcome.code == ExitCode.RUNTIME_ERROR
    last = outcome.err.splitlines()[-1]
    assert (
        last
        == f"whnode: error: cannot listen on {protocol} {LOOPBACK}:{port}: Address already in use"
    )
    assert "Traceback" not in outcome.err


def test_the_data_directory_is_locked_while_a_node_runs(cli: Cli, tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    with daemon(data_dir) as (process, url):
        assert (data_dir / LOCK_FILE_NAME).read_text().strip() == str(process.pid)
        for argv in (
            ["run", "--data-dir", str(data_dir), "--port", "0"],
            ["get", "jane:1", "--embedded", "--data-dir", str(data_dir)],
            ["seed", "--data-dir", str(data_dir), "--port", "0"],
        ):
            # the daemon is another process; these run in this one (``main(argv)``)
            outcome = cli(*argv)
            assert outcome.code == ExitCode.RUNTIME_ERROR, argv
            assert f"data directory {data_dir} is in use by process {process.pid}" in outcome.err
            assert "Traceback" not in outcome.err
        # status, peers and get find the daemon through its api file, whatever its port
        status = run_process("status", "--data-dir", str(data_dir), "--json")
        assert status.code == ExitCode.OK, status.err
        assert json.loads(status.out)["address"].endswith(url.rpartition(":")[2])
        # exit code 3: a menu that does not exist, asked of the running node
        missing = run_process("get", "jane:1", "--at", "0", "--data-dir", str(data_dir))
        assert missing.code == ExitCode.NOT_FOUND, missing.err
    assert process.returncode == 0
    assert not (data_dir / API_FILE_NAME).exists()
    lock = DataDirLock(data_dir)  # the lock went with the process
    lock.acquire()
    lock.release()


def test_a_killed_daemon_leaves_no_lock_and_its_api_file_is_ignored(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    with daemon(data_dir) as (process, url):
        process.kill()
        process.wait()
        assert (data_dir / API_FILE_NAME).exists()
        # the stale api file is not trusted: status goes to the configured port instead
        port = url.rpartition(":")[2]
        outcome = run_process("status", "--data-dir", str(data_dir), "--set", "node.port=9")
        assert outcome.code == ExitCode.REMOTE_ERROR
        assert f":{port}" not in outcome.err
        assert "127.0.0.1:9" in outcome.err
    with daemon(data_dir) as (second, _):
        assert second.poll() is None


def test_run_creates_a_missing_data_directory_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "node"
    assert run_process("id", "--data-dir", str(data_dir)).code == ExitCode.USAGE_ERROR
    assert not data_dir.exists()  # id never creates anything
    with daemon(data_dir):
        assert data_dir.stat().st_mode & 0o777 == 0o700
        assert (data_dir / "identity.key").stat().st_mode & 0o777 == 0o600
    assert run_process("id", "--data-dir", str(data_dir)).code == ExitCode.OK


def test_healthz_answers_while_bootstrap_still_waits_for_seeds_and_no_upstream_is_called(
    tmp_path: Path,
) -> None:
    import urllib.error
    import urllib.request

    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent,  # a seed that never answers
        socket.socket() as vendor,  # the jane API: must never be called before joining
    ):
        silent.bind((LOOPBACK, 0))
        vendor.bind((LOOPBACK, 0))
        vendor.listen()
        vendor.setblocking(False)
        (tmp_path / "whnode.toml").write_text(
            f'[[upstream.sources]]\nvendor = "jane"\n'
            f'base_url = "http://{LOOPBACK}:{vendor.getsockname()[1]}"\n',
            encoding="utf-8",
        )
        seed = f"{LOOPBACK}:{silent.getsockname()[1]}"
        with daemon(tmp_path, "--seed", seed) as (process, url):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{url}/healthz", timeout=5)
            assert refused.value.code == 503
            assert refused.value.headers["Content-Type"] == "application/problem+json"
            with pytest.raises(urllib.error.HTTPError) as unready:
                urllib.request.urlopen(f"{url}/v1/menus/jane:1", timeout=10)
            assert unready.value.code == 503
            assert unready.value.headers["Retry-After"] == "5"
            assert "not joined the network" in unready.value.read().decode()
            with pytest.raises(BlockingIOError):
                vendor.accept()  # nobody connected to the vendor
            # bootstrap has not given up yet: the node answered while it was still joining
            os.set_blocking(process.stderr.fileno(), False)  # type: ignore[union-attr]
            log = process.stderr.read() or ""  # type: ignore[union-attr]
            assert "joining the network" in log
            assert "retrying in the background" not in log


def test_ctrl_c_interrupts_a_waiting_command_with_130(tmp_path: Path) -> None:
    with socket.socket() as mute:  # accepts connections, never answers
        mute.bind((LOOPBACK, 0))
        mute.listen()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "whnode",
                "status",
                "--node",
                f"http://{LOOPBACK}:{mute.getsockname()[1]}",
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
            cwd=tmp_path,
        )
        mute.settimeout(20)
        connection, _ = mute.accept()  # the command is now waiting for the answer
        with connection:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=20)
    assert process.returncode == ExitCode.INTERRUPTED, err
    assert err.splitlines()[-1] == "whnode: interrupted", err


def test_an_unreachable_node_is_a_remote_error(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind((LOOPBACK, 0))
        port = closed.getsockname()[1]
    outcome = run_process("peers", "--node", f"http://{LOOPBACK}:{port}", cwd=tmp_path)
    assert outcome.code == ExitCode.REMOTE_ERROR
    assert outcome.err.startswith("whnode: error: ")


@pytest.mark.parametrize(("level", "shown"), [("DEBUG", True), ("INFO", False)])
def test_log_level_debug_prints_debug_lines(tmp_path: Path, level: str, shown: bool) -> None:
    with daemon(tmp_path, "--log-level", level) as (process, _):
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=30)
    assert (" DEBUG whnode.node: configuration (secrets masked): {" in log) is shown, log
    assert (" DEBUG " in log) is shown
