"""Torch's global generator, seeded for one piece of work at a time.

Model initialisation and a client's dropout draw from torch's global generator, seeded right
before. Runs in threads of one process (``stamen bench --runs-per-worker``) share that
generator, so ``torch_seeded`` holds a process-wide lock while it is seeded: every run draws
what it would draw alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

_LOCK = threading.RLock()


@contextlib.contextmanager
def torch_seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Torch's generator seeded with ``seed`` inside, restored after (the CPU's, and the
    GPU's when ``device`` is one), one thread at a time."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with _LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
