"""Which layout computes many small clients' gradients fastest on a CPU core?

The robustness benchmarks' work: ``--clients`` clients (default 25) of the bucketing MNIST
``cnn``, each one gradient of a batch of 32 at the same global model (one SGD step per round,
dropout off so that every layout does the same arithmetic). Seconds per round of:

- ``loop``: one client after another (what the inline engine and the bare loop do);
- ``loop, NHWC images``: the same, with the images in channels-last layout, as
  ``FederatedDataset.to_tensors`` gives them (a one-channel batch is contiguous in both
  layouts, so the copy asks for it explicitly; torch picks the convolution's layout from the
  strides);
- ``vmap``: ``torch.func.vmap(grad(...))`` over the clients' stacked parameters (the
  ``BatchedSGD`` path);
- ``grouped``: every client's convolution weights stacked into one grouped convolution
  (``groups = clients``) and its linear layers into batched matrix products;
- ``concatenated``: one forward and backward of all ``clients x 32`` images at the shared
  parameters. It yields only the summed gradient, not the per-client ones, so its time is a
  lower bound for any layout built on it (per-client weight gradients cost more).

``x loop`` divides the row's time by the loop's, measured in the same run; ``max diff`` is
the largest difference of the per-client gradients from the loop's. The last lines relate
the loop to the core's peak: the second convolution's forward rate against a large ``sgemm``.
The process keeps the memory it frees, as the inline engine does (``keep_freed_memory``).

    python benchmarks/cpu_layouts.py [--clients 25] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from stamen.models import create_model
from stamen.simulations.allocator import keep_freed_memory

BATCH = 32
Gradients = list[torch.Tensor]  # per parameter: (clients, *shape), or (*shape) when summed


def loop(
    model: torch.nn.Module, x: torch.Tensor | list[torch.Tensor], y: torch.Tensor
) -> Gradients:
    """One client after another; ``x`` per client (a tensor's first axis or a list)."""
    per_client = []
    for images, labels in zip(x, y, strict=True):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        per_client.append([p.grad for p in model.parameters()])
    return [torch.stack(g) for g in zip(*per_client, strict=True)]


def vmapped(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Gradients:
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p: dict, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, p, (images,)), labels)

    stacked = {k: v.expand(len(x), *v.shape) for k, v in params.items()}
    grads = vmap(grad(loss))(stacked, x, y)
    return [grads[k] for k in params]


def grouped(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Gradients:
    """The cnn with every client's weights as one group of each convolution."""
    k, b = x.shape[:2]
    params = [p.detach().unsqueeze(0).repeat(k, *[1] * p.dim()).requires_grad_() for p in
              model.parameters()]  # fmt: skip
    w1, b1, w2, b2, f1, c1, f2, c2 = params
    h = x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])  # clients' channels side by side
    h = F.relu(F.conv2d(h, w1.flatten(0, 1), b1.flatten(), groups=k))
    h = F.max_pool2d(F.conv2d(h, w2.flatten(0, 1), b2.flatten(), groups=k), 2)
    h = h.reshape(b, k, -1).transpose(0, 1)  # (clients, batch, features)
    h = F.relu(torch.baddbmm(c1.unsqueeze(1), h, f1.transpose(1, 2)))
    logits = torch.baddbmm(c2.unsqueeze(1), h, f2.transpose(1, 2))
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / b
    loss.backward()  # client k's loss depends on its own slice only
    return [p.grad for p in params]


def concatenated(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Gradients:
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x.flatten(0, 1)), y.flatten(), reduction="sum") / x.shape[1]
    loss.backward()
    return [p.grad for p in model.parameters()]


def timed(fn: Callable[[], Gradients], rounds: int) -> tuple[float, Gradients]:
    result = fn()  # warm-up
    start = time.perf_counter()
    for _ in range(rounds):
        result = fn()
    return (time.perf_counter() - start) / rounds, result


def peak_rates() -> tuple[float, float]:
    """GFLOP/s of the cnn's second convolution (forward, one client) and of a 2048 sgemm."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    images, weight = torch.randn(BATCH, 32, 26, 26), torch.randn(64, 32, 3, 3)
    gemm_s, _ = timed(lambda: [a @ b], 5)
    conv_s, _ = timed(lambda: [F.conv2d(images, weight)], 20)
    return 2 * 64 * 32 * 9 * 24 * 24 * BATCH / conv_s / 1e9, 2 * 2048**3 / gemm_s / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    torch.manual_seed(0)
    model = create_model("cnn", (1, 28, 28), 10, 0).eval()  # eval: dropout off everywhere
    x = torch.randn(args.clients, BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (args.clients, BATCH))
    x_last = [images.clone(memory_format=torch.channels_last) for images in x]
    rows = {
        "loop": lambda: loop(model, x, y),
        "loop, NHWC images": lambda: loop(model, x_last, y),
        "vmap": lambda: vmapped(model, x, y),
        "grouped": lambda: grouped(model, x, y),
        "concatenated": lambda: concatenated(model, x, y),
    }
    print(f"{args.clients} clients x batch {BATCH}, cnn, torch threads {torch.get_num_threads()}")
    print(f"{'layout':<22}{'s/round':>9}{'x loop':>8}{'max diff':>10}")
    reference = None
    for name, fn in rows.items():
        seconds, grads = timed(fn, args.rounds)
        if reference is None:
            reference = (seconds, grads)
        exact = grads[0].dim() == reference[1][0].dim()  # per client, not summed
        diff = (
            f"{max((g - r).abs().max().item() for g, r in zip(grads, reference[1])):>10.1e}"
            if exact
            else f"{'summed':>10}"
        )
        print(f"{name:<22}{seconds:>9.3f}{seconds / reference[0]:>8.2f}{diff}")
    conv, gemm = peak_rates()
    print(f"\nsecond convolution, forward: {conv:.0f} GFLOP/s; 2048 sgemm: {gemm:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
