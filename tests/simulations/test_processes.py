import os
import subprocess
import sys
import time
import uuid

from stamen.simulations.processes import MARKER_VARIABLE, run_processes, stop_run_processes

# A child that ignores SIGTERM and starts a grandchild without the marker in its environment,
# in a session of its own (as Ray's renamed workers and Flower's simulation process look).
SPAWNER = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env={},
                 start_new_session=True)
time.sleep(600)
"""


def test_stop_run_processes_stops_stubborn_unmarked_and_detached_processes():
    marker = uuid.uuid4().hex
    child = subprocess.Popen(
        [sys.executable, "-c", SPAWNER], env={**os.environ, MARKER_VARIABLE: marker}
    )
    deadline = time.monotonic() + 30
    while len(run_processes(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(run_processes(marker)) == 2  # the marked child and its unmarked child
    assert run_processes(uuid.uuid4().hex) == set()
    stop_run_processes(marker, grace_s=0.5)
    child.wait(timeout=10)
    assert run_processes(marker) == set()
