"""Robust aggregation rules against flwr's implementations on the same stacked updates.

For each (n, d) it times every rule of ``stamen.algorithms.aggregation`` and flwr's
counterparts, prints median wall times, the ratio flwr / ours, and checks that outputs agree
(float32 tolerance). flwr baselines, each timed from what its strategy holds:

- Krum / Multi-Krum: ``flwr.serverapp.strategy.multikrum.select_multikrum`` on one
  ``RecordDict({"arrays": ArrayRecord([row])})`` per client (what ``MultiKrum.aggregate_train``
  calls; it decodes the records itself), then the chosen array / the mean of the chosen ones.
  The decode alone is printed as ``flwr record decode`` so it can be subtracted.
- Median: ``np.median(np.stack(rows), axis=0)`` (``FedMedian.aggregate_train``'s math).
- Trimmed mean: ``flwr.serverapp.strategy.fedtrimmedavg.trim_mean(np.stack(rows), f/n)``.
- Bulyan: ``select_multikrum`` of n - 2f, ``np.median`` and ``aggregate_n_closest_weights``
  (``Bulyan.aggregate_train``); ours iterates Krum (El Mhamdi), so outputs may differ: checked
  only when both pick the same set.

Also times one ``bucketing(s=2) | cclip(tau=10, iters=3)`` step at n = 25, d = 1,199,882 (the
bucketing paper's MNIST CNN). Inputs: float32 standard normal, f = n/5 rows shifted by +3;
``--offset NORM`` adds one vector of that norm to every input, as worker momentum does: the
distance rules then centre their Gram matrix (``primitives``), and flwr's differences agree.

    python benchmarks/aggregators.py        # n=50 and n=100 at d=1e6, ~3-5 min on 2 cores
    python benchmarks/aggregators.py --sizes 50x200000 --repeats 3
    python benchmarks/aggregators.py --sizes 50x1000000 --offset 1e6 --skip-pipeline
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from flwr.app import ArrayRecord, RecordDict
from flwr.serverapp.strategy.bulyan import aggregate_n_closest_weights
from flwr.serverapp.strategy.fedtrimmedavg import trim_mean
from flwr.serverapp.strategy.multikrum import select_multikrum

from stamen.algorithms.aggregation import parse_pipeline
from stamen.algorithms.aggregation.bulyan import Bulyan
from stamen.algorithms.aggregation.centered_clip import CenteredClip
from stamen.algorithms.aggregation.coordinatewise import Mean, Median, TrimmedMean
from stamen.algorithms.aggregation.geomed import GeometricMedian
from stamen.algorithms.aggregation.krum import Krum, MultiKrum


def timed(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median seconds over ``repeats`` calls (after one warm-up) and the last result."""
    result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def flwr_baselines(x: np.ndarray, f: int) -> dict[str, Callable[[], np.ndarray]]:
    n = len(x)
    contents = [RecordDict({"arrays": ArrayRecord([row.copy()])}) for row in x]
    rows = [row.copy() for row in x]

    def decode(chosen: list[RecordDict]) -> list[np.ndarray]:
        return [c["arrays"].to_numpy_ndarrays()[0] for c in chosen]

    def bulyan() -> np.ndarray:
        selected = decode(select_multikrum(contents, f, n - 2 * f))
        median = np.median(np.stack(selected), axis=0)
        return aggregate_n_closest_weights([median], [[s] for s in selected], n - 4 * f)[0]

    return {
        "flwr record decode": lambda: decode(contents)[0],
        "krum": lambda: decode(select_multikrum(contents, f, 1))[0],
        "multi-krum": lambda: np.mean(decode(select_multikrum(contents, f, n - f)), axis=0),
        "median": lambda: np.median(np.stack(rows), axis=0),
        "trimmed-mean": lambda: trim_mean(np.stack(rows), f / n),
        "bulyan": bulyan,
    }


def run_size(n: int, d: int, repeats: int, offset: float) -> None:
    f = n // 5
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=generator)
    x[:f] += 3.0
    if offset:
        shared = torch.randn(d, generator=generator)
        x += shared * (offset / shared.norm())
    ours = {
        "mean": Mean(),
        "median": Median(f=f),
        "trimmed-mean": TrimmedMean(b=f),
        "krum": Krum(f=f),
        "multi-krum": MultiKrum(f=f, m=n - f),
        "bulyan": Bulyan(f=f) if n >= 4 * f + 3 else None,
        "geomed(T=8,nu=0.1)": GeometricMedian(T=8, nu=0.1),
        "cclip(tau=10,iters=3)": CenteredClip(tau=10, iters=3),
    }
    baselines = flwr_baselines(x.numpy(), f)
    shift = f", offset norm {offset:g}" if offset else ""
    print(f"\n## n={n}, d={d:,}, f={f}{shift}, float32, torch threads={torch.get_num_threads()}")
    print(f"{'rule':24s} {'ours ms':>9s} {'flwr ms':>9s} {'flwr/ours':>9s}  same output")
    decode_s, _ = timed(baselines.pop("flwr record decode"), repeats)
    for name, rule in ours.items():
        if rule is None:
            continue
        ours_s, result = timed(lambda rule=rule: rule.aggregate(x)[0], repeats)
        line = f"{name:24s} {1000 * ours_s:9.0f}"
        if name in baselines:
            flwr_s, expected = timed(baselines[name], repeats)
            same = np.allclose(result.numpy(), expected, rtol=1e-4, atol=1e-5)
            line += f" {1000 * flwr_s:9.0f} {flwr_s / ours_s:9.1f}  {same}"
        print(line, flush=True)
    print(
        f"{'flwr record decode':24s} {'':9s} {1000 * decode_s:9.0f}  (inside flwr krum/multi-krum)"
    )


def run_bucketing_cclip(repeats: int) -> None:
    n, d = 25, 1_199_882
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(1))
    pipeline = parse_pipeline("bucketing(s=2) | cclip(tau=10, iters=3)", n, 5)
    state = torch.zeros(d)
    seconds, _ = timed(
        lambda: pipeline.aggregate(x, state, torch.Generator().manual_seed(0)), repeats
    )
    print(
        f"\n## bucketing(s=2) | cclip(tau=10, iters=3), n={n}, d={d:,}: {1000 * seconds:.0f} ms "
        "(target < 100 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="50x1000000,100x1000000",
        help="comma-separated NxD list (default 50x1000000,100x1000000)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--offset", type=float, default=0.0, help="norm of a vector added to every input"
    )
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    for size in args.sizes.split(","):
        n, d = (int(v) for v in size.lower().split("x"))
        run_size(n, d, args.repeats, args.offset)
    if not args.skip_pipeline:
        run_bucketing_cclip(args.repeats)


if __name__ == "__main__":
    main()
