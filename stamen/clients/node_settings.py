"""What a node decides for itself, from its node config: never from a server's message.

A SuperNode's operator sets these in its node config (``flower-supernode --node-config``).
A simulation engine sets them for its virtual nodes: the in-process engine in each node's
config, Flower's Ray engine in the environment of its ClientApp processes
(``STAMEN_SIMULATION_ORACLE``, ``STAMEN_SECURE_CA``), because Flower gives virtual nodes no
node config beyond ``partition-id`` and ``num-partitions``.

- ``secure-ca``: the deployment CA's certificate (a PEM file). A node seals its secure share
  only to an S2 key that this CA certified (``stamen.secure.key_binding``).
- ``simulation-oracle``: in a simulation with an omniscient attack, the node also sends its
  plaintext update, from which the simulated attackers craft theirs. Off unless the node
  turns it on: a server's request alone never makes a node send its plaintext.
"""

from __future__ import annotations

import os

from flwr.app import Context

from stamen.secure.key_binding import KeyBindingError

SECURE_CA = "secure-ca"
SIMULATION_ORACLE = "simulation-oracle"


def environment_variable(key: str) -> str:
    """``secure-ca`` -> ``STAMEN_SECURE_CA``."""
    return "STAMEN_" + key.upper().replace("-", "_")


def node_setting(context: Context, key: str) -> str | None:
    """The node config's ``key``, else the process environment's; None when neither is set."""
    value = context.node_config.get(key, os.environ.get(environment_variable(key)))
    return None if value in (None, "") else str(value)


def sends_plaintext_oracle(context: Context) -> bool:
    """Whether this node agreed to send its plaintext update to a simulated attacker."""
    return (node_setting(context, SIMULATION_ORACLE) or "").lower() in ("true", "1")


def secure_ca(context: Context) -> bytes:
    """The CA certificate this node checks S2's key against."""
    path = node_setting(context, SECURE_CA)
    if path is None:
        raise KeyBindingError(
            f"secure aggregation needs {SECURE_CA!r} (the deployment's CA certificate) in this "
            "node's config to check S2's key: refusing to share"
        )
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise KeyBindingError(f"cannot read this node's {SECURE_CA} {path}: {exc}") from None
