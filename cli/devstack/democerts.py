"""Certificates for tests and `make run`: a CSD and a PAC certificate, made locally.

They are shaped like SAT's (the RFC in x500UniqueIdentifier, a 20-digit
certificate number encoded in the serial, a PAC's RFC in the OU), so
satcfdi reads them as it reads real ones; SAT never issued them, and no
real PAC accepts what they seal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

#: SAT's published test taxpayer, so demo invoices look like the SAT's own samples.
TEST_RFC, TEST_NAME, TEST_PASSWORD = "EKU9003173C9", "ESCUELA KEMPER URGATE", "12345678a"
PAC_RFC = "SPR190613I52"


def write_pair(
    directory: Path,
    stem: str,
    *,
    rfc: str,
    name: str,
    number: str,
    password: str,
    unit: str | None = None,
) -> tuple[Path, Path]:
    """`<stem>.cer` (DER) and `<stem>.key` (encrypted PKCS#8 DER), made once."""
    directory.mkdir(parents=True, exist_ok=True)
    cer, key_file = directory / f"{stem}.cer", directory / f"{stem}.key"
    if cer.exists() and key_file.exists():
        return cer, key_file
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, rfc),
    ]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    subject = x509.Name(attrs)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int(number.encode().hex(), 16))
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=4 * 365))
        .sign(key, hashes.SHA256())
    )
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode()),
        )
    )
    key_file.chmod(0o600)
    cer.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return cer, key_file


def demo_csd(directory: Path) -> tuple[Path, Path, str]:
    cer, key = write_pair(
        directory,
        "csd",
        rfc=TEST_RFC,
        name=TEST_NAME,
        number="30001000000500003416",
        password=TEST_PASSWORD,
    )
    return cer, key, TEST_PASSWORD


def demo_pac(directory: Path) -> tuple[Path, Path, str]:
    cer, key = write_pair(
        directory,
        "pac",
        rfc=PAC_RFC,
        name="PAC DE PRUEBAS CAM2DRIVE",
        number="30001000000500003456",
        password=TEST_PASSWORD,
        unit=f"PAC{PAC_RFC}",
    )
    return cer, key, TEST_PASSWORD
