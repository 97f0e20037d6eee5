"""Benchmark grids: every combination of a grid's axes, run in parallel, resumable.

A grid file holds the shared run-config keys under ``[base]`` and the axes under ``[axes]``
(a key and its list of values, e.g. ``aggregator = ["krum", "bucketing(s=2) | krum"]``,
``seed = [0, 1, 2]``). Each cell runs on the in-process engine in a worker process and
writes its own run folder under ``cells/``; a cell whose ``summary.json`` exists is done and
is not run again, so an interrupted grid resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tomllib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from stamen.errors import ConfigError, StamenError
from stamen.simulations.config import Experiment


@dataclass(frozen=True)
class Cell:
    """One run of a grid: its axis values and the resolved experiment."""

    axes: dict[str, Any]
    experiment: Experiment

    @property
    def key(self) -> str:
        """A stable folder name: readable axis values and a short hash of all of them."""
        digest = hashlib.sha1(json.dumps(self.axes, sort_keys=True).encode()).hexdigest()[:8]
        words = "-".join(str(v) for v in self.axes.values())
        readable = "".join(c if c.isalnum() or c in ".=-" else "_" for c in words)[:60]
        return f"{readable}-{digest}"


@dataclass(frozen=True)
class Grid:
    name: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]

    @classmethod
    def load(cls, path: Path) -> Grid:
        try:
            table = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise StamenError(f"cannot read grid {path}: {exc}") from exc
        axes = table.get("axes", {})
        if not axes or not all(isinstance(v, list) and v for v in axes.values()):
            raise ConfigError(f"grid {path}: [axes] must map run-config keys to non-empty lists")
        return cls(table.get("name", Path(path).stem), table.get("base", {}), axes)

    def cells(self) -> list[Cell]:
        """The product of the axes; every cell's experiment is validated before any runs."""
        names = list(self.axes)
        cells = []
        for values in itertools.product(*(self.axes[name] for name in names)):
            chosen = dict(zip(names, values))
            cells.append(Cell(chosen, Experiment.from_run_config({**self.base, **chosen})))
        return cells


def run_grid(
    cells: list[Cell],
    out_dir: Path,
    workers: int = 1,
    on_cell: Callable[[Cell, str], None] | None = None,
) -> None:
    """Run the unfinished ``cells`` (from ``Grid.cells``) in ``workers`` processes.

    ``on_cell(cell, status)`` hears ``"done"`` (already finished), ``"finished"`` or
    ``"failed: ..."`` for each cell.
    """
    report = on_cell or (lambda cell, status: None)
    pending = []
    for cell in cells:
        if (cell_dir(out_dir, cell) / "summary.json").exists():
            report(cell, "done")
        else:
            pending.append(cell)
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    context = get_context("spawn")  # a clean interpreter per worker: no inherited torch state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(_run_cell, cell.experiment, cell_dir(out_dir, cell), threads): cell
            for cell in pending
        }
        for future in as_completed(futures):
            error = future.exception()
            status = "finished" if error is None else f"failed: {error}"
            report(futures[future], status)


def cell_dir(out_dir: Path, cell: Cell) -> Path:
    return Path(out_dir) / "cells" / cell.key


def _run_cell(experiment: Experiment, out_dir: Path, threads: int) -> None:
    from stamen.simulations.inline_engine import run_inline
    from stamen.simulations.results import RunRecorder
    from stamen.simulations.server_app import quiet_flower_logs

    torch.set_num_threads(threads)
    quiet_flower_logs()
    experiment = experiment.replace(out_dir=str(out_dir))
    run_inline(experiment, RunRecorder(out_dir, experiment))
