"""SuperNode authentication keys for a Flower deployment, made with ``cryptography``.

Flower 1.42's SuperLink, started with ``--enable-supernode-auth`` (which needs TLS), admits
only SuperNodes whose public key was registered beforehand with ``flwr supernode register
<name>.pub <connection>``; each SuperNode proves it holds the private key
(``flower-supernode --auth-supernode-private-key <name>``). Flower reads an elliptic-curve
key in OpenSSH format: ``<name>`` is the unencrypted private key, ``<name>.pub`` the
one-line public key (``ecdsa-sha2-nistp384 ...``).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def make_node_keys(folder: Path, names: list[str]) -> Path:
    """Write ``<name>`` and ``<name>.pub`` for each SuperNode; returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        key = ec.generate_private_key(ec.SECP384R1())
        private = folder / name
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
        )
        private.chmod(0o600)
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        (folder / f"{name}.pub").write_bytes(public + b"\n")
    return folder
