"""Time of each compressor on a client's update against one local SGD step, in one run.

The update is that of the MNIST ``cnn`` (1,199,882 parameters, 8 tensors): a real local
update, from 10 steps of SGD on MNIST batches. For each spec it times what a client does
(``compress``, with error feedback's extra decompression where ``ef`` is on) and what the
server does per reply (``decompress``), median of ``--repeats`` after a warm-up, and prints
them beside one local step (forward, backward, SGD, batch 32) timed in the same run, and the
payload's bytes against the dense update's.

    python benchmarks/compression_speed.py              # ~1 min on 2 cores
    python benchmarks/compression_speed.py --repeats 20 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from stamen.algorithms.compression import RoundDraws, parse_compression
from stamen.datasets import load_dataset
from stamen.messages.arrays import ArrayLayout
from stamen.models import create_model

SPECS = (
    "top-k(ratio=0.01)",
    "ef | top-k(ratio=0.01)",
    "rand-k(ratio=0.01)",
    "random-block(ratio=0.01)",
    "ef | random-block(ratio=0.01)",
    "sign",
    "ef | sign",
    "qsgd(levels=4)",
    "powersgd(rank=2)",
    "ef | powersgd(rank=2)",
)


def timed(function: Callable[[], object], repeats: int) -> float:
    """Median seconds over ``repeats`` calls, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_dataset("mnist")
    model = create_model("cnn", data.input_shape, data.num_classes, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(0)

    def local_step() -> None:
        batch = torch.randint(len(data.train), (32,), generator=generator).numpy()
        x, y = data.to_tensors(data.train, batch)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    start = {k: v.clone() for k, v in model.state_dict().items()}
    step = timed(local_step, args.repeats)
    layout = ArrayLayout.of_state(model.state_dict())
    update = layout.flatten_state(model.state_dict()) - layout.flatten_state(start)
    tensors, dense = layout.float_tensors, 4 * layout.size
    print(
        f"cnn update: d = {layout.size:,} in {len(tensors)} tensors ({dense / 1e6:.2f} MB); "
        f"one local step (batch 32): {1e3 * step:.1f} ms; torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'spec':<30} {'client ms':>10} {'x step':>7} {'server ms':>10} {'x step':>7} "
        f"{'payload MB':>11} {'x dense':>8}"
    )
    for spec in SPECS:
        client_s, server_s, size = measured(spec, update, tensors, args.repeats)
        print(
            f"{spec:<30} {1e3 * client_s:>10.1f} {client_s / step:>7.2f} "
            f"{1e3 * server_s:>10.1f} {server_s / step:>7.2f} {size / 1e6:>11.4f} "
            f"{size / dense:>8.4f}"
        )


def measured(spec: str, update: torch.Tensor, tensors, repeats: int) -> tuple[float, float, int]:
    """Seconds to compress (client, state carried across calls) and to decompress (server)
    ``update`` with ``spec``, and the payload's bytes."""
    compression = parse_compression(spec)
    draws = RoundDraws(seed=0, server_round=1, private_seed=1)
    state: dict = {}

    def client() -> None:
        nonlocal state
        _, state = compression.compress(update, tensors, draws, state)

    client_s = timed(client, repeats)
    payload, _ = compression.compress(update, tensors, draws, {})
    server_s = timed(lambda: compression.decompress(payload, tensors, draws), repeats)
    return client_s, server_s, sum(part.numel() * part.element_size() for part in payload.values())


if __name__ == "__main__":
    main()
