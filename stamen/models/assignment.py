"""Which architecture each client trains, and one record holding a model per architecture.

``client-models = "cnn:0.5, mlp:0.5"`` gives the first half of the partition ids ``cnn`` and
the rest ``mlp`` (shares are rounded by largest remainder, so they always add up to the
number of clients); the empty default gives every client ``model``. With several
architectures, the server's single record holds each one's arrays
(``stamen.messages.multi_model``).
"""

from __future__ import annotations

import math

from stamen.errors import ConfigError
from stamen.models import MODELS


def parse_client_models(text: str, default: str) -> dict[str, float]:
    """``"cnn:0.5, mlp:0.5"`` -> ``{"cnn": 0.5, "mlp": 0.5}``; ``""`` -> ``{default: 1.0}``."""
    if not text.strip():
        return {default: 1.0}
    shares: dict[str, float] = {}
    for item in text.split(","):
        name, colon, share = (part.strip() for part in item.partition(":"))
        MODELS.get(name)  # raises naming the registered models
        try:
            value = float(share) if colon else math.nan
        except ValueError:
            value = math.nan
        if not value > 0 or name in shares:
            raise ConfigError(
                f"client-models: expected distinct 'model:share' items with shares > 0, "
                f"got {item.strip()!r}"
            )
        shares[name] = value
    if not math.isclose(sum(shares.values()), 1.0, abs_tol=1e-6):
        raise ConfigError(f"client-models: shares must add up to 1, got {sum(shares.values())}")
    return shares


def client_architectures(shares: dict[str, float], num_clients: int) -> tuple[str, ...]:
    """The architecture of each partition id, in contiguous blocks in the order given."""
    exact = [share * num_clients for share in shares.values()]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: num_clients - sum(counts)]:
        counts[i] += 1
    return tuple(name for name, count in zip(shares, counts) for _ in range(count))
