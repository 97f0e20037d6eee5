"""Sealing S2's share so that S1 can relay it but neither read nor alter nor replay it.

Hybrid public-key encryption with the ``cryptography`` library: an ephemeral X25519 key
agreement with S2's public key, HKDF-SHA256, then ChaCha20-Poly1305. The associated data
binds the envelope to its context (run, round and client), so an envelope replayed into
another round or passed off as another client's fails authentication.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_KEY_BYTES, _NONCE_BYTES = 32, 12
_INFO = b"stamen secure share v1"


class EnvelopeError(ValueError):
    """An envelope that is malformed, tampered with or bound to another context."""


def envelope_context(context: str, client: int) -> bytes:
    """The associated data of a client's share: the round's context and the client."""
    return f"{context};client={client}".encode()


def dealer_context(context: str) -> bytes:
    """The associated data of the dealer's randomness for S2 in a round."""
    return f"{context};dealer".encode()


def public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def seal(recipient: X25519PublicKey, payload: bytes, context: bytes) -> bytes:
    """``payload`` encrypted to ``recipient`` and bound to ``context``."""
    ephemeral = X25519PrivateKey.generate()
    key = _derive(ephemeral.exchange(recipient), public_bytes(ephemeral.public_key()))
    nonce = os.urandom(_NONCE_BYTES)
    sealed = ChaCha20Poly1305(key).encrypt(nonce, payload, context)
    return public_bytes(ephemeral.public_key()) + nonce + sealed


def open_envelope(recipient: X25519PrivateKey, envelope: bytes, context: bytes) -> bytes:
    """The payload, or EnvelopeError if the envelope was altered or belongs elsewhere."""
    if len(envelope) < _KEY_BYTES + _NONCE_BYTES + 16:
        raise EnvelopeError(f"envelope of {len(envelope)} bytes is too short")
    sender = envelope[:_KEY_BYTES]
    nonce = envelope[_KEY_BYTES : _KEY_BYTES + _NONCE_BYTES]
    key = _derive(recipient.exchange(X25519PublicKey.from_public_bytes(sender)), sender)
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, envelope[_KEY_BYTES + _NONCE_BYTES :], context)
    except InvalidTag as exc:
        raise EnvelopeError("envelope failed authentication (tampered or wrong context)") from exc


def _derive(shared: bytes, sender: bytes) -> bytes:
    return HKDF(hashes.SHA256(), _KEY_BYTES, salt=sender, info=_INFO).derive(shared)
