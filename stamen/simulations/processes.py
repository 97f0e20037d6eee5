"""Stopping every process a run started, including those that left its process tree.

Flower's SuperLink starts ``flwr-simulation`` in a session of its own, and Ray's agents are
re-parented to init when the raylet exits, so neither a process group nor the tree of
children reaches them all. Every process of a run inherits one environment variable,
``STAMEN_RUN_MARKER``; stopping the run stops every live process that carries it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

MARKER_VARIABLE = "STAMEN_RUN_MARKER"


def marked_processes(marker: str) -> list[int]:
    """PIDs of live (not zombie) processes whose environment holds our marker (Linux)."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone, or not ours to read
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


def stop_marked(marker: str, grace_s: float = 5.0, timeout_s: float = 60.0) -> None:
    """Stop every process carrying ``marker``: SIGTERM, then SIGKILL after ``grace_s``.

    Ray may still start agents while its parents are being stopped, so this keeps scanning
    until no marked process has been seen for a second (or ``timeout_s`` has passed).
    """
    terminated_at: dict[int, float] = {}
    quiet_since = None
    deadline = time.monotonic() + timeout_s
    while (now := time.monotonic()) < deadline:
        pids = marked_processes(marker)
        if pids:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= 1.0:
            return
        for pid in pids:
            if pid not in terminated_at:
                _signal(pid, signal.SIGTERM)
                terminated_at[pid] = now
            elif now - terminated_at[pid] > grace_s:
                _signal(pid, signal.SIGKILL)
        time.sleep(0.1)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
