"""A client's update before sharing: clipped, optionally noised, then shared and sealed."""

from __future__ import annotations

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from stamen.clients.secure_update import clip_and_noise, shared_update
from stamen.secure.envelope import envelope_context, open_envelope, public_bytes
from stamen.secure.prg import expand
from stamen.secure.ring import decode


def test_clipping_bounds_the_norm_and_leaves_small_updates_alone():
    generator = torch.Generator().manual_seed(0)
    big, small = torch.full((100,), 1.0), torch.full((100,), 0.01)
    assert abs(float(clip_and_noise(big, 2.0, 0.0, generator).norm()) - 2.0) < 1e-6
    assert torch.equal(clip_and_noise(small, 2.0, 0.0, generator), small)
    assert torch.equal(clip_and_noise(big, 0.0, 0.0, generator), big)  # 0: no clipping


def test_local_noise_has_the_configured_scale():
    noised = clip_and_noise(torch.zeros(100_000), 0.0, 0.3, torch.Generator().manual_seed(1))
    assert abs(float(noised.std()) - 0.3) < 0.01 and abs(float(noised.mean())) < 0.01


def test_the_shares_reconstruct_the_update_only_with_s2s_key():
    s2 = X25519PrivateKey.generate()
    update = torch.tensor([0.5, -0.25, 0.125])
    record = shared_update(update, public_bytes(s2.public_key()), "r=1", node_id=7)
    rest = open_envelope(s2, record["envelope"], envelope_context("r=1", 7))
    total = expand(record["seed"], 3) + np.frombuffer(rest, dtype="<u8").astype(np.uint64)
    assert np.allclose(decode(total), update.numpy())
