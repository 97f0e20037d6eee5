"""``stamen bench --workers 2`` stops on Ctrl-C or SIGTERM within seconds, with every process
it started (workers, multiprocessing's resource tracker), and the next run of the grid
resumes the cells it cut short from their last finished round."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stamen.simulations.bench import Grid, run_grid
from stamen.simulations.checkpoint import load_checkpoint

ROUNDS = 400  # long enough that neither cell ends before the other has begun
GRID = f"""
name = "stop"
[base]
dataset = "synthetic"
model = "mlp"
partition = "iid"
num-clients = 3
min-available-clients = 3
local-steps = 1
num-server-rounds = {ROUNDS}
eval-every = 100
strategy = "fedavg"
[axes]
lr = [0.05, 0.1]
"""


def session_processes(session: int) -> set[int]:
    """Live processes of ``session`` (a grid's parent, workers and resource tracker stay in
    the session they were started in, even once re-parented)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and fields[0] != "Z" and int(fields[3]) == session:
            found.add(int(entry.name))
    return found


def bench(folder: Path) -> list[str]:
    """``stamen bench`` of the grid in ``folder``, two workers, results in ``folder/out``."""
    grid, out = str(folder / "grid.toml"), str(folder / "out")
    return [sys.executable, "-m", "stamen", "bench", grid, "--out", out, "--workers", "2"]


def start_and_stop(tmp_path: Path, stop_signal: signal.Signals) -> list[Path]:
    """Start the grid, send ``stop_signal`` once both cells have finished a round; check that
    it exits with 130 within seconds, leaving no process, and return the cells' folders."""
    grid, out = tmp_path / "grid.toml", tmp_path / "out"
    grid.write_text(GRID)
    process = subprocess.Popen(
        bench(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as from a terminal: a background job's children start with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    cells: list[Path] = []
    while len(cells) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        cells = [path.parent for path in out.glob("cells/*/checkpoint.pt")]
    if len(cells) < 2:
        process.kill()
        pytest.fail(f"the cells did not both start: {process.communicate(timeout=60)}")
    assert len(session_processes(process.pid)) >= 4  # grid, two workers, resource tracker

    process.send_signal(stop_signal)
    stopped = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    while session_processes(process.pid) and time.monotonic() < stopped + 10:
        time.sleep(0.1)
    assert session_processes(process.pid) == set()
    assert time.monotonic() - stopped < 10
    for cell in cells:  # cut short, its finished rounds kept
        assert not (cell / "summary.json").exists()
        assert 1 <= load_checkpoint(cell).round < ROUNDS
    return cells


def test_sigterm_stops_a_grid_and_every_process_it_started(tmp_path):
    start_and_stop(tmp_path, signal.SIGTERM)


def test_ctrl_c_stops_a_grid_and_the_next_run_resumes_its_cells(tmp_path):
    cells = start_and_stop(tmp_path, signal.SIGINT)
    for cell in cells:
        with open(cell / "metrics.csv", "a") as file:
            file.write("1,clients,planted,1.0\n")  # a fresh start would drop this row
    statuses: list[str] = []
    grid = Grid.load(tmp_path / "grid.toml")
    run_grid(grid.cells(), tmp_path / "out", workers=2, on_cell=lambda c, s: statuses.append(s))
    assert statuses == ["finished", "finished"]
    for cell in cells:
        assert (cell / "summary.json").exists()
        assert "planted" in (cell / "metrics.csv").read_text()
