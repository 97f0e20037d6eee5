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


def stop_marked(marker: str, grace_s: float = 10.0) -> None:
    """SIGTERM every process carrying ``marker``, then SIGKILL what is left after ``grace_s``."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        pids = marked_processes(marker)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = marked_processes(marker)
        if not pids:
            return
