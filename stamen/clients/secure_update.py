"""A client's update prepared for secure two-server aggregation (arXiv 2006.04747).

The update is clipped to L2 norm ``secure-clip`` (the servers' validity check bounds every
share; see ``stamen.secure.validity``), optionally noised with Gaussian noise of std
``secure-noise`` (local differential privacy), encoded in fixed point and split into two
shares: S1 gets a 32-byte seed, S2 the other share sealed to S2's public key and bound to
the round's context and this node, so S1 relays it unread. The plaintext update never
leaves the client.
"""

from __future__ import annotations

import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from flwr.app import ConfigRecord

from stamen.secure.envelope import envelope_context, seal
from stamen.secure.ring import encode
from stamen.secure.sharing import share

SECURE_RECORD = "secure"
ORACLE_RECORD = "simulation-update"  # simulation with an omniscient attack only


def clip_and_noise(
    update: torch.Tensor, clip: float, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """``update`` scaled to L2 norm at most ``clip`` (0: no clipping), plus N(0, noise^2)."""
    norm = float(update.norm())
    if clip > 0 and norm > clip:
        update = update * (clip / norm)
    if noise > 0:
        update = update + noise * torch.randn(update.shape, generator=generator)
    return update


def shared_update(update: torch.Tensor, config: ConfigRecord, node_id: int) -> ConfigRecord:
    """S1's seed and S2's sealed share of the (already clipped) ``update``."""
    shares = share(encode(update.detach().cpu().double().numpy()))
    key = X25519PublicKey.from_public_bytes(config["secure-key"])
    context = envelope_context(str(config["secure-context"]), node_id)
    return ConfigRecord(
        {"seed": shares.seed, "envelope": seal(key, shares.rest.tobytes(), context)}
    )
