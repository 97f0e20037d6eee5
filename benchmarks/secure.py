"""Secure two-server aggregation against plaintext robust aggregation, per round.

For each (n, d): n clients' updates (float32, norm ~0.5) are shared as clients share them
(seed + sealed envelope); S2 and the dealer run as their own processes on 127.0.0.1; S1
runs ``SecureBackend.aggregate`` with ``bucketing(s=2) | krum``. The baseline is the
plaintext pipeline on the same updates in one process (``parse_pipeline(...).aggregate``).
Printed: wall time of a first (cold) and a second round (S1's view, including the dealer
and S2; in the second, as in every round of a training run after the first, the dealer has
dealt ahead), the ratio of the second to plaintext, the time of one exact ring product
``X X^T`` (n x n x d in Z_2^64, work each server cannot avoid), the bytes S1 sent to and
received from S2 and the dealer, the bytes one client sends against a plaintext float32
update, and the largest difference of the aggregates.

    python benchmarks/secure.py                      # n=50, d in 1e4, 1e5, 1e6
    python benchmarks/secure.py --sizes 20x10000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from stamen.algorithms.aggregation import parse_pipeline
from stamen.secure.backend import ClientShares, SecureBackend
from stamen.secure.certificates import make_certificates
from stamen.secure.envelope import envelope_context, seal
from stamen.secure.ring import encode, ring_matmul
from stamen.secure.sharing import share
from stamen.simulations.secure_services import spawn

RULE = "bucketing(s=2) | krum"


def client_shares(updates: np.ndarray, s2_key: bytes, context: str) -> list[ClientShares]:
    key = X25519PublicKey.from_public_bytes(s2_key)
    shares = []
    for client, update in enumerate(updates):
        parts = share(encode(update))
        envelope = seal(key, parts.rest.tobytes(), envelope_context(context, client))
        shares.append(ClientShares(client, parts.seed, envelope))
    return shares


def measure(backend: SecureBackend, n: int, d: int, bits: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    updates = rng.normal(0, 0.5 / np.sqrt(d), (n, d)).astype(np.float32)
    f = n // 10  # bucketing(s=2) leaves n/2 inputs for Krum, which needs n/2 > 2f + 2
    pipeline = parse_pipeline(RULE, n, f)
    times = []
    for _ in range(4):  # the first call warms up; the median of the other three counts
        start = time.perf_counter()
        plain, _ = pipeline.aggregate(
            torch.from_numpy(updates), generator=torch.Generator().manual_seed(1)
        )
        times.append(time.perf_counter() - start)
    plain_seconds = float(np.median(times[1:]))
    seconds = []
    for repeat in range(2):  # the first round is cold; in the second the dealer dealt ahead
        context = f"bench;n={n};d={d};round={repeat}"  # S2 refuses a replayed envelope
        shares = client_shares(updates, backend.s2_key, context)
        before = {name: (c.bytes_sent, c.bytes_received) for name, c in backend.channels.items()}
        start = time.perf_counter()
        result = backend.aggregate(context, shares, d, bits, RULE, f, 1)
        seconds.append(time.perf_counter() - start)
    moved = {
        name: (c.bytes_sent - before[name][0], c.bytes_received - before[name][1])
        for name, c in backend.channels.items()
    }
    x = encode(updates)
    start = time.perf_counter()
    ring_matmul(x, x)
    product_seconds = time.perf_counter() - start
    client = len(shares[0].seed) + len(shares[0].envelope)
    return {
        "plain_s": plain_seconds,
        "cold_s": seconds[0],
        "secure_s": seconds[1],
        "product_s": product_seconds,
        "s2_mb": sum(moved["s2"]) / 1e6,
        "dealer_mb": sum(moved["dealer"]) / 1e6,
        "client_ratio": client / (4 * d),
        "error": float(np.abs(result.aggregate - plain.double().numpy()).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["50x10000", "50x100000", "50x1000000"])
    parser.add_argument("--bits", type=int, default=19)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        certs = make_certificates(Path(folder) / "certs")
        services = [spawn(party, certs, Path(folder)) for party in ("s2", "dealer")]
        try:
            backend = SecureBackend(services[0].address, services[1].address, certs, timeout=3600)
            print(
                f"{'n':>4} {'d':>9} {'plain s':>8} {'cold s':>7} {'secure s':>9} {'ratio':>6} "
                f"{'product s':>10} {'S1<->S2 MB':>11} {'dealer MB':>10} {'client/plain':>13} "
                f"{'max error':>10}"
            )
            for size in args.sizes:
                n, d = (int(v) for v in size.split("x"))
                r = measure(backend, n, d, args.bits)
                print(
                    f"{n:>4} {d:>9} {r['plain_s']:>8.3f} {r['cold_s']:>7.2f} "
                    f"{r['secure_s']:>9.2f} {r['secure_s'] / r['plain_s']:>6.0f} "
                    f"{r['product_s']:>10.2f} {r['s2_mb']:>11.1f} {r['dealer_mb']:>10.1f} "
                    f"{r['client_ratio']:>13.3f} {r['error']:>10.2e}",
                    flush=True,
                )
            backend.close()
        finally:
            for service in services:
                service.stop()


if __name__ == "__main__":
    main()
