"""Memory and time per round against the number of virtual clients.

The same work at every size: MNIST, the ``mlp``, 10 clients sampled per round (``fraction-
train = 10 / clients``), one local step of batch 32, ``--rounds`` rounds (default 6); only
the number of virtual clients grows. Each measurement runs in a fresh process:

- ``inline``: the in-process engine; peak memory is the process's peak resident set
  (``ru_maxrss``);
- ``ray``: Flower's Ray engine; peak memory is the largest sum, over the CLI and every
  process it started (SuperLink, ``flwr-simulation``, Ray's workers), of the resident sets
  sampled every 0.2 s (Ray's shared object store counts once per process that maps it, so
  this overstates Ray's use).

``round_s`` is the steady-state time per round (from the end of round 1 to the end of the
last round). The ratio column compares each peak with the inline run at the smallest size,
measured in the same invocation. Target: inline peak at 1000 clients at most 1.5x the peak
at 10 (clients hold no state beyond what the algorithm needs; partitions are index arrays).

    python benchmarks/scale.py                       # inline 10, 100, 1000; ray 100
    python benchmarks/scale.py --inline 10 100 --ray
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def experiment(clients: int, rounds: int, out: Path):
    from stamen.experiment import Experiment

    return Experiment(
        dataset="mnist",
        model="mlp",
        partition="iid",
        num_clients=clients,
        min_available_clients=clients,
        fraction_train=10 / clients,
        local_steps=1,
        batch_size=32,
        lr=0.05,
        momentum=0.0,
        num_server_rounds=rounds,
        eval_every=rounds,
        client_cpus=1,
        out_dir=str(out),
    )


def measure(engine: str, clients: int, rounds: int) -> dict:
    """One run in this process (called in a child): wall time, round time, peak memory."""
    import torch

    from stamen.simulations.inline_engine import run_inline
    from stamen.simulations.ray_engine import run_ray
    from stamen.simulations.results import RunRecorder

    torch.set_num_threads(1)
    ends: list[float] = []

    def on_row(row) -> None:
        if row.scope == "clients" and row.metric == "replies":
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as folder:
        config = experiment(clients, rounds, Path(folder) / "run")
        peak = [0]
        sampler = None
        if engine == "ray":
            sampler = threading.Thread(target=_sample_tree, args=(peak,), daemon=True)
            sampler.start()
        start = time.perf_counter()
        if engine == "inline":
            run_inline(config, RunRecorder(Path(folder) / "run", config, on_row=on_row))
        else:
            run_ray(config, Path(folder) / "run", on_row=on_row)
        wall = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "engine": engine,
        "clients": clients,
        "wall_s": wall,
        "round_s": (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else float("nan"),
        "peak_mb": max(own, peak[0]) / 1e6,
    }


def _sample_tree(peak: list[int]) -> None:
    """Keep ``peak[0]`` at the largest summed resident set of this process and its
    descendants (read from /proc)."""
    page = os.sysconf("SC_PAGE_SIZE")
    me = os.getpid()
    while True:
        parents, rss = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                parents[int(entry)] = int(fields[1])
                rss[int(entry)] = int(fields[21]) * page
            except (OSError, ValueError, IndexError):
                continue
        tree, grew = {me}, True
        while grew:
            grown = tree | {pid for pid, parent in parents.items() if parent in tree}
            grew, tree = len(grown) > len(tree), grown
        peak[0] = max(peak[0], sum(rss.get(pid, 0) for pid in tree))
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inline", nargs="*", type=int, default=[10, 100, 1000])
    parser.add_argument("--ray", nargs="*", type=int, default=[100])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # ENGINE CLIENTS, in a child
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.rounds)))
        return
    runs = [("inline", n) for n in args.inline] + [("ray", n) for n in args.ray]
    print(f"{'engine':>7} {'clients':>8} {'wall s':>8} {'round s':>8} {'peak MB':>9} {'ratio':>6}")
    baseline = None
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for engine, clients in runs:
        command = [sys.executable, __file__, "--one", engine, str(clients)]
        command += ["--rounds", str(args.rounds)]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            print(f"{engine} {clients}: failed\n{done.stderr[-2000:]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        baseline = baseline or r["peak_mb"]
        print(
            f"{engine:>7} {clients:>8} {r['wall_s']:>8.1f} {r['round_s']:>8.3f} "
            f"{r['peak_mb']:>9.0f} {r['peak_mb'] / baseline:>6.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
