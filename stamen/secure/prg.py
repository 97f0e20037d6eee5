"""A seed-expanding pseudo-random generator over Z_2^64: ChaCha20 (``cryptography``).

``expand(seed, n)`` is the ChaCha20 keystream of a 32-byte key (nonce 0) read as ``n``
``uint64``: computationally indistinguishable from uniform for anyone without the seed,
and cheap to send in place of the ``n`` numbers it stands for.
"""

from __future__ import annotations

import secrets

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

SEED_BYTES = 32
_NONCE = bytes(16)  # cryptography's ChaCha20 takes a 16-byte counter + nonce block


def new_seed() -> bytes:
    """A fresh seed from the operating system's CSPRNG."""
    return secrets.token_bytes(SEED_BYTES)


def expand(seed: bytes, shape: int | tuple[int, ...]) -> np.ndarray:
    """``uint64`` array of ``shape``, uniform in Z_2^64 for anyone who lacks ``seed``."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"a seed has {SEED_BYTES} bytes, got {len(seed)}")
    count = int(np.prod(shape))
    encryptor = Cipher(algorithms.ChaCha20(seed, _NONCE), mode=None).encryptor()
    words = np.empty(count, dtype="<u8")  # written in place: writable, no copy
    encryptor.update_into(bytes(8 * count), memoryview(words).cast("B"))
    return words.view(np.uint64).reshape(shape)
