"""The daemon's lifetime as a service manager sees it, with real processes: sd_notify
(READY, RELOADING, STOPPING) and a drain that ends within node.drain_timeout after a
readiness-503 phase."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from whnode.sdnotify import Notifier
from whnode.testing.clock import eventually_sync

LOOPBACK = "127.0.0.1"


def _environment(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WHNODE_", "NOTIFY_"))}
    return base | {"WHNODE_POOL_WORKERS": "1"} | extra


@contextmanager
def notify_socket(path: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        yield sock


def receive(sock: socket.socket) -> dict[str, str]:
    message = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in message.splitlines())


def wait_api(data_dir: Path, process: subprocess.Popen[str]) -> str:
    eventually_sync(lambda: (data_dir / "api").exists() or process.poll() is not None)
    assert process.poll() is None
    return (data_dir / "api").read_text(encoding="utf-8").strip()


def test_run_tells_systemd_ready_reloading_and_stopping(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    with notify_socket(tmp_path / "notify") as sock:
        process = subprocess.Popen(
            [sys.executable, "-m", "whnode", "run", "--data-dir", str(data_dir), "--port", "0"],
            env=_environment(NOTIFY_SOCKET=str(tmp_path / "notify")),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ready = receive(sock)
            assert ready["READY"] == "1"
            assert ready["MAINPID"] == str(process.pid)
            assert ready["STATUS"].startswith("serving on http://")
            process.send_signal(signal.SIGHUP)
            reloading = receive(sock)
            assert reloading["RELOADING"] == "1"
            assert int(reloading["MONOTONIC_USEC"]) > 0
            assert receive(sock)["READY"] == "1"
            process.send_signal(signal.SIGTERM)
            assert receive(sock)["STOPPING"] == "1"
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()


def test_seed_tells_systemd_ready_and_stopping(tmp_path: Path) -> None:
    with notify_socket(tmp_path / "notify") as sock:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "whnode",
                "seed",
                "--data-dir",
                str(tmp_path / "s"),
                "--port",
                "0",
            ],
            env=_environment(NOTIFY_SOCKET=str(tmp_path / "notify")),
            stderr=subprocess.DEVNULL,
        )
        try:
            assert receive(sock)["READY"] == "1"
            process.send_signal(signal.SIGTERM)
            assert receive(sock)["STOPPING"] == "1"
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_notifier_reaches_abstract_sockets_and_is_silent_outside_systemd() -> None:
    name = f"whnode-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert Notifier("@" + name).status("hello")
        assert sock.recv(100) == b"STATUS=hello"
    assert not Notifier(None).ready("x")
    assert not Notifier("/nonexistent/notify").ready("x")  # logged at DEBUG, never raised


def _log_time(log: str, fragment: str) -> datetime:
    for line in log.splitlines():
        if fragment in line:
            document = json.loads(line)
            return datetime.fromisoformat(document["ts"].replace("Z", "+00:00"))
    raise AssertionError(f"{fragment!r} not logged:\n{log}")


def test_drain_says_not_ready_first_and_ends_within_drain_timeout(tmp_path: Path) -> None:
    drain = 8.0  # two seconds of not-ready: room for a loaded machine to see it
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    with socket.socket() as mute:  # an upstream that accepts and never answers
        mute.bind((LOOPBACK, 0))
        mute.listen()
        (data_dir / "whnode.toml").write_text(
            f'[node]\ndrain_timeout = {drain}\n\n[[upstream.sources]]\nvendor = "jane"\n'
            f'base_url = "http://{LOOPBACK}:{mute.getsockname()[1]}"\n',
            encoding="utf-8",
        )
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "whnode",
                "run",
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
                "--log-format",
                "json",
            ],
            env=_environment(),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = wait_api(data_dir, process)
            in_flight = threading.Thread(
                target=lambda: _quietly(f"{url}/v1/menus/jane:1"), daemon=True
            )
            in_flight.start()
            mute.settimeout(20)
            upstream, _ = mute.accept()  # the fill is now waiting for the upstream
            process.send_signal(signal.SIGTERM)
            # phase one: not ready, still serving (the signal is handled within moments)
            eventually_sync(lambda: _status(f"{url}/readyz") == 503, timeout=20, poll=0.01)
            assert _status(f"{url}/healthz") == 200
            _, log = process.communicate(timeout=30)
            upstream.close()
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0
    took = (_log_time(log, "stopped") - _log_time(log, "received SIGTERM")).total_seconds()
    assert took < drain + 1.0, log
    assert re.search(r"/readyz answers 503 for 2\.0 s", log)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _quietly(url: str) -> None:
    try:
        _status(url)
    except OSError:
        pass  # the connection is closed when the drain ends
