"""S2 and the dealer as their own processes on 127.0.0.1, driven by S1's backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from stamen.algorithms.aggregation.pipeline import parse_pipeline
from stamen.secure.backend import ClientShares, SecureBackend, SecureBackendError
from stamen.secure.certificates import make_certificates
from stamen.secure.envelope import envelope_context, public_bytes, seal
from stamen.secure.key_binding import CertifiedKey
from stamen.secure.ring import decode, encode
from stamen.secure.sharing import share
from stamen.simulations.secure_services import spawn


@pytest.fixture
def services(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    started = [spawn(party, certs, tmp_path) for party in ("s2", "dealer")]
    yield certs, started
    for service in started:
        service.stop()
        assert service.process.poll() is not None  # no process left behind


def client_shares(update, client, s2_key, context):
    shares = share(encode(update))
    envelope = seal(
        X25519PublicKey.from_public_bytes(s2_key),
        shares.rest.tobytes(),
        envelope_context(context, client),
    )
    return ClientShares(client, shares.seed, envelope)


def test_a_round_across_processes_equals_plaintext_bucketing_and_krum(services):
    certs, (s2, dealer) = services
    backend = SecureBackend(s2.address, dealer.address, certs)
    rng = np.random.default_rng(0)
    updates = rng.normal(0, 0.05, (10, 500))
    context = "run=test;round=1"
    shares = [
        client_shares(u, i, backend.s2_key.public_key, context) for i, u in enumerate(updates)
    ]
    tampered = shares[3].envelope[:-1] + bytes([shares[3].envelope[-1] ^ 1])
    shares[3] = ClientShares(3, shares[3].seed, tampered)
    result = backend.aggregate(context, shares, 500, 19, "bucketing(s=2) | krum", 1, 42)
    backend.close()
    assert result.valid.tolist() == [True] * 3 + [False] + [True] * 6
    kept = decode(encode(np.delete(updates, 3, axis=0)))
    plain, _ = parse_pipeline("bucketing(s=2) | krum", 9, 1).aggregate(
        torch.from_numpy(kept), generator=torch.Generator().manual_seed(42)
    )
    np.testing.assert_allclose(result.aggregate, plain.numpy(), atol=1e-4)


def test_an_unreachable_service_is_a_clear_error(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    with pytest.raises(SecureBackendError, match="cannot reach s2 at 127.0.0.1:9"):
        SecureBackend("127.0.0.1:9", "127.0.0.1:9", certs, timeout=2)


def test_the_dealer_refuses_a_key_that_s1_substituted_for_s2s(services):
    """A man-in-the-middle S1 swaps in its own X25519 key (keeping S2's signature and
    certificate) to read the dealer's masks: the dealer seals nothing to it."""
    certs, (s2, dealer) = services
    backend = SecureBackend(s2.address, dealer.address, certs)
    genuine = backend.s2_key
    mine = public_bytes(X25519PrivateKey.generate().public_key())
    backend.s2_key = CertifiedKey(mine, genuine.signature, genuine.certificate)
    context = "run=test;round=1"
    shares = [client_shares(np.zeros(20), i, mine, context) for i in range(4)]
    with pytest.raises(SecureBackendError, match="dealer: S2's key does not carry S2's signature"):
        backend.aggregate(context, shares, 20, 19, "krum", 0, 0)
    backend.close()
