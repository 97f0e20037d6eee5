"""S2's X25519 key, certified by the deployment's CA, so that S1 cannot swap in its own.

Clients seal S2's share and the dealer seals S2's randomness to S2's public key, which S1
relays. An S1 that replaced it by a key of its own would open both and learn every update.
So S2 signs its X25519 key with the private key of its TLS certificate (issued by the
deployment's CA, ``certificates``), and whoever seals to it checks, against the CA
certificate it holds itself, that the certificate is the CA's, names ``s2``, is valid now,
and signed this key. Nothing S1 can forge passes: it holds no CA-signed certificate naming
``s2``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stamen.errors import StamenError

PARTY = "s2"
_LABEL = b"stamen secure: S2's X25519 key v1;"


class KeyBindingError(StamenError):
    """S2's key is not certified by the deployment's CA: nothing is sealed to it."""


@dataclass(frozen=True)
class CertifiedKey:
    """S2's X25519 public key, its signature, and S2's certificate (PEM)."""

    public_key: bytes
    signature: bytes
    certificate: bytes


def certify_key(public_key: bytes, certs: Path) -> CertifiedKey:
    """S2 signs ``public_key`` with its TLS key (``certs/s2.key``, ``certs/s2.pem``)."""
    private = serialization.load_pem_private_key((certs / f"{PARTY}.key").read_bytes(), None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise KeyBindingError(f"{certs / f'{PARTY}.key'} is not an elliptic-curve key")
    signature = private.sign(_LABEL + public_key, ec.ECDSA(hashes.SHA256()))
    return CertifiedKey(public_key, signature, (certs / f"{PARTY}.pem").read_bytes())


def verified_key(key: CertifiedKey, ca_certificate: bytes) -> bytes:
    """``key.public_key`` if S2's certificate is the CA's and signed it; else KeyBindingError."""
    try:
        ca = x509.load_pem_x509_certificate(ca_certificate)
        certificate = x509.load_pem_x509_certificate(key.certificate)
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise KeyBindingError(
            f"S2's key is not certified by the deployment's CA ({exc or 'bad signature'}): "
            "refusing to seal anything to it"
        ) from None
    names = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [PARTY]:
        raise KeyBindingError(
            f"the certificate offered for S2's key names {names}, not {PARTY!r}: refusing it"
        )
    now = datetime.datetime.now(datetime.UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise KeyBindingError("S2's certificate is expired or not yet valid: refusing its key")
    public = certificate.public_key()
    try:
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        public.verify(key.signature, _LABEL + key.public_key, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise KeyBindingError(
            "S2's key does not carry S2's signature (a substituted key?): refusing it"
        ) from None
    return key.public_key
