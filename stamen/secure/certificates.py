"""A private CA and the parties' TLS certificates, made with the ``cryptography`` library.

``make_certificates(folder)`` writes ``ca.pem`` and, per party (``s1``, ``s2``, ``dealer``),
``<party>.pem`` and ``<party>.key``, valid for ``127.0.0.1`` and ``localhost``. A simulation
makes a fresh set in its run folder; a deployment makes one set and gives each machine its
own key and the CA certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PARTIES = ("s1", "s2", "dealer")
_VALID = datetime.timedelta(days=30)


def make_certificates(
    folder: Path,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    parties: tuple[str, ...] = PARTIES,
) -> Path:
    """Write the CA and every party's certificate and key; returns ``folder``. A Flower
    deployment uses it for its SuperLink (``parties=("superlink",)``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stamen secure CA")])
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    names = [_general_name(host) for host in hosts]
    for party in parties:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)])
        cert = (
            _builder(subject, ca_name, key.public_key(), now)
            .add_extension(x509.SubjectAlternativeName([*names, x509.DNSName(party)]), False)
            .sign(ca_key, hashes.SHA256())
        )
        (folder / f"{party}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path = folder / f"{party}.key"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
    return folder


def _builder(subject, issuer, public_key, now):  # noqa: ANN001, ANN202 (x509 builder types)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
