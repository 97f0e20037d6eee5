"""``stamen bench``: grid cells, parallel runs, resume, tidy results and the table."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from stamen.errors import ConfigError, StamenError
from stamen.simulations.bench import Grid, cell_dir, result_columns, run_grid
from stamen.simulations.bench_report import (
    collect_results,
    final_accuracy_table,
    plot_grid,
    table_axes,
    with_metrics,
    with_reference,
    with_rounds_to_target,
    with_traffic,
    with_traffic_to_target,
    write_table,
)

BASE = {
    "dataset": "synthetic",
    "model": "mlp",
    "partition": "iid",
    "num-clients": 4,
    "min-available-clients": 4,
    "num-server-rounds": 2,
    "local-steps": 2,
    "eval-every": 1,
    "strategy": "robust",
}


def test_grid_runs_every_cell_in_parallel_and_resumes(tmp_path):
    grid = Grid("tiny", BASE, {"aggregator": ["mean", "median"], "seed": [0, 1]})
    statuses = []
    cells = grid.cells()
    run_grid(cells, tmp_path, workers=2, on_cell=lambda c, s: statuses.append(s))
    assert len(cells) == 4 and statuses == ["finished"] * 4
    summaries = {c.key: (cell_dir(tmp_path, c) / "summary.json").stat().st_mtime for c in cells}
    statuses.clear()
    run_grid(grid.cells(), tmp_path, workers=2, on_cell=lambda c, s: statuses.append(s))
    assert statuses == ["done"] * 4  # nothing is run again
    assert summaries == {
        c.key: (cell_dir(tmp_path, c) / "summary.json").stat().st_mtime for c in cells
    }
    results = collect_results(cells, tmp_path)
    assert {"round", "scope", "metric", "value", "aggregator", "seed"} <= set(results.columns)
    assert (tmp_path / "results.csv").exists()
    table = final_accuracy_table(results, list(grid.axes))
    assert list(table.aggregator) == ["mean", "median"] and list(table["count"]) == [2, 2]


def test_a_cell_cut_short_continues_from_its_checkpoint(tmp_path):
    grid = Grid("tiny", BASE, {"aggregator": ["mean"], "seed": [0]})
    (cell,) = grid.cells()
    run_grid([cell], tmp_path)
    folder = cell_dir(tmp_path, cell)
    (folder / "summary.json").unlink()  # as if stopped after its last checkpoint
    with open(folder / "metrics.csv", "a") as file:
        file.write("1,clients,planted,1.0\n")  # a fresh start would drop this row
    statuses = []
    run_grid([cell], tmp_path, on_cell=lambda c, s: statuses.append(s))
    assert statuses == ["finished"] and (folder / "summary.json").exists()
    assert "planted" in pd.read_csv(folder / "metrics.csv").metric.values


def test_a_table_axis_sets_several_keys_together_and_they_become_columns(tmp_path):
    defense = [
        {"aggregator": "mean"},
        {"aggregator": "median", "worker-momentum": 0.5},
    ]
    grid = Grid("linked", BASE, {"defense": defense, "seed": [0]})
    cells = grid.cells()
    assert [(c.experiment.aggregator, c.experiment.worker_momentum) for c in cells] == [
        ("mean", 0.0),
        ("median", 0.5),
    ]  # not the product: no ("median", 0.0) or ("mean", 0.5)
    assert result_columns(cells) == ["aggregator", "worker-momentum", "seed"]
    run_grid(cells, tmp_path, workers=1)
    results = collect_results(cells, tmp_path)
    table = final_accuracy_table(results, result_columns(cells))
    assert list(zip(table.aggregator, table["worker-momentum"])) == [("mean", 0.0), ("median", 0.5)]


def test_a_labelled_table_axis_is_one_column_of_labels(tmp_path):
    method = [
        {"label": "plain", "aggregator": "mean"},
        {"label": "robust", "aggregator": "median", "worker-momentum": 0.5},
    ]
    grid = Grid("labelled", BASE, {"method": method, "seed": [0]})
    cells = grid.cells()
    assert [(c.experiment.aggregator, c.experiment.worker_momentum) for c in cells] == [
        ("mean", 0.0),
        ("median", 0.5),
    ]
    assert result_columns(cells) == ["method", "seed"]
    assert cells[0].key.startswith("plain-0-")
    run_grid(cells, tmp_path, workers=1)
    results = collect_results(cells, tmp_path)
    table = final_accuracy_table(results, result_columns(cells))
    assert list(table.method) == ["plain", "robust"]
    plot_grid(results, result_columns(cells), tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").stat().st_size > 0


@pytest.mark.parametrize(
    "method, message",
    [
        ([{"label": "a", "aggregator": "mean"}, {"aggregator": "median"}], "label every table"),
        ([{"label": "a", "aggregator": "mean"}, "median"], "label every table"),
        ([{"label": "a", "aggregator": "mean"}, {"label": "a", "aggregator": "min"}], "distinct"),
    ],
)
def test_labels_must_name_every_table_of_an_axis_once(method, message):
    with pytest.raises(ConfigError, match=message):
        Grid("bad", BASE, {"method": method}).cells()


def test_a_cell_whose_base_settings_changed_is_a_new_cell():
    axes = {"aggregator": ["mean"]}
    before = Grid("g", BASE, axes).cells()[0]
    after = Grid("g", {**BASE, "num-server-rounds": 3}, axes).cells()[0]
    assert before.key != after.key
    assert before.key == Grid("g", dict(BASE), axes).cells()[0].key
    # stating a default explicitly is the same cell
    assert before.key == Grid("g", {**BASE, "server-lr": 1.0}, axes).cells()[0].key


def test_a_bad_cell_is_refused_before_anything_runs(tmp_path):
    grid = Grid("bad", BASE, {"aggregator": ["mean", "nope"]})
    with pytest.raises(ConfigError, match="unknown aggregator 'nope'"):
        run_grid(grid.cells(), tmp_path)
    assert not (tmp_path / "cells").exists()


def test_grid_file_needs_axes(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text("[base]\nseed = 1\n")
    with pytest.raises(ConfigError, match=r"\[axes\]"):
        Grid.load(path)


def test_a_missing_reference_file_is_refused(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('reference = "paper.csv"\n[axes]\nseed = [0]\n')
    with pytest.raises(ConfigError, match="reference file .*paper.csv does not exist"):
        Grid.load(path)


def test_table_is_mean_and_std_over_seeds_of_the_last_evaluations(tmp_path):
    rows = [
        # rule a: seed 0 ends at 0.8 (last two: 0.6, 0.8), seed 1 at 0.6 (last two: 0.6, 0.6)
        (1, "a", 0, 0.6),
        (2, "a", 0, 0.8),
        (1, "a", 1, 0.6),
        (2, "a", 1, 0.6),
        (1, "b", 0, 0.5),
        (2, "b", 0, 0.5),
    ]
    results = pd.DataFrame(
        [
            {"round": r, "scope": "server", "metric": "accuracy", "value": v, "rule": a, "seed": s}
            for r, a, s, v in rows
        ]
    )
    table = final_accuracy_table(results, ["rule", "seed"])
    assert table["mean"].tolist() == pytest.approx([0.7, 0.5])
    assert table["std"].iloc[0] == pytest.approx(0.1414, abs=1e-4)  # sample std of 0.8, 0.6
    averaged = final_accuracy_table(results, ["rule", "seed"], last=2)
    assert averaged["mean"].iloc[0] == pytest.approx((0.7 + 0.6) / 2)
    write_table(table, tmp_path / "table.md", "t")
    text = (tmp_path / "table.md").read_text()
    assert "| a | 70.00 ± 14.14 | 2 |" in text and "| b | 50.00 | 1 |" in text


def test_reference_is_averaged_over_the_same_rounds_and_printed_beside_ours(tmp_path):
    ours = pd.DataFrame(
        [
            {"round": r, "scope": "server", "metric": "accuracy", "value": v, "rule": "a"}
            for r, v in [(0, 0.1), (30, 0.5), (60, 0.9)]
        ]
    )
    reference = pd.DataFrame(
        [
            # two seeds; round 90 and round 0 are outside our last two evaluations (30, 60)
            {"rule": "a", "seed": s, "round": r, "accuracy": v}
            for s, runs in [(0, [(0, 0.0), (30, 0.6), (60, 0.8), (90, 0.0)]), (1, [(30, 0.4)])]
            for r, v in runs
        ]
        + [{"rule": "b", "seed": 0, "round": 60, "accuracy": 0.3}]
    )
    ours["seed"] = 0
    table = with_reference(final_accuracy_table(ours, ["rule", "seed"], last=2), ours, reference, 2)
    assert table["mean"].iloc[0] == pytest.approx(0.7)
    assert table["ref_mean"].iloc[0] == pytest.approx((0.7 + 0.4) / 2)
    assert table["ref_count"].iloc[0] == 2
    write_table(table, tmp_path / "table.md", "t")
    assert "| a | 70.00 | 1 | 55.00 ± 21.21 | 2 | +15.00 |" in (tmp_path / "table.md").read_text()


def test_rounds_to_target_and_traffic_columns(tmp_path):
    rows = [
        # seed 0 reaches 0.5 at round 2, seed 1 at round 4, seed 2 never
        (seed, r, v)
        for seed, curve in [(0, [0.1, 0.3, 0.6, 0.7, 0.7]), (1, [0.1, 0.2, 0.3, 0.4, 0.5])]
        + [(2, [0.1, 0.1, 0.2, 0.2, 0.2])]
        for r, v in enumerate(curve)
    ]
    server = {"scope": "server", "metric": "accuracy", "rule": "a"}
    results = pd.DataFrame(
        [{**server, "round": r, "value": v, "seed": i} for i, r, v in rows]
        + [
            {"round": r, "scope": "clients", "metric": m, "value": b, "rule": "a", "seed": 0}
            for r in (1, 2)
            for m, b in [("bytes-down", 2e6 * r), ("bytes-up", 1e6)]
        ]
    )
    table = final_accuracy_table(results, ["rule", "seed"])
    table = with_traffic(with_rounds_to_target(table, results, 0.5), results)
    assert table["rt_mean"].iloc[0] == 3 and table["rt_reached"].iloc[0] == 2
    assert table["bytes-down"].iloc[0] == 3e6 and table["bytes-up"].iloc[0] == 1e6
    write_table(table, tmp_path / "table.md", "t", target=0.5)
    text = (tmp_path / "table.md").read_text()
    assert "rounds to 50%" in text and "| 3 ± 1 (2/3) | 3.000 | 1.000 |" in text


def test_megabytes_to_target_sum_each_run_s_traffic_until_it_reaches_the_target(tmp_path):
    """Seed 0 reaches 0.5 at round 2, seed 1 at round 3, seed 2 never: the column averages
    the first two runs' bytes of rounds 1..2 and 1..3."""
    curves = {0: [0.1, 0.3, 0.6, 0.7], 1: [0.1, 0.2, 0.4, 0.5], 2: [0.1, 0.1, 0.1, 0.1]}
    server = [
        {"scope": "server", "metric": "accuracy", "round": r, "value": v, "seed": seed}
        for seed, curve in curves.items()
        for r, v in enumerate(curve)
    ]
    clients = [
        {"scope": "clients", "metric": metric, "round": r, "value": value, "seed": seed}
        for seed in curves
        for r in (1, 2, 3)
        for metric, value in [("bytes-down", 4e6), ("bytes-up", 1e6 * r)]
    ]
    results = pd.DataFrame(server + clients).assign(rule="a")
    table = final_accuracy_table(results, ["rule", "seed"])
    table = with_traffic_to_target(with_traffic(table, results), results, 0.5)
    assert table["mt_up"].iloc[0] == ((1 + 2) + (1 + 2 + 3)) * 1e6 / 2
    assert table["mt_total"].iloc[0] == (3e6 + 8e6 + 6e6 + 12e6) / 2
    write_table(with_rounds_to_target(table, results, 0.5), tmp_path / "table.md", "t", target=0.5)
    text = (tmp_path / "table.md").read_text()
    assert "| MB up to 50% | MB up+down to 50% |" in text and "| 4.5 | 14.5 |" in text
    plot_grid(results, ["rule", "seed"], tmp_path / "traffic.png", x="MB")
    plot_grid(results, ["rule", "seed"], tmp_path / "up.png", x="MB up")
    assert (tmp_path / "up.png").stat().st_size > 0
    assert (tmp_path / "traffic.png").stat().st_size > 0


def test_more_metric_columns_server_ones_over_the_last_evaluations(tmp_path):
    def row(seed, r, scope, metric, value):
        return {
            "rule": "a",
            "seed": seed,
            "round": r,
            "scope": scope,
            "metric": metric,
            "value": value,
        }

    results = pd.DataFrame(
        [row(s, r, "server", "accuracy", 0.5) for s in (0, 1) for r in (1, 2, 3)]
        + [row(0, r, "server", "accuracy/cnn", v) for r, v in [(1, 0.0), (2, 0.6), (3, 0.8)]]
        + [row(1, r, "server", "accuracy/cnn", v) for r, v in [(1, 0.0), (2, 0.8), (3, 1.0)]]
        + [row(s, r, "clients", "distill-seconds", s + r) for s in (0, 1) for r in (1, 2, 3)]
    )
    table = final_accuracy_table(results, ["rule", "seed"], last=2)
    table = with_metrics(table, results, ["accuracy/cnn", "distill-seconds"], last=2)
    assert table["metric:accuracy/cnn"].iloc[0] == pytest.approx(0.8)  # (0.7 + 0.9) / 2
    assert table["metric:distill-seconds"].iloc[0] == pytest.approx(2.5)  # all rounds
    write_table(table, tmp_path / "table.md", "t")
    text = (tmp_path / "table.md").read_text()
    assert "| accuracy/cnn (%) | distill-seconds |" in text
    assert "| 80.00 ± 14.14 | 2.5 ± 0.707 |" in text
    with pytest.raises(StamenError, match="no metric 'nope'"):
        with_metrics(table, results, ["nope"])


def test_a_grid_runs_on_the_ray_engine(tmp_path):
    grid = Grid("ray", {**BASE, "num-server-rounds": 1}, {"aggregator": ["median"]})
    statuses = []
    run_grid(grid.cells(), tmp_path, engine="ray", on_cell=lambda c, s: statuses.append(s))
    assert statuses == ["finished"]
    results = collect_results(grid.cells(), tmp_path)
    assert set(results["round"]) == {0, 1} and set(results.aggregator) == {"median"}


def test_runs_per_worker_run_cells_together_and_report_each(tmp_path):
    grid = Grid("tiny", {**BASE, "batch-clients": "on"}, {"seed": [0, 1, 2]})
    statuses = []
    run_grid(grid.cells(), tmp_path, runs_per_worker=2, on_cell=lambda c, s: statuses.append(s))
    assert statuses == ["finished"] * 3  # one worker ran two cells, another the third
    assert all((cell_dir(tmp_path, c) / "summary.json").exists() for c in grid.cells())


@pytest.mark.parametrize(("runs", "engine"), [(0, "inline"), (2, "ray")])
def test_runs_per_worker_needs_one_or_the_inline_engine(tmp_path, runs, engine):
    with pytest.raises(ConfigError, match="runs-per-worker"):
        cells = Grid("g", BASE, {"seed": [0]}).cells()
        run_grid(cells, tmp_path, runs_per_worker=runs, engine=engine)


def test_an_unknown_engine_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="expected one of inline, ray"):
        run_grid(Grid("g", BASE, {"seed": [0]}).cells(), tmp_path, engine="spark")


@pytest.mark.parametrize("name", ["exp2", "exp3", "exp2-cpu", "exp3-cpu"])
def test_the_bucketing_paper_grids_are_valid(name):
    path = Path(__file__).parents[2] / "benchmarks" / "bucketing" / f"{name}.toml"
    cells = Grid.load(path).cells()  # every cell's configuration is validated
    assert {c.experiment.num_clients for c in cells} == {25}
    assert {c.experiment.num_byzantine for c in cells} == {5}


GRIDS = sorted((Path(__file__).parents[2] / "benchmarks").glob("*/*.toml"))
GRIDS = [path for path in GRIDS if path.parent.name != "out"]  # out/: ignored outputs


@pytest.mark.parametrize("path", GRIDS, ids=[f"{p.parent.name}/{p.stem}" for p in GRIDS])
def test_every_benchmark_grid_is_valid(path):
    cells = Grid.load(path).cells()  # every cell's configuration is validated
    assert len({cell.key for cell in cells}) == len(cells)


def test_a_grid_whose_only_axis_is_the_seed_is_one_cell(tmp_path):
    results = pd.DataFrame(
        [
            {"round": r, "scope": scope, "metric": metric, "value": v, "seed": seed}
            for seed, final in [(0, 0.6), (1, 0.8)]
            for r, v in [(1, 0.3), (2, final)]
            for scope, metric in [("server", "accuracy"), ("clients", "bytes-up")]
        ]
    )
    results, axes = table_axes(results, ["seed"])
    table = final_accuracy_table(results, axes)
    table = with_traffic(with_rounds_to_target(table, results, 0.5), results)
    assert table["mean"].tolist() == pytest.approx([0.7]) and table["count"].tolist() == [2]
    write_table(table, tmp_path / "table.md", "t", target=0.5)
    assert "| all | 70.00 ± 14.14 | 2 |" in (tmp_path / "table.md").read_text()
    plot_grid(results, axes, tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").exists()


def test_every_line_of_a_crowded_plot_has_its_own_colour_and_style(tmp_path, monkeypatch):
    rows = [
        {"method": f"m{i:02d}", "seed": 0, "scope": "server", "metric": "accuracy",
         "round": r, "value": 0.1 * r + 0.01 * i}
        for i in range(29)
        for r in (0, 1, 2)
    ]  # fmt: skip
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot_grid(pd.DataFrame(rows), ["method", "seed"], tmp_path / "accuracy.png")
    lines = figures[0].axes[0].lines
    assert len(lines) == 29
    assert len({(str(line.get_color()), line.get_linestyle()) for line in lines}) == 29
