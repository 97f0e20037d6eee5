"""Clients per second on a device: one client at a time, the clients batched, several runs batched,
and the robust aggregation rules, each against the CPU figure measured in the same run.

The robustness benchmarks' work: the bucketing MNIST ``cnn`` (two dropout layers),
``--clients`` clients (default 25) each taking ``--steps`` SGD steps (default 1) of batch 32
from its run's global model, ``--rounds`` times (default 20, after one warm-up round). Inputs
are random MNIST-shaped tensors already on the device (the data's values do not change the
cost).

- ``loop``: one model object trained client by client as the ClientApp does (load the
  global weights, ``torch.optim.SGD``);
- ``batched``: ``BatchedSGD``, the round's clients in one call (``batch-clients``);
- ``runs xR``: ``--runs`` runs' rounds in one call, each client from its run's model (what
  ``stamen bench --runs-per-worker R`` does); clients/s counts every run's clients;
- aggregation: ``bucketing(s=2) | cclip(tau=10, iters=3)``, ``median``, ``krum`` and
  ``rfa(T=8, nu=0.1)`` on (clients, 1,199,882) updates, seconds per call; the largest
  difference from the CPU's output is printed beside it.

``x CPU`` divides the CPU loop's (or the CPU rule's) time by the row's: the CPU figures are
measured first, on ``--cpu-rounds`` rounds (default 3) with ``--threads`` torch threads.
Torch only: no flwr, no Ray, so it runs on a bare GPU machine; ``--device`` defaults to CUDA
when present (on a CPU-only machine: the CPU loop and batched rows). Under 5 minutes on one
H100/H200 with the defaults.

    python benchmarks/gpu.py [--device cuda] [--clients 25] [--runs 8] [--rounds 20]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from stamen.algorithms.aggregation import parse_pipeline
from stamen.clients.batched_training import BatchedSGD
from stamen.models import create_model

RULES = ("bucketing(s=2) | cclip(tau=10, iters=3)", "median", "krum", "rfa(T=8, nu=0.1)")


def loop(model, start, inputs, labels, seeds, lr) -> None:  # noqa: ANN001
    for client, seed in enumerate(seeds):
        model.load_state_dict(start)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        torch.manual_seed(seed)
        for step in range(inputs.shape[1]):
            loss = F.cross_entropy(model(inputs[client, step]), labels[client, step])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def timed(run: Callable[[], object], rounds: int, device: torch.device) -> float:
    """Seconds per call after one warm-up call (kernels, allocator, vmap tracing)."""
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(rounds):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / rounds


class Workload:
    """The clients' data and models on one device."""

    def __init__(self, device: torch.device, clients: int, steps: int, runs: int) -> None:
        self.device, self.clients, self.runs = device, clients, runs
        self.model = create_model("cnn", (1, 28, 28), 10, seed=0).to(device).train()
        self.start = {k: v.clone() for k, v in self.model.state_dict().items()}
        generator = torch.Generator().manual_seed(0)
        total = clients * runs
        self.inputs = torch.randn(total, steps, 32, 1, 28, 28, generator=generator).to(device)
        self.labels = torch.randint(0, 10, (total, steps, 32), generator=generator).to(device)
        self.seeds = list(range(total))
        # each run's global model: the same architecture, other weights
        self.run_starts = {
            name: torch.stack([p.detach() + 0.01 * r for r in range(runs)]).repeat_interleave(
                clients, dim=0
            )
            for name, p in self.model.named_parameters()
        }
        self.trainer = BatchedSGD(self.model, lr=0.1)

    def loop(self) -> None:
        one = slice(0, self.clients)
        loop(self.model, self.start, self.inputs[one], self.labels[one], self.seeds[one], 0.1)

    def batched(self) -> None:
        one = slice(0, self.clients)
        self.trainer.run(self.inputs[one], self.labels[one], self.seeds[one])

    def batched_runs(self) -> None:
        self.trainer.run(self.inputs, self.labels, self.seeds, self.run_starts)


def updates(clients: int, device: torch.device) -> torch.Tensor:
    """Stacked updates of the cnn's size, f = n/5 rows shifted (as benchmarks/aggregators.py)."""
    generator = torch.Generator().manual_seed(1)
    values = torch.randn(clients, 1_199_882, generator=generator)
    values[: clients // 5] += 3.0
    return values.to(device)


def aggregate(rule: str, values: torch.Tensor) -> torch.Tensor:
    pipeline = parse_pipeline(rule, values.shape[0], values.shape[0] // 5)
    return pipeline.aggregate(values, None, torch.Generator().manual_seed(2))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clients", type=int, default=25)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--runs", type=int, default=8, help="runs batched together")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cpu-rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device, cpu = torch.device(args.device), torch.device("cpu")

    cpu_work = Workload(cpu, args.clients, args.steps, runs=1)
    cpu_loop = timed(cpu_work.loop, args.cpu_rounds, cpu)
    rows = [("cpu", "loop", cpu_loop, args.clients)]
    if device.type != "cpu":
        work = Workload(device, args.clients, args.steps, args.runs)
        for path, run, clients in (
            ("loop", work.loop, args.clients),
            ("batched", work.batched, args.clients),
            (f"runs x{args.runs}", work.batched_runs, args.clients * args.runs),
        ):
            rows.append((args.device, path, timed(run, args.rounds, device), clients))
    else:
        rows.append(("cpu", "batched", timed(cpu_work.batched, args.cpu_rounds, cpu), args.clients))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}: {args.clients} clients x {args.steps} step(s) of batch 32, cnn")
    print(f"{'device':>8} {'path':>10} {'s/round':>9} {'clients/s':>10} {'x CPU loop':>11}")
    for where, path, seconds, clients in rows:
        speed_up = (cpu_loop / args.clients) / (seconds / clients)
        print(f"{where:>8} {path:>10} {seconds:>9.4f} {clients / seconds:>10.1f} {speed_up:>11.2f}")

    print(f"\naggregation of ({args.clients}, 1199882) updates")
    print(f"{'rule':>42} {'cpu s':>8} {args.device + ' s':>10} {'x CPU':>7} {'max diff':>9}")
    on_cpu = updates(args.clients, cpu)
    on_device = on_cpu.to(device)
    for rule in RULES:
        cpu_s = timed(lambda rule=rule: aggregate(rule, on_cpu), args.cpu_rounds, cpu)
        device_s = timed(lambda rule=rule: aggregate(rule, on_device), args.rounds, device)
        diff = (aggregate(rule, on_device).cpu() - aggregate(rule, on_cpu)).abs().max()
        print(f"{rule:>42} {cpu_s:>8.4f} {device_s:>10.4f} {cpu_s / device_s:>7.2f} {diff:>9.2e}")


if __name__ == "__main__":
    main()
