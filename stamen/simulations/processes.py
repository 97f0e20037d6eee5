"""Stopping every process a run started, including those that left its process tree.

Flower's SuperLink starts ``flwr-simulation`` in a session of its own, and Ray's agents are
re-parented to init when the raylet exits, so neither a process group nor one look at the
tree of children reaches them all. Every process of a run inherits one environment
variable, ``STAMEN_RUN_MARKER``; Ray's workers rename themselves (``ray::...``), which can
overwrite what ``/proc`` shows of their environment, so their parents' trees are followed
too, and every process seen once is followed until it is gone. ``stop_process_trees`` stops
given processes (a grid's workers) and all they started the same way. Linux only (``/proc``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

MARKER_VARIABLE = "STAMEN_RUN_MARKER"


def run_processes(marker: str) -> set[int]:
    """Live processes whose environment holds ``marker``, and all their descendants."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    parent_of = _live_parents()
    roots = set()
    for pid in parent_of:
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                roots.add(pid)
        except OSError:  # gone, or not ours to read
            continue
    return _with_descendants(roots, parent_of)


def stop_run_processes(marker: str, grace_s: float = 5.0, timeout_s: float = 60.0) -> None:
    """Stop every process of the run: SIGTERM, then SIGKILL after ``grace_s``.

    Ray may still start agents while its parents are being stopped, so this keeps scanning
    until no such process has been seen for a second (or ``timeout_s`` has passed).
    """
    _stop(lambda signalled: run_processes(marker), grace_s, timeout_s)


def stop_process_trees(pids: Iterable[int], grace_s: float = 5.0, timeout_s: float = 60.0) -> None:
    """Stop ``pids`` and their descendants, including those started while they are being
    stopped (as ``stop_run_processes``): SIGTERM, then SIGKILL after ``grace_s``."""
    roots = set(pids)

    def find(signalled: set[int]) -> set[int]:
        parent_of = _live_parents()
        return _with_descendants((roots | signalled) & set(parent_of), parent_of)

    _stop(find, grace_s, timeout_s)


def _stop(find: Callable[[set[int]], set[int]], grace_s: float, timeout_s: float) -> None:
    """Signal what ``find(signalled)`` returns until it has found nothing for a second."""
    signalled: dict[int, float] = {}
    quiet_since = None
    deadline = time.monotonic() + timeout_s
    while (now := time.monotonic()) < deadline:
        pids = find(set(signalled)) | {pid for pid in signalled if _alive(pid)}
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


def _live_parents() -> dict[int, int]:
    """The parent of every live (not zombie) process but this one."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state, ppid = _state_and_parent(int(entry.name))
        except OSError:  # gone
            continue
        if state != "Z":
            parent_of[int(entry.name)] = ppid
    return parent_of


def _with_descendants(roots: set[int], parent_of: dict[int, int]) -> set[int]:
    found = set(roots)
    while True:
        children = {pid for pid, ppid in parent_of.items() if ppid in found} - found
        if not children:
            return found
        found |= children


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
    except (ProcessLookupError, PermissionError):  # gone, or not ours
        pass
