"""Clients per second: one client at a time against all clients batched (``torch.func``).

The robustness benchmarks' client work: the bucketing MNIST ``cnn`` (two dropout layers),
``--clients`` clients (default 25) each taking ``--steps`` SGD steps (default 1) of batch 32
from the same global model, ``--rounds`` times (default 20, after one warm-up round). Inputs
are random MNIST-shaped tensors already on the device (the data's values do not change the
cost). ``loop`` trains one model object client by client as the ClientApp does (load the
global weights, ``torch.optim.SGD``); ``batched`` is ``BatchedSGD``. Torch only: no flwr, no
Ray, so it runs on a bare GPU machine; ``--device`` defaults to CUDA when present.

    python benchmarks/gpu.py [--device cuda] [--clients 25] [--steps 1] [--rounds 20]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from stamen.clients.batched_training import BatchedSGD
from stamen.models import create_model


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


def timed(run, rounds: int, device: torch.device) -> float:  # noqa: ANN001
    run()  # warm-up (kernels, allocator, vmap tracing)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(rounds):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clients", type=int, default=25)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = create_model("cnn", (1, 28, 28), 10, seed=0).to(device).train()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = torch.randn(args.clients, args.steps, 32, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (args.clients, args.steps, 32), device=device)
    seeds = list(range(args.clients))
    batched = BatchedSGD(model, lr=0.1)
    loop_s = timed(lambda: loop(model, start, inputs, labels, seeds, 0.1), args.rounds, device)
    batched_s = timed(lambda: batched.run(inputs, labels, seeds), args.rounds, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, {args.clients} clients x {args.steps} step(s) of batch 32, cnn")
    print(f"{'path':>8} {'s/round':>9} {'clients/s':>10} {'speed-up':>9}")
    for path, seconds in (("loop", loop_s), ("batched", batched_s)):
        print(f"{path:>8} {seconds:>9.4f} {args.clients / seconds:>10.1f} {loop_s / seconds:>9.2f}")


if __name__ == "__main__":
    main()
