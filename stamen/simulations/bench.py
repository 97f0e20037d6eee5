"""Benchmark grids: every combination of a grid's axes, run in parallel, resumable.

A grid file holds the shared run-config keys under ``[base]`` and the axes under ``[axes]``
(a key and its list of values, e.g. ``aggregator = ["krum", "bucketing(s=2) | krum"]``,
``seed = [0, 1, 2]``). An axis value may be a table that sets several keys together, for
settings that are not a full product (``defense = [{aggregator = "krum"}, {aggregator =
"bucketing(s=2) | krum", worker-momentum = 0.9}]``); its keys become the result columns,
unless every table of the axis names itself with ``label = "..."``: then the axis is one
column of labels (``method = [{label = "FedAvg", strategy = "fedavg"}, ...]``).
Each cell runs on the in-process engine (or Flower's Ray engine) in a worker process and
writes its own run folder under ``cells/``; a cell whose ``summary.json`` exists is done and
is not run again, so an interrupted grid resumes where it stopped. Ctrl-C or SIGTERM stops
the workers at once, with everything they started; the cells then in progress resume from
their last checkpoint.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import signal
import threading
import tomllib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import active_children, get_context
from pathlib import Path
from typing import Any

import torch

from stamen.errors import ConfigError, StamenError
from stamen.experiment import Experiment
from stamen.simulations.inline_engine import run_inline
from stamen.simulations.processes import stop_process_trees
from stamen.simulations.ray_engine import run_ray
from stamen.simulations.results import CHECKPOINT_FILE, RunRecorder
from stamen.simulations.run_batcher import RunBatcher
from stamen.simulations.server_app import quiet_flower_logs

ENGINES = ("inline", "ray")
LABEL = "label"
_DEFAULT_CONFIG = Experiment().to_run_config()


@dataclass(frozen=True)
class Cell:
    """One run of a grid: its axis values and the resolved experiment."""

    axes: dict[str, Any]
    experiment: Experiment

    @property
    def key(self) -> str:
        """A stable folder name: readable axis values and a short hash of the config.

        The hash covers every setting that differs from its default, so a cell whose base
        settings changed is a new cell and is run again, never mistaken for a finished one,
        while a new key added with a default keeps finished cells finished."""
        config = {
            key: value
            for key, value in self.experiment.to_run_config().items()
            if key != "out-dir" and value != _DEFAULT_CONFIG[key]
        }
        digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
        words = "-".join(str(v) for v in self.columns.values())
        readable = "".join(c if c.isalnum() or c in ".=-" else "_" for c in words)[:60]
        return f"{readable}-{digest}"

    @property
    def columns(self) -> dict[str, Any]:
        """What the results show of this cell: each axis value, a table's keys, or its label."""
        columns = {}
        for axis, value in self.axes.items():
            columns.update(_axis_columns(axis, value))
        return columns


@dataclass(frozen=True)
class Grid:
    """A grid file. Optional top-level keys: ``reference`` (relative to the file) names
    published results to print beside ours, a CSV with the grid's varied keys, ``seed``,
    ``round`` and ``accuracy``; ``target`` (an accuracy) adds the rounds to reach it;
    ``traffic = true`` adds the bytes per client and round; ``columns`` names more metrics
    to show (``["accuracy/cnn", "distill-seconds"]``), mean ± std over seeds."""

    name: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    reference: Path | None = None
    target: float | None = None
    traffic: bool = False
    columns: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path) -> Grid:
        try:
            table = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise StamenError(f"cannot read grid {path}: {exc}") from exc
        axes = table.get("axes", {})
        if not axes or not all(isinstance(v, list) and v for v in axes.values()):
            raise ConfigError(f"grid {path}: [axes] must map run-config keys to non-empty lists")
        reference = table.get("reference")
        if reference is not None:
            reference = Path(path).parent / reference
            if not reference.is_file():
                raise ConfigError(f"grid {path}: reference file {reference} does not exist")
        target = table.get("target")
        if target is not None and (isinstance(target, bool) or not 0 < target <= 1):
            raise ConfigError(f"grid {path}: target must be an accuracy in (0, 1], got {target!r}")
        name = table.get("name", Path(path).stem)
        traffic = bool(table.get("traffic", False))
        columns = table.get("columns", [])
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise ConfigError(f"grid {path}: columns must be a list of metric names")
        base = table.get("base", {})
        return cls(name, base, axes, reference, target, traffic, tuple(columns))

    def cells(self) -> list[Cell]:
        """The product of the axes; every cell's experiment is validated before any runs."""
        names = list(self.axes)
        for name, values in self.axes.items():
            labels = [v.get(LABEL) for v in values if isinstance(v, dict)]
            if any(labels) and (len(labels) < len(values) or not all(labels)):
                raise ConfigError(f"axis {name!r}: label every table of the axis or none")
            if len(set(labels)) < len([label for label in labels if label]):
                raise ConfigError(f"axis {name!r}: labels must be distinct, got {labels}")
        cells = []
        for values in itertools.product(*(self.axes[name] for name in names)):
            chosen = dict(zip(names, values))
            config = dict(self.base)
            for name, value in chosen.items():
                if isinstance(value, dict):
                    config.update({k: v for k, v in value.items() if k != LABEL})
                else:
                    config[name] = value
            cells.append(Cell(chosen, Experiment.from_run_config(config)))
        return cells


def result_columns(cells: list[Cell]) -> list[str]:
    """The columns the cells vary, in axis order (a table axis gives its keys or its name)."""
    axes = cells[0].axes if cells else {}
    columns = (_axis_columns(axis, cell.axes[axis]) for axis in axes for cell in cells)
    return list(dict.fromkeys(name for group in columns for name in group))


def _axis_columns(axis: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {axis: value[LABEL]} if LABEL in value else dict(value)
    return {axis: value}


def run_grid(
    cells: list[Cell],
    out_dir: Path,
    workers: int = 1,
    engine: str = "inline",
    on_cell: Callable[[Cell, str], None] | None = None,
    threads: int = 0,
    runs_per_worker: int = 1,
) -> None:
    """Run the unfinished ``cells`` (from ``Grid.cells``) in ``workers`` processes.

    ``threads``: torch threads per worker; 0 shares the machine's cores among the workers.
    More threads than free cores make torch's threads wait on each other, many times slower.

    ``engine`` is ``"inline"`` (the in-process engine) or ``"ray"`` (Flower's simulation
    engine, one private SuperLink per cell).

    ``runs_per_worker``: cells run at once in threads of one worker process (inline engine
    only); with ``batch-clients`` on, their rounds' clients train together (``RunBatcher``),
    which keeps a GPU busy.

    ``on_cell(cell, status)`` hears ``"done"`` (already finished), ``"finished"`` or
    ``"failed: ..."`` for each cell.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if runs_per_worker < 1 or (runs_per_worker > 1 and engine != "inline"):
        raise ConfigError(
            f"runs-per-worker must be 1, or more with the inline engine; got {runs_per_worker} "
            f"with {engine}"
        )
    report = on_cell or (lambda cell, status: None)
    pending = []
    for cell in cells:
        if (cell_dir(out_dir, cell) / "summary.json").exists():
            report(cell, "done")
        else:
            pending.append(cell)
    chunks = [pending[i : i + runs_per_worker] for i in range(0, len(pending), runs_per_worker)]
    threads = threads or max(1, (os.cpu_count() or 1) // max(workers, 1))
    context = get_context("spawn")  # a clean interpreter per worker: no inherited torch state
    others = {child.pid for child in active_children()}
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_leave_ctrl_c_to_the_grid
    )
    try:
        futures = {
            pool.submit(
                _run_cells,
                [(cell.experiment, cell_dir(out_dir, cell)) for cell in chunk],
                threads,
                engine,
            ): chunk
            for chunk in chunks
        }
        for future in as_completed(futures):
            chunk = futures[future]
            error = future.exception()
            errors = future.result() if error is None else [str(error)] * len(chunk)
            for cell, failure in zip(chunk, errors, strict=True):
                report(cell, "finished" if failure is None else f"failed: {failure}")
    except BaseException:
        # Ctrl-C or SIGTERM (which the CLI raises as KeyboardInterrupt): the cells in progress
        # stop now, not after their last round; their finished rounds are in their folders
        # (metrics and checkpoint), so the next run of the grid resumes them.
        pool.shutdown(wait=False, cancel_futures=True)
        stop_process_trees({child.pid for child in active_children()} - others, grace_s=2.0)
        raise
    pool.shutdown()


def cell_dir(out_dir: Path, cell: Cell) -> Path:
    return Path(out_dir) / "cells" / cell.key


def _leave_ctrl_c_to_the_grid() -> None:
    """A worker ignores SIGINT: Ctrl-C in a terminal reaches every process of the group, and
    the grid then stops its workers and all they started (SIGTERM, then SIGKILL)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_cells(runs: list[tuple[Experiment, Path]], threads: int, engine: str) -> list[str | None]:
    """Run the cells (experiment, folder) in this worker, in threads when several; each
    cell's error, or None."""
    torch.set_num_threads(threads)
    quiet_flower_logs()
    batcher = RunBatcher(len(runs)) if len(runs) > 1 else None
    errors: list[str | None] = [None] * len(runs)

    def run(index: int) -> None:
        experiment, out_dir = runs[index]
        try:
            _run_cell(experiment, out_dir, engine, batcher)
        except Exception as exc:  # noqa: BLE001  one failed cell does not stop the others
            errors[index] = str(exc) or repr(exc)
        finally:
            if batcher is not None:
                batcher.finished()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(runs))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if batcher is not None:
        logging.getLogger("stamen").info(
            "%d runs in one process: up to %d rounds trained together",
            len(runs),
            batcher.most_runs_together,
        )
    return errors


def _run_cell(
    experiment: Experiment, out_dir: Path, engine: str, batcher: RunBatcher | None
) -> None:
    # A cell cut short (a stopped grid) continues from its last checkpoint.
    resume = (Path(out_dir) / CHECKPOINT_FILE).exists()
    experiment = experiment.replace(out_dir=str(out_dir), resume=resume)
    if engine == "ray":
        run_ray(experiment, out_dir)
    else:
        run_inline(experiment, RunRecorder(out_dir, experiment), batcher)
