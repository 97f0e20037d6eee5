"""A grid's results: one tidy ``results.csv``, a ``table.md`` of mean +- std, and plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import cycler  # noqa: E402

from stamen.errors import StamenError  # noqa: E402
from stamen.simulations.bench import Cell, cell_dir, result_columns  # noqa: E402
from stamen.simulations.results import read_metrics  # noqa: E402

SEED = "seed"


def collect_results(cells: list[Cell], out_dir: Path) -> pd.DataFrame:
    """The tidy rows of every finished cell, with one column per varied run-config key."""
    columns = result_columns(cells)
    frames = []
    for cell in cells:
        folder = cell_dir(out_dir, cell)
        if not (folder / "summary.json").exists():
            continue
        frame = read_metrics(folder)
        config = cell.experiment.to_run_config()
        shown = cell.columns
        for column in columns:
            frame[column] = shown[column] if column in shown else config[column]
        frame[SEED] = cell.experiment.seed
        frames.append(frame)
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    results.to_csv(Path(out_dir) / "results.csv", index=False)
    return results


ONE_CELL = "cell"  # the key column of a grid whose only axis is the seed


def table_axes(results: pd.DataFrame, axes: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The results and the axes the tables group by: a grid whose only axis is the seed is
    one cell (``cell = all``), its seeds averaged like any other cell's."""
    if [a for a in axes if a != SEED]:
        return results, axes
    return results.assign(**{ONE_CELL: "all"}), [ONE_CELL, *axes]


def final_accuracy_table(results: pd.DataFrame, axes: list[str], last: int = 1) -> pd.DataFrame:
    """Per cell (all axes but the seed): mean and std over seeds of the final test accuracy.

    ``last > 1`` averages each run's last ``last`` evaluations first (the bucketing paper
    reports the mean of the last evaluations).
    """
    accuracy = results[(results.scope == "server") & (results.metric == "accuracy")]
    groups = [a for a in axes if a != SEED]
    per_run = (
        accuracy.sort_values("round")
        .groupby([*groups, SEED], dropna=False)
        .value.apply(lambda v: v.tail(last).mean())
        .reset_index()
    )
    table = per_run.groupby(groups, dropna=False).value.agg(["mean", "std", "count"])
    return table.reset_index()


def _keys(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in _STATS and not c.startswith(_METRIC_PREFIXES)]


METRIC, METRIC_STD = "metric:", "metric-std:"  # columns of `with_metrics`
_METRIC_PREFIXES = (METRIC, METRIC_STD)
_STATS = (
    "mean",
    "std",
    "count",
    "ref_mean",
    "ref_std",
    "ref_count",
    "rt_mean",
    "rt_std",
    "rt_reached",
    "rt_runs",
    "bytes-down",
    "bytes-up",
    "mt_up",
    "mt_total",
)
TRAFFIC = ("bytes-down", "bytes-up")
# plot_grid's traffic x axes: the metrics summed and the axis label
TRAFFIC_AXES = {
    "MB up": (("bytes-up",), "MB sent per client"),
    "MB": (TRAFFIC, "MB sent and received per client"),
}


def with_reference(
    table: pd.DataFrame, results: pd.DataFrame, reference: pd.DataFrame, last: int = 1
) -> pd.DataFrame:
    """``table`` with the reference's mean and std over seeds beside ours (``ref_*`` columns).

    The reference is averaged over the same rounds as ours (the rounds of our last ``last``
    evaluations), so both columns are the same statistic.
    """
    evaluated = results[(results.scope == "server") & (results.metric == "accuracy")]["round"]
    rounds = sorted(set(evaluated))[-last:]
    keys = _keys(table)
    missing = sorted(set(keys) - set(reference.columns))
    if missing:
        raise StamenError(f"reference has no column {missing[0]!r}: it needs {keys}")
    at_rounds = reference[reference["round"].isin(rounds)]
    per_run = at_rounds.groupby([*keys, SEED]).accuracy.mean().reset_index()
    summary = per_run.groupby(keys).accuracy.agg(["mean", "std", "count"]).reset_index()
    summary = summary.rename(columns={"mean": "ref_mean", "std": "ref_std", "count": "ref_count"})
    return table.merge(summary, on=keys, how="left")


def with_rounds_to_target(
    table: pd.DataFrame, results: pd.DataFrame, target: float
) -> pd.DataFrame:
    """``table`` with the first round at which each run's test accuracy reaches ``target``:
    mean and std over the runs that reach it (``rt_*``), and how many do."""
    keys = _keys(table)
    accuracy = results[(results.scope == "server") & (results.metric == "accuracy")]
    runs = accuracy.groupby([*keys, SEED], dropna=False)
    first = runs.apply(lambda r: r["round"][r.value >= target].min(), include_groups=False)
    first = first.rename("first").reset_index()
    summary = first.groupby(keys, dropna=False)["first"].agg(["mean", "std", "count", "size"])
    summary.columns = ["rt_mean", "rt_std", "rt_reached", "rt_runs"]
    return table.merge(summary.reset_index(), on=keys, how="left")


def with_traffic(table: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the mean bytes per client and round, each way (``bytes-down/up``)."""
    keys = _keys(table)
    traffic = results[results.metric.isin(TRAFFIC)]
    means = traffic.pivot_table(index=keys, columns="metric", values="value", aggfunc="mean")
    return table.merge(means.reset_index(), on=keys, how="left")


def with_traffic_to_target(
    table: pd.DataFrame, results: pd.DataFrame, target: float
) -> pd.DataFrame:
    """``table`` with the bytes a client sent (``mt_up``), and sent and received
    (``mt_total``), in the rounds up to the first at which the run's test accuracy reaches
    ``target``: the mean over the runs that reach it (NaN when none does)."""
    keys = _keys(table)
    run_keys = [*keys, SEED]
    accuracy = results[(results.scope == "server") & (results.metric == "accuracy")]
    first = accuracy[accuracy.value >= target].groupby(run_keys, dropna=False)["round"].min()
    traffic = results[results.metric.isin(TRAFFIC)].merge(
        first.rename("first").reset_index(), on=run_keys
    )
    traffic = traffic[traffic["round"] <= traffic["first"]]
    per_run = traffic.pivot_table(
        index=run_keys, columns="metric", values="value", aggfunc="sum", fill_value=0
    ).reset_index()
    if per_run.empty:
        return table.assign(mt_up=float("nan"), mt_total=float("nan"))
    per_run["mt_up"] = per_run.get("bytes-up", 0)
    per_run["mt_total"] = per_run["mt_up"] + per_run.get("bytes-down", 0)
    means = per_run.groupby(keys, dropna=False)[["mt_up", "mt_total"]].mean().reset_index()
    return table.merge(means, on=keys, how="left")


def with_metrics(
    table: pd.DataFrame, results: pd.DataFrame, names: list[str], last: int = 1
) -> pd.DataFrame:
    """``table`` with more metrics, mean and std over seeds (``metric:<name>``,
    ``metric-std:<name>``).

    Per run, a server metric (an evaluation such as ``accuracy/cnn``) is averaged over its
    last ``last`` values, like the accuracy column; a client metric (``distill-seconds``)
    over all rounds."""
    keys = _keys(table)
    for name in names:
        rows = results[results.metric == name].sort_values("round")
        if rows.empty:
            raise StamenError(f"no metric {name!r} in the results: check the grid's columns")
        kept = last if (rows.scope == "server").all() else len(rows)
        per_run = (
            rows.groupby([*keys, SEED], dropna=False)
            .value.apply(lambda v, kept=kept: v.tail(kept).mean())
            .reset_index()
        )
        summary = per_run.groupby(keys, dropna=False).value.agg(["mean", "std"]).reset_index()
        summary.columns = [*keys, METRIC + name, METRIC_STD + name]
        table = table.merge(summary, on=keys, how="left")
    return table


def write_table(
    table: pd.DataFrame,
    path: Path,
    title: str,
    reference: str = "paper",
    target: float | None = None,
) -> None:
    """``table.md``: accuracy in percent as mean +- std over seeds (no std for one seed).

    With ``ref_*`` columns (``with_reference``) it adds the ``reference``'s accuracy and the
    difference ours - reference.
    """
    axes = _keys(table)
    compared = "ref_mean" in table.columns
    header = [*axes, "accuracy (%)", "seeds"]
    if compared:
        header += [f"{reference} (%)", f"{reference} seeds", "difference"]
    if "rt_mean" in table.columns:
        header.append(f"rounds to {100 * target:g}%")
    if "bytes-down" in table.columns:
        header += ["MB down per client-round", "MB up per client-round"]
    if "mt_up" in table.columns:
        header += [f"MB up to {100 * target:g}%", f"MB up+down to {100 * target:g}%"]
    metrics = [c.removeprefix(METRIC) for c in table.columns if c.startswith(METRIC)]
    header += [f"{name} (%)" if _is_accuracy(name) else name for name in metrics]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in table.itertuples(index=False):
        values = dict(zip(table.columns, row))
        cells = [str(values[a]).replace("|", "\\|") for a in axes]
        cells += [_percent(values["mean"], values["std"], values["count"]), str(values["count"])]
        if compared:
            known = pd.notna(values["ref_mean"])
            cells += [
                _percent(values["ref_mean"], values["ref_std"], values["ref_count"]),
                str(int(values["ref_count"])) if known else "",
                f"{100 * (values['mean'] - values['ref_mean']):+.2f}" if known else "",
            ]
        if "rt_mean" in table.columns:
            reached = f"({int(values['rt_reached'])}/{int(values['rt_runs'])})"
            rounds = _number(values["rt_mean"], values["rt_std"], values["rt_reached"], "{:.0f}")
            cells.append(f"{rounds} {reached}")
        if "bytes-down" in table.columns:
            cells += [f"{values['bytes-down'] / 1e6:.3f}", f"{values['bytes-up'] / 1e6:.3f}"]
        if "mt_up" in table.columns:
            cells += [_number(values[k] / 1e6, 0, 1, "{:.1f}") for k in ("mt_up", "mt_total")]
        for name in metrics:
            mean, std = values[METRIC + name], values[METRIC_STD + name]
            count = values["count"] if pd.notna(std) else 1
            if _is_accuracy(name):
                cells.append(_percent(mean, std, count))
            else:
                cells.append(_number(mean, std, count, "{:.3g}"))
        lines.append("| " + " | ".join(cells) + " |")
    Path(path).write_text("\n".join(lines) + "\n")


def _is_accuracy(name: str) -> bool:
    return name.split("/")[0] == "accuracy"


def _percent(mean: float, std: float, count: float) -> str:
    return _number(100 * mean, 100 * std, count, "{:.2f}")


def _number(mean: float, std: float, count: float, form: str) -> str:
    """``mean ± std`` (no std for one value); a dash when there is none."""
    if pd.isna(mean):
        return "–"
    return form.format(mean) + (f" ± {form.format(std)}" if count > 1 else "")


# Lines of a panel: ten colours, then the same in each next line style (40 distinct lines).
LINE_STYLES = cycler(linestyle=["-", "--", ":", "-."]) * cycler(color=plt.get_cmap("tab10").colors)


def plot_grid(results: pd.DataFrame, axes: list[str], path: Path, x: str = "round") -> None:
    """Test accuracy, mean over seeds, per round (``x = "round"``) or against the megabytes a
    client sent so far (``x = "MB up"``) or sent and received (``x = "MB"``): one panel per
    value of the first axis, or a single panel when only one axis (besides the seed)
    varies; the legend beside the panels."""
    accuracy = results[(results.scope == "server") & (results.metric == "accuracy")]
    varied = [a for a in axes if a != SEED] or axes[:1]
    panel_axis, line_axes = varied[0], varied[1:]
    panels = list(dict.fromkeys(accuracy[panel_axis])) if line_axes else [None]
    size = (5 * len(panels) + 3, 4) if line_axes else (11, 5)
    fig, grid = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    for ax, panel in zip(grid[0], panels):
        rows = results if panel is None else results[results[panel_axis] == panel]
        keys = line_axes or [panel_axis]
        ax.set_prop_cycle(LINE_STYLES)
        for label, line in rows.groupby(keys, dropna=False):
            evaluated = line[(line.scope == "server") & (line.metric == "accuracy")]
            mean = evaluated.groupby("round").value.mean()
            if x == "round":
                where = mean.index
            else:
                metrics = list(TRAFFIC_AXES[x][0])
                where = _megabytes_by_round(line, metrics).reindex(mean.index)
            ax.plot(
                where,
                mean.values,
                label=" / ".join(map(str, label if isinstance(label, tuple) else (label,))),
            )
        title = panel_axis if panel is None else f"{panel_axis} = {panel}"
        xlabel = "round" if x == "round" else TRAFFIC_AXES[x][1]
        ax.set(title=title, xlabel=xlabel, ylabel="test accuracy")
        if x != "round":
            ax.set_xscale("symlog", linthresh=1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _megabytes_by_round(rows: pd.DataFrame, metrics: list[str]) -> pd.Series:
    """Per round, the megabytes of ``metrics`` (bytes-up, bytes-down) a client of each round
    sent or received up to it (mean over seeds)."""
    traffic = rows[rows.metric.isin(metrics)]
    per_round = traffic.groupby(["round", SEED]).value.sum().groupby("round").mean()
    totals = per_round.reindex(range(int(rows["round"].max()) + 1), fill_value=0.0)
    return totals.cumsum() / 1e6
