"""Simulation throughput: the bucketing paper's exp2 cell as a bare loop and on each engine.

The work (identical for all): ``benchmarks/bucketing/exp2.toml``'s cell: MNIST, the ``cnn``,
n = 25 clients of which f = 5 Byzantine (the mimic attack), one SGD step of batch 32 (lr 1,
so the reply is -g) per client per round, ``bucketing(s=2) | cclip(tau=10, iters=3)``, server
lr 0.01, 600 rounds, test evaluation every 30 rounds. ``--partition`` (default ``sorted``, the
non-iid cell), ``--seed`` and ``--rounds`` pick the cell.

- ``bare``: one process, no Flower. One model object; per client it loads the global
  weights, draws the client's batch and dropout seed as the ClientApp does
  (``client_rng(seed, round, partition)``), takes the step; the 25 updates are stacked, the
  Byzantine rows replaced by the mimic attack, aggregated and applied, with the same seeded
  generators as the robust strategy.
- ``ray``: ``run_ray``: a SuperLink and Flower's Ray simulation engine, ``client-cpus=1``.
- ``inline``: ``run_inline`` with ``batch-clients=off``: Flower's ServerApp and ClientApp in
  one process, one client at a time.
- ``batched``: ``run_inline`` with ``batch-clients=on``: the round's clients trained
  together (``BatchedSGD``).

The data set is loaded and partitioned before any timing; Ray's workers load it themselves,
which is part of its fixed cost. The process keeps the memory it frees
(``stamen.simulations.allocator``), as the inline engine does, so the bare loop and the
in-process engines all reuse their buffers (Ray's workers run with glibc's defaults).
``--threads 1`` (default) gives every process one torch thread, as Ray's actors have at
``client-cpus=1``.

Columns: ``wall_s`` (whole run); ``round_s``, steady-state seconds per round (end of round 1
to end of the last round; Ray's are read from ``metrics.csv`` every 0.5 s); rounds per second
(``rounds / wall_s``); the ratio of each to ``bare`` measured in the same invocation; the
final test accuracy, which must agree across the engines for one seed. On a shared or
throttled machine, ``--repeats N`` runs the engines N times interleaved and prints the
medians, each ratio taken against ``bare`` of the same repeat. Targets: ``inline``
within 1.2x of ``bare``; ``batched`` at least 3x faster than ``bare`` on a GPU and not slower
on a CPU.

    python benchmarks/throughput.py                           # all four, 600 rounds
    python benchmarks/throughput.py --engines bare,inline --rounds 50 --device cuda
    python benchmarks/throughput.py --engines bare,inline --rounds 60 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stamen.algorithms.aggregation import parse_pipeline
from stamen.attacks import byzantine_clients, create_attack
from stamen.clients.training import TrainSettings, evaluate, minibatches
from stamen.devices import resolve_device
from stamen.experiment import Experiment
from stamen.federation import dataset_of, train_partitions
from stamen.models import create_model
from stamen.seeding import ServerStream, client_rng, server_generator
from stamen.simulations.allocator import keep_freed_memory
from stamen.simulations.bench import Grid
from stamen.simulations.results import Row

ENGINES = ("bare", "ray", "inline", "batched")
ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out"
EXP2 = ROOT / "bucketing" / "exp2.toml"
AGGREGATOR = "bucketing(s=2) | cclip(tau=10, iters=3)"
POLL_S = 0.5  # run_ray reads metrics.csv this often
TABLE = ("engine", "wall_s", "round_s", "rounds_per_s", "wall_ratio", "round_ratio", "accuracy")


def experiment_of(args: argparse.Namespace) -> Experiment:
    """exp2's cell for ``args.partition``, ``AGGREGATOR`` and ``args.seed``."""
    for cell in Grid.load(EXP2).cells():
        chosen = cell.axes
        if (chosen["partition"], chosen["aggregator"], chosen["seed"]) == (
            args.partition,
            AGGREGATOR,
            args.seed,
        ):
            return cell.experiment.replace(
                num_server_rounds=args.rounds, device=args.device, client_cpus=1
            )
    raise SystemExit(f"exp2 has no cell partition={args.partition!r}, seed={args.seed}")


class RoundClock:
    """Times the end of each round from the ``clients`` rows a run writes."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.ended: dict[int, float] = {}

    def on_row(self, row: Row) -> None:
        if row.scope == "clients":
            self.ended.setdefault(row.round, time.perf_counter())

    def round_s(self) -> float:
        """Seconds per round between the end of round 1 and the end of the last round."""
        first, last = min(self.ended, default=0), max(self.ended, default=0)
        if last <= first or self.ended[last] - self.ended[first] < POLL_S:
            return float("nan")  # Ray's rows all arrived in one poll: too few rounds
        return (self.ended[last] - self.ended[first]) / (last - first)


def run_bare(experiment: Experiment, clock: RoundClock) -> float:
    """exp2's cell as a plain loop; returns the final test accuracy."""
    device = resolve_device(experiment.device)
    data = dataset_of(experiment)
    parts = train_partitions(experiment, experiment.num_clients)
    settings = TrainSettings.from_config({}, experiment)
    test = np.arange(len(data.test))
    pipeline = parse_pipeline(
        experiment.aggregator, experiment.num_clients, experiment.num_byzantine
    )
    attack = create_attack(experiment.attack)
    byzantine = torch.zeros(experiment.num_clients, dtype=torch.bool, device=device)
    chosen = byzantine_clients(experiment.num_clients, experiment.num_byzantine, experiment.seed)
    byzantine[torch.as_tensor(chosen, device=device)] = True

    model = create_model(experiment.model, data.input_shape, data.num_classes, experiment.seed)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr)  # no state: one serves all
    params = list(model.parameters())
    sizes = [p.numel() for p in params]
    global_params = torch.nn.utils.parameters_to_vector(params).detach()
    updates = torch.empty(experiment.num_clients, global_params.numel(), device=device)
    rule_state = attack_state = None

    def load_global() -> None:  # copies (``vector_to_parameters`` would alias the vector)
        with torch.no_grad():
            for param, value in zip(params, global_params.split(sizes), strict=True):
                param.copy_(value.view_as(param))

    def evaluate_global() -> float:
        load_global()
        metrics = evaluate(model, data, data.test, test, experiment.eval_batch_size, device)
        return metrics["accuracy"]

    evaluate_global()  # round 0
    for server_round in range(1, experiment.num_server_rounds + 1):
        model.train()
        for partition_id, indices in enumerate(parts):
            load_global()
            rng = client_rng(experiment.seed, server_round, partition_id)
            torch.manual_seed(int(rng.integers(2**62)))  # dropout, as the ClientApp seeds it
            rng = client_rng(experiment.seed, server_round, partition_id)
            for batch in minibatches(indices, settings, rng):
                x, y = (t.to(device) for t in data.to_tensors(data.train, batch))
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                trained = torch.nn.utils.parameters_to_vector(params)
                torch.sub(trained, global_params, out=updates[partition_id])
        crafted, attack_state = attack.craft(
            updates[~byzantine],
            int(byzantine.sum()),
            server_generator(experiment.seed, server_round, ServerStream.ATTACK),
            attack_state,
        )
        updates[byzantine] = crafted
        aggregate, rule_state = pipeline.aggregate(
            updates,
            rule_state,
            server_generator(experiment.seed, server_round, ServerStream.AGGREGATION),
        )
        global_params = global_params + experiment.server_lr * aggregate
        clock.on_row(Row(server_round, "clients", "replies", len(parts)))
        last = server_round == experiment.num_server_rounds
        if server_round % experiment.eval_every == 0 and not last:
            evaluate_global()
    return evaluate_global()


def run_inline_engine(experiment: Experiment, clock: RoundClock, out_dir: Path) -> float:
    from stamen.simulations.inline_engine import run_inline
    from stamen.simulations.results import RunRecorder
    from stamen.simulations.server_app import quiet_flower_logs

    quiet_flower_logs()
    summary = run_inline(experiment, RunRecorder(out_dir, experiment, on_row=clock.on_row))
    return summary["final"]["accuracy"]


def run_ray_engine(experiment: Experiment, clock: RoundClock, out_dir: Path) -> float:
    from stamen.simulations.ray_engine import run_ray

    run_ray(experiment, out_dir, on_row=clock.on_row)
    return json.loads((out_dir / "summary.json").read_text())["final"]["accuracy"]


def measure(engine: str, experiment: Experiment) -> dict:
    out_dir = OUT / "runs" / engine
    runners: dict[str, Callable[[RoundClock], float]] = {
        "bare": lambda clock: run_bare(experiment, clock),
        "ray": lambda clock: run_ray_engine(experiment, clock, out_dir),
        "inline": lambda clock: run_inline_engine(
            experiment.replace(batch_clients="off"), clock, out_dir
        ),
        "batched": lambda clock: run_inline_engine(
            experiment.replace(batch_clients="on"), clock, out_dir
        ),
    }
    # A stale metrics.csv in a reused folder would be replayed as this run's rounds.
    shutil.rmtree(out_dir, ignore_errors=True)
    clock = RoundClock()
    accuracy = runners[engine](clock)
    if resolve_device(experiment.device).type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - clock.started
    return {
        "engine": engine,
        "wall_s": wall,
        "round_s": clock.round_s(),
        "rounds_per_s": experiment.num_server_rounds / wall,
        "accuracy": accuracy,
    }


def warm_up(experiment: Experiment) -> None:
    """Load and partition the data and run one step, so no engine pays first-call costs."""
    data = dataset_of(experiment)
    parts = train_partitions(experiment, experiment.num_clients)
    model = create_model(experiment.model, data.input_shape, data.num_classes, 0)
    x, y = data.to_tensors(data.train, parts[0][: experiment.batch_size])
    F.cross_entropy(model(x), y).backward()


def report(results: list[dict], experiment: Experiment) -> None:
    """Print every run, each against ``bare`` of its own repeat, then the medians."""
    for r in results:
        base = next(
            (b for b in results if b["engine"] == "bare" and b["repeat"] == r["repeat"]), None
        )
        r["wall_ratio"] = r["wall_s"] / base["wall_s"] if base else float("nan")
        r["round_ratio"] = r["round_s"] / base["round_s"] if base else float("nan")
    device = resolve_device(experiment.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"\nexp2 cell ({experiment.partition}, {experiment.aggregator}, seed {experiment.seed}), "
        f"{experiment.num_server_rounds} rounds, {where}, torch threads "
        f"{torch.get_num_threads()}, {os.cpu_count()} CPUs"
    )
    print_table(results)
    repeats = max(r["repeat"] for r in results) + 1
    if repeats > 1:
        print(f"\nmedian over {repeats} repeats (ratios taken within each repeat)")
        engines = dict.fromkeys(r["engine"] for r in results)
        print_table(
            [
                {
                    key: (
                        engine
                        if key == "engine"
                        else statistics.median(r[key] for r in results if r["engine"] == engine)
                    )
                    for key in TABLE
                }
                for engine in engines
            ]
        )


def print_table(rows: list[dict]) -> None:
    print(
        f"{'engine':<8}{'wall s':>9}{'s/round':>10}{'rounds/s':>10}"
        f"{'x bare (wall)':>15}{'x bare (round)':>16}{'accuracy':>10}"
    )
    for r in rows:
        print(
            f"{r['engine']:<8}{r['wall_s']:>9.2f}{r['round_s']:>10.3f}{r['rounds_per_s']:>10.2f}"
            f"{r['wall_ratio']:>15.2f}{r['round_ratio']:>16.2f}{r['accuracy']:>10.4f}"
        )


def write_csv(results: list[dict], experiment: Experiment, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [
        "engine", "repeat", "device", "partition", "seed", "rounds", "threads", "wall_s", "round_s",
        "rounds_per_s", "wall_ratio", "round_ratio", "accuracy",
    ]  # fmt: skip
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            writer.writerow(
                {
                    **r,
                    "device": experiment.device,
                    "partition": experiment.partition,
                    "seed": experiment.seed,
                    "rounds": experiment.num_server_rounds,
                    "threads": torch.get_num_threads(),
                }
            )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {', '.join(ENGINES)}",
    )
    parser.add_argument("--partition", default="sorted", help="iid or sorted (exp2's axis)")
    parser.add_argument("--seed", type=int, default=0, help="0, 1 or 2 (exp2's axis)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (all engines)")
    parser.add_argument("--csv", type=Path, help="output (default out/throughput-<device>.csv)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process, all engines (0: torch's default)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run the engines this many times, interleaved; the medians are printed last",
    )
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        parser.error(
            f"unknown engine {unknown[0] if unknown else ''!r}: "
            f"expected a comma-separated subset of {', '.join(ENGINES)}"
        )
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (seconds per round needs two round ends)")
    args.engines = engines
    return args


def main() -> None:
    args = parse_args()
    if args.threads > 0:
        # One setting for every process: this one and, through the environment, Flower's
        # ServerApp process and Ray's actors.
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    keep_freed_memory()  # as run_inline does, so every engine of this process runs with it
    experiment = experiment_of(args)
    warm_up(experiment)
    results = []
    path = args.csv or OUT / f"throughput-{experiment.device}.csv"
    for repeat in range(args.repeats):  # interleaved, so a slow spell hits every engine alike
        for engine in args.engines:
            print(f"running {engine} ({repeat + 1}/{args.repeats}) ...", flush=True)
            results.append({**measure(engine, experiment), "repeat": repeat})
            write_csv(results, experiment, path)  # as it goes: a cut run keeps what finished
    report(results, experiment)
    write_csv(results, experiment, path)  # now with the ratios
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
