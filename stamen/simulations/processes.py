"""Stopping every process a run started, including those that left its process tree.

Flower's SuperLink starts ``flwr-simulation`` in a session of its own, and Ray's agents are
re-parented to init when the raylet exits, so neither a process group nor one look at the
tree of children reaches them all. Every process of a run inherits one environment
variable, ``STAMEN_RUN_MARKER``; Ray's workers rename themselves (``ray::...``), which can
overwrite what ``/proc`` shows of their environment, so their parents' trees are followed
too, and every process seen once is followed until it is gone. Linux only (``/proc``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

MARKER_VARIABLE = "STAMEN_RUN_MARKER"


def run_processes(marker: str) -> set[int]:
    """Live processes whose environment holds ``marker``, and all their descendants."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    parent_of: dict[int, int] = {}
    roots = set()
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            state, ppid = _state_and_parent(pid)
            marked = needle in (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if state != "Z":
            parent_of[pid] = ppid
            if marked:
                roots.add(pid)
    found = set(roots)
    while True:
        children = {pid for pid, ppid in parent_of.items() if ppid in found} - found
        if not children:
            return found
        found |= children


def stop_run_processes(marker: str, grace_s: float = 5.0, timeout_s: float = 60.0) -> None:
    """Stop every process of the run: SIGTERM, then SIGKILL after ``grace_s``.

    Ray may still start agents while its parents are being stopped, so this keeps scanning
    until no such process has been seen for a second (or ``timeout_s`` has passed).
    """
    signalled: dict[int, float] = {}
    quiet_since = None
    deadline = time.monotonic() + timeout_s
    while (now := time.monotonic()) < deadline:
        pids = run_processes(marker) | {pid for pid in signalled if _alive(pid)}
        if pids:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= 1.0:
            return
        for pid in pids:
            if pid not in signalled:
                _signal(pid, signal.SIGTERM)
                signalled[pid] = now
            elif now - signalled[pid] > grace_s:
                _signal(pid, signal.SIGKILL)
        time.sleep(0.1)


def _state_and_parent(pid: int) -> tuple[str, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    try:
        return _state_and_parent(pid)[0] != "Z"
    except OSError:
        return False


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
