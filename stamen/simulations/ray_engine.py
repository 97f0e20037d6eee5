"""The Ray engine: Flower's own simulation engine, driven through ``flwr run``.

``stamen run --engine ray`` starts a private ``flower-superlink --simulation`` on free
loopback ports with its own ``FLWR_HOME``, submits a generated Flower App (a
``pyproject.toml`` naming Stamen's installed ServerApp and ClientApp, with the resolved run
config), streams the run, and stops every process it started (see
:mod:`stamen.simulations.processes`) on exit, error or Ctrl-C. Client resources (CPUs and
the GPU fraction per virtual client) come from the ``client-cpus`` and ``client-gpus`` keys.
Any Flower ClientApp importable by the Ray actors can stand in for Stamen's (``client_app``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from logging import WARNING
from pathlib import Path

import httpx
import pandas as pd
import tomli_w
import torch
from flwr.common.logger import log

from stamen.errors import StamenError
from stamen.experiment import Experiment
from stamen.simulations.ordered_grid import STAMEN_CLIENT_APP
from stamen.simulations.processes import MARKER_VARIABLE, stop_run_processes
from stamen.simulations.results import METRICS_FILE, Row, with_node_state
from stamen.simulations.simulated_nodes import simulated_node_environment

STARTUP_TIMEOUT_S = 60.0


def run_ray(
    experiment: Experiment,
    out_dir: Path,
    on_row: Callable[[Row], None] | None = None,
    client_app: str = STAMEN_CLIENT_APP,
) -> None:
    """Run ``experiment`` on Flower's Ray simulation engine; results go to ``out_dir``.
    ``client_app`` (``module:attribute``) names the ClientApp (``write_app``)."""
    out_dir = Path(out_dir).resolve()
    experiment = with_node_state(experiment.replace(out_dir=str(out_dir)), out_dir)
    if experiment.client_gpus == 0 and experiment.device != "cpu" and torch.cuda.is_available():
        log(
            WARNING,
            "Ray hides the GPUs from clients with client-gpus = 0, so they train on the CPU; "
            "give each a fraction of a GPU, e.g. client-gpus = 0.1 for 10 per GPU.",
        )
    if not experiment.resume:  # progress must not show an old run's rows
        (out_dir / METRICS_FILE).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="stamen-flwr-") as home:
        home = Path(home)
        env = flower_env(home) | simulated_node_environment(experiment, out_dir)
        if experiment.ray_address:  # Flower's ray.init() joins the cluster named here
            env["RAY_ADDRESS"] = experiment.ray_address
        app_dir = write_app(home / "app", experiment, client_app)
        with superlink(home, env) as address:
            write_connection(home, address)
            federation = (
                f"num-supernodes={experiment.num_clients} "
                f"client-resources-num-cpus={experiment.client_cpus} "
                f"client-resources-num-gpus={experiment.client_gpus}"
            )
            with _follow_metrics(out_dir / METRICS_FILE, on_row):
                submitted = flwr_json(
                    ["run", str(app_dir), "stamen", "--federation-config", federation], env
                )
                run_id = submitted["run-id"]
                status = wait_finished(run_id, env)
            if status != "finished:completed" or not (out_dir / "summary.json").exists():
                logs = flwr_text(["log", str(run_id), "stamen", "--show"], env)
                tail = "\n".join(logs.splitlines()[-40:])
                raise StamenError(f"the Ray run ended as {status}:\n{tail}")
    # The ServerApp records engine "flower": it cannot tell a simulation from a deployment.
    summary_path = out_dir / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({**summary, "engine": "ray"}, indent=2))


def flwr_json(arguments: list[str], env: dict[str, str]) -> dict:
    """Run ``flwr <arguments> --format json`` against the private SuperLink."""
    output = flwr_text([*arguments, "--format", "json"], env)
    try:
        reply = json.loads(output)
    except json.JSONDecodeError:
        raise StamenError(f"flwr {arguments[0]} failed: {output.strip()[-2000:]}") from None
    if not reply.get("success", False):
        raise StamenError(f"flwr {arguments[0]} failed: {reply.get('error-message', reply)}")
    return reply


def flwr_text(arguments: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        ["flwr", *arguments], env=env, cwd=env["FLWR_HOME"], capture_output=True, text=True
    )
    return result.stdout + result.stderr


def wait_finished(run_id: str, env: dict[str, str], poll_s: float = 1.0) -> str:
    """Poll the run's status until it is ``finished:...``; return that status."""
    while True:
        runs = flwr_json(["ls", "stamen", "--run-id", str(run_id)], env)["runs"]
        if runs and runs[0]["status"].startswith("finished"):
            return runs[0]["status"]
        time.sleep(poll_s)


def flower_env(home: Path) -> dict[str, str]:
    """Environment for Flower's processes: private FLWR_HOME, offline, this interpreter."""
    env = dict(os.environ)
    env.update(
        FLWR_HOME=str(home),
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO="0",
        RAY_DEDUP_LOGS="0",
        # flwr-simulation runs the ServerApp in a thread beside the engine's threads; NumPy's
        # multi-threaded OpenBLAS was seen spinning forever in exec_blas there.
        OPENBLAS_NUM_THREADS="1",
        **{MARKER_VARIABLE: uuid.uuid4().hex},
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def write_app(app_dir: Path, experiment: Experiment, client_app: str = STAMEN_CLIENT_APP) -> Path:
    """A minimal Flower App naming Stamen's installed ServerApp and ``client_app``, with this
    run config. The ClientApp's module must be importable where it runs (``PYTHONPATH``)."""
    app_dir.mkdir(parents=True)
    project = {
        "build-system": {"requires": ["setuptools"], "build-backend": "setuptools.build_meta"},
        "project": {"name": "stamen-run", "version": "1.0.0", "dependencies": []},
        "tool": {
            "flwr": {
                "app": {
                    "publisher": "stamen",
                    "components": {
                        "serverapp": "stamen.simulations.server_app:app",
                        "clientapp": client_app,
                    },
                    "config": experiment.to_run_config(),
                }
            }
        },
    }
    (app_dir / "pyproject.toml").write_text(tomli_w.dumps(project))
    return app_dir


def write_connection(home: Path, address: str) -> None:
    connection = {
        "superlink": {"default": "stamen", "stamen": {"address": address, "insecure": True}}
    }
    (home / "config.toml").write_text(tomli_w.dumps(connection))


@contextmanager
def superlink(home: Path, env: dict[str, str]) -> Iterator[str]:
    """A simulation SuperLink on free loopback ports; on exit, every process of the run
    (SuperLink, ``flwr-simulation``, Ray) is stopped by its marker."""
    port, control_port = free_port(), free_port()
    executable = shutil.which("flower-superlink", path=env["PATH"])
    if executable is None:
        raise StamenError("flower-superlink not found: install flwr[simulation]")
    command = [
        executable,
        "--insecure",
        "--simulation",
        "--isolation",
        "subprocess",
        "--disable-runtime-dependency-installation",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--control-api-address",
        f"127.0.0.1:{control_port}",
        "--log-file",
        str(home / "superlink.log"),
    ]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(process, port)
        yield f"127.0.0.1:{port}"
    finally:
        stop_run_processes(env[MARKER_VARIABLE])
        process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StamenError(f"flower-superlink exited with code {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise StamenError(f"flower-superlink did not start within {STARTUP_TIMEOUT_S:.0f} s")


@contextmanager
def _follow_metrics(path: Path, on_row: Callable[[Row], None] | None) -> Iterator[None]:
    """Feed ``on_row`` with rows the ServerApp appends to ``metrics.csv`` (progress)."""
    if on_row is None:
        yield
        return
    stop = threading.Event()

    def follow() -> None:
        seen = 0
        while not stop.wait(0.5):
            seen = _emit_new_rows(path, seen, on_row)
        _emit_new_rows(path, seen, on_row)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _emit_new_rows(path: Path, seen: int, on_row: Callable[[Row], None]) -> int:
    if not path.exists():
        return seen
    try:
        rows = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return seen
    for row in rows.iloc[seen:].itertuples(index=False):
        on_row(Row(int(row.round), row.scope, row.metric, float(row.value)))
    return len(rows)
