"""Certificates for tests and `make run`: a CSD and a PAC certificate, made locally.

They are shaped like SAT's (the RFC in x500UniqueIdentifier, a 20-digit
certificate number encoded in the serial, a PAC's RFC in the OU), so
satcfdi reads them as it reads real ones; SAT never issued them, and no
real PAC accepts what they seal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from cli.devstack.tls import certificate, kept_pair

#: SAT's published test taxpayer, so demo invoices look like the SAT's own samples.
TEST_RFC, TEST_NAME, TEST_PASSWORD = "EKU9003173C9", "ESCUELA KEMPER URGATE", "12345678a"
PAC_RFC = "SPR190613I52"

#: the test taxpayer as the issuer of the demo's invoices (settings fields)
DEMO_ISSUER = {
    "cfdi_issuer_name": TEST_NAME,
    "cfdi_issuer_regime": "601",
    "cfdi_issuer_postal_code": "42501",
}


@dataclass(frozen=True)
class Holder:
    """Whom a SAT-shaped certificate names, and the stem of its two files."""

    stem: str
    rfc: str
    name: str
    number: str  # the SAT's 20-digit certificate number
    unit: str | None = None  # a PAC's OU

    def subject(self) -> x509.Name:
        attrs = [
            x509.NameAttribute(NameOID.COMMON_NAME, self.name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.name),
            x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, self.rfc),
        ]
        if self.unit:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.unit))
        return x509.Name(attrs)


DEMO_CSD = Holder("csd", TEST_RFC, TEST_NAME, "30001000000500003416")
DEMO_PAC = Holder(
    "pac", PAC_RFC, "PAC DE PRUEBAS CAM2DRIVE", "30001000000500003456", unit=f"PAC{PAC_RFC}"
)


def write_pair(directory: Path, holder: Holder, password: str) -> tuple[Path, Path]:
    """`<stem>.cer` (DER) and `<stem>.key` (encrypted PKCS#8 DER), made once."""

    def make() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        serial = int(holder.number.encode().hex(), 16)
        return certificate(holder.subject(), key, 4 * 365, serial=serial), key

    return kept_pair(
        directory / f"{holder.stem}.cer",
        directory / f"{holder.stem}.key",
        make,
        serialization.Encoding.DER,
        serialization.BestAvailableEncryption(password.encode()),
    )


def demo_csd(directory: Path) -> tuple[Path, Path, str]:
    return *write_pair(directory, DEMO_CSD, TEST_PASSWORD), TEST_PASSWORD


def demo_pac(directory: Path) -> tuple[Path, Path, str]:
    return *write_pair(directory, DEMO_PAC, TEST_PASSWORD), TEST_PASSWORD


def demo_invoicing(csd_dir: Path, pac_dir: Path) -> dict[str, Any]:
    """Settings fields that turn invoicing on with the demo CSD (made under
    `csd_dir`) and the local test PAC (its certificate under `pac_dir`)."""
    cer, key, password = demo_csd(csd_dir)
    return {
        "cfdi_csd_certificate": cer,
        "cfdi_csd_key": key,
        "cfdi_csd_password": password,
        **DEMO_ISSUER,
        "pac_driver": "local",
        "pac_local_dir": pac_dir,
    }
