"""The ``stamen`` command: a tiny run, one-line errors, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

TINY = [
    "--set",
    "dataset=synthetic",
    "--set",
    "model=mlp",
    "--set",
    "num-clients=3",
    "--set",
    "local-steps=2",
    "--set",
    "partition=iid",
]


def stamen(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stamen", *args], capture_output=True, text=True, env=env, **kwargs
    )


def test_cli_run_with_tiny_settings_writes_a_results_folder(tmp_path):
    result = stamen("run", *TINY, "--set", "num-server-rounds=2", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert metrics[metrics.scope == "server"]["round"].max() == 2
    assert "finished 2 rounds" in result.stderr


def test_cli_reads_a_config_file_and_set_overrides_it(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text(
        'dataset = "synthetic"\nmodel = "mlp"\nnum-clients = 2\nnum-server-rounds = 5\n'
        'local-steps = 1\npartition = "iid"\n'
    )
    result = stamen(
        "run",
        "--config",
        str(config),
        "--set",
        "num-server-rounds=1",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "out" / "config.toml").read_text()
    assert "num-server-rounds = 1" in written and "num-clients = 2" in written


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("dataset=nope", "mnist"),
        ("model=nope", "cnn"),
        ("strategy=nope", "fedavg"),
        ("partition=nope", "dirichlet"),
        ("alpha=0", "alpha must be > 0"),
        ("num-clients=0", "num-clients must be at least 1"),
        ("no-such-key=1", "expected one of"),
    ],
)
def test_bad_input_prints_one_line_and_exits_2(assignment, expected, tmp_path):
    result = stamen("run", "--set", assignment, "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0] and "Traceback" not in result.stderr


def test_partitions_prints_counts_and_saves_a_plot(tmp_path):
    result = stamen(
        "partitions",
        "--set",
        "dataset=synthetic",
        "--set",
        "num-clients=4",
        "--set",
        "partition=sorted",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "label_distribution.png").stat().st_size > 1000
    counts = pd.read_csv(tmp_path / "label_counts.csv", index_col=0)
    assert len(counts) == 4


def processes_with(marker: str) -> list[int]:
    """PIDs of live processes whose environment carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def parents() -> dict[int, int]:
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and fields[0] != "Z":
            found[int(entry.name)] = int(fields[1])
    return found


def descendants(pid: int) -> set[int]:
    """Live descendants of ``pid`` (Ray renames its workers, hiding their environment)."""
    tree, found = parents(), {pid}
    while grown := {p for p, parent in tree.items() if parent in found} - found:
        found |= grown
    return found


def alive(pids: set[int]) -> set[int]:
    return pids & set(parents())


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_on_the_ray_engine_leaves_no_process_running(tmp_path, stop_signal):
    marker = f"STAMEN_TEST_MARKER={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stamen",
            "run",
            "--engine",
            "ray",
            *TINY,
            "--set",
            "num-server-rounds=1000",
            "--out",
            str(out),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a shell's background job (e.g. CI started with `&`) hands its
        # children SIGINT ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 180
    started = False
    while time.monotonic() < deadline and process.poll() is None and not started:
        metrics = out / "metrics.csv"
        started = metrics.exists() and "clients" in metrics.read_text()  # rounds are running
        time.sleep(0.5)
    if not started:
        process.send_signal(signal.SIGTERM)  # the CLI stops what it started
        pytest.fail(f"no round finished: {process.communicate(timeout=120)}")
    started = set(processes_with(marker)) | descendants(process.pid)
    assert len(started) > 5  # the CLI, the SuperLink, flwr-simulation, Ray ...
    process.send_signal(stop_signal)
    _, stderr = process.communicate(timeout=180)  # Ray shuts down slowly on a loaded machine
    assert process.returncode == 130, stderr
    assert "interrupted: the rounds that finished are in the output folder" in stderr
    deadline = time.monotonic() + 30
    while alive(started) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_with(marker) == []
    assert alive(started) == set()
    assert "clients" in (out / "metrics.csv").read_text()  # finished rounds are kept


def test_app_writes_a_flower_app_with_the_run_config_and_keeps_existing_folders(tmp_path):
    import tomllib

    result = stamen("app", str(tmp_path / "app"), *TINY, "--set", "strategy=robust")
    assert result.returncode == 0, result.stderr
    project = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())
    app = project["tool"]["flwr"]["app"]
    assert app["components"]["clientapp"] == "stamen.clients.client_app:app"
    assert app["config"]["strategy"] == "robust" and app["config"]["num-clients"] == 3
    again = stamen("app", str(tmp_path / "app"), *TINY)
    assert again.returncode == 2 and "exists" in again.stderr


def test_deploy_keys_makes_superlink_tls_and_openssh_node_keys(tmp_path):
    result = stamen("deploy-keys", str(tmp_path / "keys"), "--nodes", "2")
    assert result.returncode == 0, result.stderr
    names = {p.name for p in (tmp_path / "keys").iterdir()}
    assert {"ca.pem", "superlink.pem", "superlink.key", "nodes"} <= names
    public = (tmp_path / "keys" / "nodes" / "node1.pub").read_text()
    assert public.startswith("ecdsa-sha2-nistp384 ")
    private = (tmp_path / "keys" / "nodes" / "node1").read_text()
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
