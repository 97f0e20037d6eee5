"""S2's share travels sealed: S1 relays it but cannot read, alter or replay it."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from stamen.secure.envelope import EnvelopeError, open_envelope, seal

CONTEXT = b"run=1;round=3;client=7"


def test_only_the_recipient_opens_it():
    s2 = X25519PrivateKey.generate()
    envelope = seal(s2.public_key(), b"share bytes", CONTEXT)
    assert b"share bytes" not in envelope
    assert open_envelope(s2, envelope, CONTEXT) == b"share bytes"
    with pytest.raises(EnvelopeError):
        open_envelope(X25519PrivateKey.generate(), envelope, CONTEXT)


@pytest.mark.parametrize("position", [0, 40, -1])
def test_a_tampered_envelope_is_rejected(position):
    s2 = X25519PrivateKey.generate()
    envelope = bytearray(seal(s2.public_key(), b"share bytes", CONTEXT))
    envelope[position] ^= 1
    with pytest.raises(EnvelopeError):
        open_envelope(s2, bytes(envelope), CONTEXT)


def test_an_envelope_replayed_into_another_round_or_client_is_rejected():
    s2 = X25519PrivateKey.generate()
    envelope = seal(s2.public_key(), b"share bytes", CONTEXT)
    for other in (b"run=1;round=4;client=7", b"run=1;round=3;client=8"):
        with pytest.raises(EnvelopeError, match="authentication"):
            open_envelope(s2, envelope, other)
    with pytest.raises(EnvelopeError, match="too short"):
        open_envelope(s2, envelope[:20], CONTEXT)
