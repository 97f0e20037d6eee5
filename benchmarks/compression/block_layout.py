"""Why random-block with error feedback trails rand-k: a diagnostic of the block's layout.

Error feedback keeps what a worker did not send; a coordinate waits about 1/ratio rounds
between two sends and its memory grows meanwhile. Rand-k releases those memories on
scattered coordinates; a contiguous block of a row-major weight is whole rows, one output
unit's incoming weights, which all receive their accumulated memory in one step. Taking the
same block in column-major order (one input position across all output units) spreads the
release like rand-k. If the layout is the cause, column-major blocks train like rand-k and
row-major ones lag.

Stamen's ``cnn`` on MNIST, 10 iid workers, one SGD step of batch 32 each per round (the
random-block paper's data-parallel regime), error feedback ``p = lr g + e``, the mean of the
sparse updates applied; dropout off. The sparsifiers are written out here (ten lines) so
that the layout can change; Stamen's own are in ``stamen/algorithms/compression``.

    python benchmarks/compression/block_layout.py --ratio 0.01 --rounds 150
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from stamen.datasets import load_dataset
from stamen.models import create_model

METHODS = ("rand-k", "block-rowmajor", "block-colmajor")


def ordered(t: torch.Tensor, column_major: bool) -> torch.Tensor:
    matrix = t.reshape(t.shape[0], -1)
    return matrix.T.reshape(-1) if column_major and t.dim() >= 2 else t.reshape(-1)


def unordered(flat: torch.Tensor, t: torch.Tensor, column_major: bool) -> torch.Tensor:
    if column_major and t.dim() >= 2:
        return flat.reshape(-1, t.shape[0]).T.reshape(t.shape)
    return flat.reshape(t.shape)


def sparsified(method: str, t: torch.Tensor, ratio: float, seed: int) -> torch.Tensor:
    """``t`` with all but the kept coordinates zeroed; the draw is shared by all workers."""
    column_major = method == "block-colmajor"
    flat = ordered(t, column_major)
    n, generator = flat.numel(), torch.Generator().manual_seed(seed)
    k = max(1, int(ratio * n))
    if method == "rand-k":
        kept = torch.randperm(n, generator=generator)[:k]
    else:
        kept = (torch.arange(k) + int(torch.randint(n, (1,), generator=generator))) % n
    out = torch.zeros_like(flat)
    out[kept] = flat[kept]
    return unordered(out, t, column_major)


def run(method: str, args: argparse.Namespace, data, model) -> list[str]:  # noqa: ANN001
    train_x, train_y, test_x, test_y = data
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    memory = [{n: torch.zeros_like(p) for n, p in params.items()} for _ in range(args.workers)]
    rng, accuracy = np.random.default_rng(0), []
    for server_round in range(1, args.rounds + 1):
        mean = {n: torch.zeros_like(p) for n, p in params.items()}
        for worker in range(args.workers):
            batch = rng.integers(0, len(train_x), 32)
            local = {n: p.clone().requires_grad_() for n, p in params.items()}
            loss = F.cross_entropy(functional_call(model, local, (train_x[batch],)), train_y[batch])
            grads = torch.autograd.grad(loss, list(local.values()))
            for index, (name, grad) in enumerate(zip(params, grads)):
                target = args.lr * grad + memory[worker][name]
                sent = sparsified(method, target, args.ratio, server_round * 100 + index)
                memory[worker][name] = target - sent
                mean[name] += sent / args.workers
        params = {n: p - mean[n] for n, p in params.items()}
        if server_round % args.eval_every == 0:
            with torch.no_grad():
                logits = functional_call(model, params, (test_x,))
            correct = (logits.argmax(1) == test_y).float().mean().item()
            accuracy.append(f"{server_round}:{100 * correct:.1f}")
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    mnist = load_dataset("mnist")  # images (N, 1, 28, 28)
    splits = ((mnist.train, 20000), (mnist.test, 1000))
    (train_x, train_y), (test_x, test_y) = (
        (
            torch.tensor(s.x[:n], dtype=torch.float32) / 255.0,
            torch.tensor(s.y[:n], dtype=torch.long),
        )
        for s, n in splits
    )
    model = create_model("cnn", (1, 28, 28), 10, seed=0).eval()  # no dropout
    print(f"ratio {args.ratio}, test accuracy (%) on 1,000 test images by round")
    for method in args.methods.split(","):
        accuracy = run(method, args, (train_x, train_y, test_x, test_y), model)
        print(f"ef | {method:15s}", " ".join(accuracy), flush=True)


if __name__ == "__main__":
    main()
