"""The Ray engine on an existing Ray cluster: a head started here on 127.0.0.1 (``ray start
--head``), a run that joins it with ``ray-address``, and the head stopped by its process
group's PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from stamen.simulations.ray_engine import free_port, run_ray


@pytest.fixture
def ray_head():
    """``host:port`` of a one-node Ray cluster; its session folder (short: Ray's socket
    paths must fit 107 characters) is removed afterwards."""
    port, temp = free_port(), Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    head = subprocess.Popen(
        [
            "ray", "start", "--head", "--block",
            "--port", str(port),
            "--node-ip-address", "127.0.0.1",
            "--num-cpus", "2",
            "--include-dashboard=false",
            "--temp-dir", str(temp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(
            ["ray", "status", "--address", address], capture_output=True
        ).returncode:
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(1)
        yield address, temp
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head and every Ray process it started
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_run_joins_a_running_ray_cluster_and_leaves_it_running(
    tiny_experiment, tmp_path, ray_head
):
    address, temp = ray_head
    experiment = tiny_experiment.replace(ray_address=address, client_cpus=1)
    run_ray(experiment, tmp_path / "run")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics[metrics.scope == "server"]["round"].max() == experiment.num_server_rounds
    # Flower's driver ran on this cluster (its log is in the head's session folder) ...
    drivers = list((temp / "session_latest" / "logs").glob("python-core-driver-*"))
    assert drivers
    # ... and the cluster outlives the run.
    assert (
        subprocess.run(["ray", "status", "--address", address], capture_output=True).returncode == 0
    )
