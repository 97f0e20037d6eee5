"""The ``stamen`` command line: ``stamen run``, ``stamen bench`` and ``stamen partitions``.

Settings are the Flower run-config keys, from ``--config FILE.toml`` then ``--set k=v``.
Bad input prints one line naming what is allowed and exits with status 2.
"""

from __future__ import annotations

import signal
import sys
import tomllib
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import click
import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stamen.datasets import label_counts, plot_label_distribution
from stamen.errors import StamenError
from stamen.experiment import Experiment, parse_assignment
from stamen.federation import dataset_of, train_partitions
from stamen.models import create_model
from stamen.node_keys import make_node_keys
from stamen.secure.certificates import make_certificates
from stamen.simulations.bench import Cell, Grid, result_columns, run_grid
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
from stamen.simulations.inline_engine import run_inline
from stamen.simulations.progress import RoundProgress
from stamen.simulations.ray_engine import run_ray, write_app
from stamen.simulations.results import RunRecorder, default_out_dir
from stamen.simulations.secure_services import serve
from stamen.simulations.server_app import quiet_flower_logs

cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Stamen: federated-learning simulations and benchmarks on Flower.",
)
console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML file of run-config keys.")
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="key=value, repeatable; overrides --config.")
]


class Engine(str, Enum):
    inline = "inline"
    ray = "ray"


@cli.command()
def run(
    config: ConfigOption = None,
    set_: SetOption = None,
    engine: Annotated[
        Engine, typer.Option(help="inline: one process; ray: Flower's engine.")
    ] = Engine.inline,
    out: Annotated[Path | None, typer.Option(help="Output folder.")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the interrupted run in this folder from its checkpoint."),
    ] = None,
) -> None:
    """Run one federated experiment and write its results folder."""
    if resume is not None:
        if config or set_ or out:
            raise StamenError("--resume takes the run's own config: no --config, --set or --out")
        config, out = resume / "config.toml", resume
        set_ = ["resume=true"]
    experiment = load_experiment(config, set_ or [])
    out_dir = out or (
        Path(experiment.out_dir) if experiment.out_dir else default_out_dir(experiment)
    )
    experiment = experiment.replace(out_dir=str(out_dir.resolve()))
    preflight(experiment)
    console.print(f"[bold]stamen[/] {experiment.name} on the {engine.value} engine -> {out_dir}")
    with RoundProgress(experiment.num_server_rounds, console) as progress:
        if engine is Engine.inline:
            quiet_flower_logs()
            run_inline(experiment, RunRecorder(out_dir, experiment, on_row=progress.update))
        else:
            run_ray(experiment, out_dir, on_row=progress.update)
    console.print(progress.final_line())
    console.print(f"results: {out_dir}")


@cli.command()
def bench(
    grid_file: Annotated[Path, typer.Argument(help="Grid TOML: [base] keys and [axes] lists.")],
    out: Annotated[Path | None, typer.Option(help="Output folder.")] = None,
    workers: Annotated[int, typer.Option(help="Cells run in parallel processes.")] = 1,
    threads: Annotated[
        int, typer.Option(help="Torch threads per worker (0: the cores shared among workers).")
    ] = 0,
    last: Annotated[int, typer.Option(help="Average each run's last N evaluations.")] = 1,
    engine: Annotated[
        Engine, typer.Option(help="inline: one process per cell; ray: Flower's engine.")
    ] = Engine.inline,
    runs_per_worker: Annotated[
        int,
        typer.Option(
            help="Cells run at once in threads of each worker (inline); with batch-clients "
            "their clients train together, to keep a GPU busy."
        ),
    ] = 1,
) -> None:
    """Run every cell of a grid (resuming finished ones) and write results, table and plots."""
    grid = Grid.load(grid_file)
    out_dir = out or Path("runs") / f"bench-{grid.name}"
    cells = grid.cells()
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]stamen bench[/] {grid.name}: {len(cells)} cells -> {out_dir}")
    failures = []
    with Progress(
        TextColumn("cells"), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("cells", total=len(cells))

        def on_cell(cell: Cell, status: str) -> None:
            progress.advance(task)
            if status.startswith("failed"):
                failures.append(f"{cell.key}: {status}")

        run_grid(
            cells,
            out_dir,
            workers=workers,
            engine=engine.value,
            on_cell=on_cell,
            threads=threads,
            runs_per_worker=runs_per_worker,
        )
    results = collect_results(cells, out_dir)
    if len(results):
        results, axes = table_axes(results, result_columns(cells))
        table = final_accuracy_table(results, axes, last)
        if grid.reference is not None:
            table = with_reference(table, results, pd.read_csv(grid.reference), last)
        if grid.target is not None:
            table = with_rounds_to_target(table, results, grid.target)
        if grid.traffic:
            table = with_traffic(table, results)
        if grid.traffic and grid.target is not None:
            table = with_traffic_to_target(table, results, grid.target)
        if grid.columns:
            table = with_metrics(table, results, list(grid.columns), last)
        write_table(table, out_dir / "table.md", grid.name, target=grid.target)
        plot_grid(results, axes, out_dir / "accuracy.png")
        if grid.traffic:
            plot_grid(results, axes, out_dir / "accuracy-traffic.png", x="MB up")
    for failure in failures:
        console.print(f"[red]{failure}[/]", soft_wrap=True)
    console.print(f"results: {out_dir}")
    if failures:
        raise typer.Exit(1)


@cli.command()
def partitions(
    config: ConfigOption = None,
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the plot and table.")] = None,
) -> None:
    """Print each client's label counts and save a label-distribution plot."""
    experiment = load_experiment(config, set_ or [])
    data = dataset_of(experiment)
    counts = label_counts(data.train.y, train_partitions(experiment, experiment.num_clients))
    title = f"{experiment.dataset}: {experiment.partition} over {experiment.num_clients} clients"
    table = Table(title=title)
    table.add_column("client", justify="right")
    for column in counts.columns:
        table.add_column(str(column), justify="right")
    for client, row in counts.iterrows():
        table.add_row(str(client), *(str(int(v)) for v in row))
    Console().print(table)
    out_dir = out or Path("runs") / f"partitions-{experiment.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    counts.to_csv(out_dir / "label_counts.csv")
    plot_label_distribution(counts, out_dir / "label_distribution.png")
    console.print(f"saved {out_dir / 'label_distribution.png'}")


AddressOption = Annotated[str, typer.Option(help="host:port to listen on (port 0: any free).")]
CertsOption = Annotated[Path, typer.Option(help="Folder with ca.pem and the party's key.")]
ReadyOption = Annotated[Path | None, typer.Option(help="Write host:port here once listening.")]


@cli.command("secure-server")
def secure_server(
    certs: CertsOption, listen: AddressOption = "127.0.0.1:0", ready_file: ReadyOption = None
) -> None:
    """Run S2, the second non-colluding server of secure aggregation, until S1 stops it."""
    _serve("s2", listen, certs, ready_file)


@cli.command()
def dealer(
    certs: CertsOption, listen: AddressOption = "127.0.0.1:0", ready_file: ReadyOption = None
) -> None:
    """Run the dealer of correlated randomness for secure aggregation until S1 stops it."""
    _serve("dealer", listen, certs, ready_file)


@cli.command("secure-certs")
def secure_certs(
    out: Annotated[Path, typer.Argument(help="Folder for ca.pem and the parties' keys.")],
    host: Annotated[list[str] | None, typer.Option(help="Address the services run on.")] = None,
) -> None:
    """Make a private CA and certificates for S1, S2 and the dealer."""

    make_certificates(out, tuple(host or ("127.0.0.1", "localhost")))
    console.print(f"certificates in {out}: give each party its own key and ca.pem")


@cli.command()
def app(
    out: Annotated[Path, typer.Argument(help="Folder to write the Flower App to (new).")],
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Write a Flower App of Stamen's components with this run config, for `flwr run`."""
    experiment = load_experiment(config, set_ or [])
    if out.exists():
        raise StamenError(f"{out} exists: give a new folder")
    write_app(out, experiment)
    console.print(f"Flower App in {out}: flwr run {out} <connection> --stream")


@cli.command("deploy-keys")
def deploy_keys(
    out: Annotated[Path, typer.Argument(help="Folder for the TLS files and node keys.")],
    nodes: Annotated[int, typer.Option(help="SuperNode key pairs to make.")] = 3,
    host: Annotated[list[str] | None, typer.Option(help="Address the SuperLink runs on.")] = None,
) -> None:
    """Make a CA, the SuperLink's TLS certificate and SuperNode authentication keys."""

    if nodes < 1:
        raise StamenError(f"--nodes must be at least 1, got {nodes}")
    make_certificates(out, tuple(host or ("127.0.0.1", "localhost")), parties=("superlink",))
    make_node_keys(out / "nodes", [f"node{i}" for i in range(nodes)])
    console.print(
        f"in {out}: ca.pem, superlink.pem and superlink.key for the SuperLink; "
        f"nodes/node<i> (keep on node i) and nodes/node<i>.pub (register with the SuperLink)"
    )


def _serve(party: str, listen: str, certs: Path, ready_file: Path | None) -> None:

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise StamenError(f"--listen must be host:port, got {listen!r}")
    serve(party, (host, int(port)), certs, ready_file)


def preflight(experiment: Experiment) -> None:
    """Fail before any engine starts if the data set cannot be had or the model not fit it."""
    data = dataset_of(experiment)
    create_model(experiment.model, data.input_shape, data.num_classes, experiment.seed)


def load_experiment(config_file: Path | None, assignments: list[str]) -> Experiment:
    """Defaults, then the TOML file, then ``--set`` assignments, validated once."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values.update(tomllib.loads(config_file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise StamenError(f"cannot read config file {config_file}: {exc}") from exc
    for text in assignments:
        key, value = parse_assignment(text)
        values[key] = value
    return Experiment.from_run_config(values)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: one line and exit status 2 for bad input, 130 on Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, _interrupt)  # clean up as on Ctrl-C
    try:
        status = cli(standalone_mode=False)
    except StamenError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, click.exceptions.Abort):
        status = 130
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    if status == 130:  # typer answers Ctrl-C with Exit(130) itself
        console.print("interrupted: the rounds that finished are in the output folder")
    sys.exit(status if isinstance(status, int) else 0)
