"""What keeping freed memory (``stamen.simulations.allocator``) saves in a round's work.

One round of the bucketing benchmarks for ``--clients`` clients (default 25) of the ``cnn``:
``loop``, each client's gradient of a batch of 32 (``cpu_layouts.loop``, as the inline
engine trains); ``vmap``, the same gradients in one ``vmap`` call (the batched path);
``pack``, the clients' replies packed (``state_record``, as the ClientApp does); ``stack``,
the replies less the global model written into a fresh ``(n, d)`` matrix (as the server
does). Each setting runs in its own process, since it holds for a process's life:
``default`` with glibc's thresholds, ``kept`` after ``keep_freed_memory()``. Prints seconds
per round (``--rounds`` rounds after one warm-up), ``kept``'s ratio to ``default``, and the
minor page faults per round of each step.

    python benchmarks/allocator.py [--clients 25] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_layouts import BATCH, loop, vmapped  # noqa: E402

from stamen.messages.arrays import ArrayLayout, state_record
from stamen.models import create_model
from stamen.simulations.allocator import keep_freed_memory

SETTINGS = ("default", "kept")


def one_setting(setting: str, clients: int, rounds: int) -> dict[str, float]:
    """Seconds and minor page faults per round of each step, in this process."""
    if setting == "kept" and not keep_freed_memory():
        raise SystemExit("no glibc mallopt here: nothing to compare")
    torch.manual_seed(0)
    model = create_model("cnn", (1, 28, 28), 10, 0).eval()  # dropout off, as in cpu_layouts
    x = torch.randn(clients, BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (clients, BATCH))
    states = [
        {key: value + 0.01 * torch.randn_like(value) for key, value in model.state_dict().items()}
        for _ in range(clients)
    ]
    layout = ArrayLayout.of(state_record(model.state_dict()))
    reference = layout.flatten(state_record(model.state_dict()))

    def stack() -> None:
        updates = torch.empty(clients, layout.size)
        for row, reply in zip(updates, replies, strict=True):
            layout.flatten_into(reply, row, reference)

    replies = [state_record(state) for state in states]
    steps: dict[str, Callable[[], object]] = {
        "loop": lambda: loop(model, x, y),
        "vmap": lambda: vmapped(model, x, y),
        "pack": lambda: [state_record(state) for state in states],
        "stack": stack,
    }
    timings = {}
    for name, step in steps.items():
        step()  # warm-up
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        for _ in range(rounds):
            step()
        timings[name] = (time.perf_counter() - start) / rounds
        timings[name + "_faults"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        ) / rounds
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--setting", choices=SETTINGS, help=argparse.SUPPRESS)  # a child's
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.setting:
        print(json.dumps(one_setting(args.setting, args.clients, args.rounds)))
        return
    results = {}
    for setting in SETTINGS:
        child = [sys.executable, __file__, "--setting", setting]
        child += ["--clients", str(args.clients), "--rounds", str(args.rounds)]
        child += ["--threads", str(args.threads)]
        done = subprocess.run(child, capture_output=True, text=True, check=True)
        results[setting] = json.loads(done.stdout)
    print(f"{args.clients} clients of the cnn per round, {args.rounds} rounds")
    print(f"{'step':<7}{'default s':>11}{'kept s':>9}{'x default':>11}{'faults default':>16}"
          f"{'faults kept':>13}")  # fmt: skip
    default, kept = results["default"], results["kept"]
    for step in ("loop", "vmap", "pack", "stack"):
        print(
            f"{step:<7}{default[step]:>11.4f}{kept[step]:>9.4f}{kept[step] / default[step]:>11.2f}"
            f"{default[step + '_faults']:>16.0f}{kept[step + '_faults']:>13.0f}"
        )


if __name__ == "__main__":
    main()
