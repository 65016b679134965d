"""Certificates made locally: `make run`'s FTPS certificate, and the X.509 steps
the demo CSD, the test PAC and the tests' certificates share.

The FTPS one is made once under var/tls/ for 127.0.0.1 and localhost, so
`curl --ssl-reqd` works out of the box. Clients verify it with
`--cacert var/tls/cert.pem`; production uses a real certificate
(`ftp_tls_certfile`, `ftp_tls_keyfile`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

Signer = tuple[x509.Name, CertificateIssuerPrivateKeyTypes]


def certificate(
    subject: x509.Name,
    key: CertificateIssuerPrivateKeyTypes,
    days: int,
    *,
    serial: int | None = None,
    issuer: Signer | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    """`key`'s certificate, valid from yesterday (clocks differ) for `days`;
    self-signed unless `issuer` (its name and key) signs it."""
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def kept_pair(
    cert_file: Path,
    key_file: Path,
    make: Callable[[], tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]],
    encoding: serialization.Encoding,
    encryption: serialization.KeySerializationEncryption,
) -> tuple[Path, Path]:
    """(cert_file, key_file), made by `make` on first use and kept; the key
    (PKCS#8) readable by its owner only."""
    if cert_file.exists() and key_file.exists():
        return cert_file, key_file
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    cert, key = make()
    key_file.write_bytes(key.private_bytes(encoding, serialization.PrivateFormat.PKCS8, encryption))
    key_file.chmod(0o600)
    cert_file.write_bytes(cert.public_bytes(encoding))
    return cert_file, key_file


def _localhost() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cam2drive make run")])
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = certificate(
        name,
        key,
        825,
        extensions=[
            (x509.SubjectAlternativeName(names), False),
            (x509.BasicConstraints(ca=True, path_length=None), True),
        ],
    )
    return cert, key


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(cert.pem, key.pem), made on first use and kept."""
    return kept_pair(
        directory / "cert.pem",
        directory / "key.pem",
        _localhost,
        serialization.Encoding.PEM,
        serialization.NoEncryption(),
    )
