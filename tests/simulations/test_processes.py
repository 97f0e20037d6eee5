import os
import subprocess
import sys
import time
import uuid

from stamen.simulations.processes import MARKER_VARIABLE, marked_processes, stop_marked

# A child that ignores SIGTERM and starts a grandchild that leaves its process tree.
SPAWNER = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
time.sleep(600)
"""


def test_stop_marked_stops_stubborn_and_detached_processes():
    marker = uuid.uuid4().hex
    env = {**os.environ, MARKER_VARIABLE: marker}
    child = subprocess.Popen([sys.executable, "-c", SPAWNER], env=env)
    deadline = time.monotonic() + 30
    while len(marked_processes(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(marked_processes(marker)) == 2
    stop_marked(marker, grace_s=0.5)
    child.wait(timeout=10)
    assert marked_processes(marker) == []
    assert marked_processes(uuid.uuid4().hex) == []
