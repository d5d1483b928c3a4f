"""Process-tree helpers for tests and benchmarks (Linux ``/proc``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["descendants", "living"]

PROC = Path("/proc")


def _status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = (PROC / str(pid) / "status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def _command(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every living descendant of ``pid`` (children, their children, ...) with its command
    line, found by scanning ``/proc`` for parent ids."""
    parents: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        status = _status(int(entry.name))
        if status.get("PPid", "").isdigit():
            parents.setdefault(int(status["PPid"]), []).append(int(entry.name))
    found: list[tuple[int, str]] = []
    pending = list(parents.get(pid, ()))
    while pending:
        child = pending.pop()
        found.append((child, _command(child)))
        pending.extend(parents.get(child, ()))
    return [item for item in found if living([item[0]])]


def living(pids: Iterable[int]) -> list[int]:
    """The pids that still run (a zombie, exited and not yet reaped, does not run)."""
    alive = []
    for pid in pids:
        state = _status(pid).get("State", "")
        if state and not state.startswith(("Z", "X")):
            alive.append(pid)
    return alive
