"""Engine overhead: the same FedAvg run as a bare PyTorch loop, on the inline engine and on Ray.

Work (identical for all three): MNIST, the bucketing paper's ``cnn``, ``--clients`` clients
(default 25) on an ``iid`` partition, all of them every round, one local SGD step of batch 32
(lr 0.01, momentum 0), FedAvg weighted by each client's number of examples, ``--rounds``
rounds (default 50), centralised test evaluation of the initial and of the final model (Flower's
strategies evaluate round 0; ``eval-every`` equals the number of rounds).

- ``bare``: one process, no Flower. One model object; per client it loads the global weights,
  draws the client's batch and dropout seed exactly as the ClientApp does
  (``client_rng(seed, round, partition)``), takes one step, and adds the weighted model into a
  running sum; the sum becomes the next global model.
- ``inline``: ``run_inline`` — Flower's ServerApp logic and ClientApp in one process.
- ``ray``: ``run_ray`` — a SuperLink and Flower's Ray simulation engine, ``client-cpus=1``.

Threads: ``--threads 1`` (default) gives every process one torch thread, as Ray gives each
actor at ``client-cpus=1``. Torch's default (one thread per core, ``--threads 0``) thrashes when
the cores are shared: with another process busy on both cores, a 2-thread training step took
7x longer than a 1-thread one on a 2-core machine.

The data set is loaded and partitioned before any timing, so ``bare`` and ``inline`` measure
training only; Ray's workers load it themselves, which is part of its fixed cost.

Columns: ``wall_s`` (whole run); ``round_s``, steady-state seconds per round: from the end of
round 1 to the end of the last round, divided by rounds - 1 (Ray's round ends are read from
``metrics.csv``, polled every 0.5 s, so give it 20+ rounds); ``fixed_s = wall_s - rounds *
round_s`` (startup, the two evaluations, output files, teardown); both ratios to ``bare``
measured in the same run; the final test accuracy. Target: ``inline`` within 1.2x of ``bare``.

    python benchmarks/engine_overhead.py [--rounds 50] [--clients 25] [--engines bare,inline,ray]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stamen.clients.local_data import client_rng, dataset_of, train_partitions
from stamen.clients.training import TrainSettings, evaluate, minibatches, resolve_device
from stamen.models import create_model
from stamen.simulations.config import Experiment
from stamen.simulations.results import Row

ENGINES = ("bare", "inline", "ray")
OUT = Path(__file__).resolve().parent / "out"
TARGET_RATIO = 1.2
POLL_S = 0.5  # run_ray reads metrics.csv this often


def experiment_of(args: argparse.Namespace) -> Experiment:
    return Experiment(
        dataset="mnist",
        partition=args.partition,
        model="cnn",
        strategy="fedavg",
        num_clients=args.clients,
        num_server_rounds=args.rounds,
        local_steps=1,
        batch_size=32,
        lr=0.01,
        momentum=0.0,
        eval_every=args.rounds,
        seed=args.seed,
        device=args.device,
        client_cpus=1,
    )


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
    """FedAvg as a plain loop; returns the final test accuracy."""
    device = resolve_device(experiment.device)
    data = dataset_of(experiment)
    parts = train_partitions(experiment, experiment.num_clients)
    settings = TrainSettings.from_config({}, experiment)
    examples = sum(len(p) for p in parts)
    weights = [len(p) / examples for p in parts]
    test = np.arange(len(data.test))

    model = create_model(experiment.model, data.input_shape, data.num_classes, experiment.seed)
    model.to(device)
    # Momentum 0 and no weight decay: SGD keeps no state, so one optimizer serves every client.
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    global_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    evaluate(model, data, data.test, test, experiment.eval_batch_size, device)  # round 0

    for server_round in range(1, experiment.num_server_rounds + 1):
        total = {k: torch.zeros_like(v) for k, v in global_state.items()}
        model.train()
        for partition_id, (indices, weight) in enumerate(zip(parts, weights)):
            model.load_state_dict(global_state)
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
                for name, value in model.state_dict().items():
                    total[name].add_(value, alpha=weight)
        global_state = total
        clock.on_row(Row(server_round, "clients", "replies", len(parts)))

    model.load_state_dict(global_state)
    return evaluate(model, data, data.test, test, experiment.eval_batch_size, device)["accuracy"]


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
    runners: dict[str, Callable[[RoundClock], float]] = {
        "bare": lambda clock: run_bare(experiment, clock),
        "inline": lambda clock: run_inline_engine(experiment, clock, OUT / "runs" / engine),
        "ray": lambda clock: run_ray_engine(experiment, clock, OUT / "runs" / engine),
    }
    # A stale metrics.csv in a reused folder would be replayed as this run's rounds.
    shutil.rmtree(OUT / "runs" / engine, ignore_errors=True)
    clock = RoundClock()
    accuracy = runners[engine](clock)
    wall = time.perf_counter() - clock.started
    round_s = clock.round_s()
    return {
        "engine": engine,
        "wall_s": wall,
        "round_s": round_s,
        "fixed_s": wall - experiment.num_server_rounds * round_s,
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
    base = next((r for r in results if r["engine"] == "bare"), None)
    for r in results:
        r["wall_ratio"] = r["wall_s"] / base["wall_s"] if base else float("nan")
        r["round_ratio"] = r["round_s"] / base["round_s"] if base else float("nan")
    print(
        f"\n{experiment.num_clients} clients, {experiment.num_server_rounds} rounds, "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs"
    )
    header = f"{'engine':<8}{'wall s':>9}{'s/round':>10}{'fixed s':>9}"
    print(header + f"{'x bare (wall)':>15}{'x bare (round)':>16}{'accuracy':>10}")
    for r in results:
        print(
            f"{r['engine']:<8}{r['wall_s']:>9.2f}{r['round_s']:>10.3f}{r['fixed_s']:>9.2f}"
            f"{r['wall_ratio']:>15.2f}{r['round_ratio']:>16.2f}{r['accuracy']:>10.4f}"
        )
    by_engine = {r["engine"]: r for r in results}
    if "bare" in by_engine and "inline" in by_engine:
        gap = by_engine["inline"]["accuracy"] - by_engine["bare"]["accuracy"]
        # The larger of the two ratios: short runs hide per-round overhead behind fixed costs.
        ratio = max(by_engine["inline"]["wall_ratio"], by_engine["inline"]["round_ratio"])
        verdict = "meets" if ratio <= TARGET_RATIO else "misses"
        print(
            f"inline - bare accuracy: {gap:+.4f}; inline at {ratio:.2f}x {verdict} the "
            f"{TARGET_RATIO}x target"
        )


def write_csv(results: list[dict], experiment: Experiment, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [
        "engine",
        "clients",
        "rounds",
        "threads",
        "wall_s",
        "round_s",
        "fixed_s",
        "wall_ratio",
        "round_ratio",
        "accuracy",
    ]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            writer.writerow(
                {
                    **r,
                    "clients": experiment.num_clients,
                    "rounds": experiment.num_server_rounds,
                    "threads": torch.get_num_threads(),
                }
            )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--clients", type=int, default=25)
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {', '.join(ENGINES)}",
    )
    parser.add_argument("--partition", default="iid", help="iid or dirichlet (all engines)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (all engines)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process, all engines (0: torch's default)",
    )
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        parser.error(
            f"unknown engine {unknown[0] if unknown else ''!r}: "
            f"expected a comma-separated subset of {', '.join(ENGINES)}"
        )
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (seconds per round needs two round ends)")
    args.engines = engines
    return args


def main() -> None:
    args = parse_args()
    if args.threads > 0:
        # One setting for every process: this one (bare, inline) and, through the
        # environment, Flower's ServerApp process and Ray's actors.
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    experiment = experiment_of(args)
    warm_up(experiment)
    results = []
    for engine in args.engines:
        print(f"running {engine} ...", flush=True)
        results.append(measure(engine, experiment))
    report(results, experiment)
    write_csv(results, experiment, OUT / "engine_overhead.csv")
    print(f"wrote {OUT / 'engine_overhead.csv'}")


if __name__ == "__main__":
    main()
