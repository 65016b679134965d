"""A real CSD is never stamped by the test PAC, and no PAC is chosen silently."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from billing.core.errors import InvoiceError
from billing.core.settings import ConfigError, load_settings
from billing.invoicing.pac import make_pac
from cli.devstack.democerts import DEMO_ISSUER, demo_csd
from cli.devstack.tls import certificate


def sat_issued_csd(directory: Path) -> Path:
    """A CSD shaped like the SAT's: signed by a certification authority, not by itself."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "AC DEL SERVICIO DE ADMINISTRACION TRIBUTARIA")]
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "CONTRIBUYENTE REAL"),
            x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, "AAA010101AAA"),
        ]
    )
    cert = certificate(subject, key, 30, issuer=(ca_name, ca_key))
    path = directory / "real.cer"
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return path


@pytest.mark.parametrize(
    ("missing", "value", "error"),
    [
        ("cfdi_issuer_postal_code", None, "cfdi_issuer_postal_code is not"),
        ("cfdi_issuer_name", None, "cfdi_issuer_name is not"),
        ("cfdi_issuer_regime", None, "cfdi_issuer_regime is not"),
        ("cfdi_issuer_postal_code", "0600", "must be 5 digits"),
    ],
)
def test_a_csd_without_the_issuers_data_is_refused_at_startup(
    tmp_path: Path, missing: str, value: str | None, error: str
) -> None:
    """No placeholder LugarExpedicion or issuer: a wrong one makes every invoice wrong."""
    cer, _, _ = demo_csd(tmp_path)
    config = {**DEMO_ISSUER, missing: value}
    with pytest.raises(ConfigError, match=error):
        load_settings(cfdi_csd_certificate=cer, pac_driver="local", **config)
    with pytest.raises(ConfigError, match="c_FormaPago"):
        load_settings(
            cfdi_csd_certificate=cer,
            pac_driver="local",
            cfdi_payment_forms={"account_money": "6"},
            **DEMO_ISSUER,
        )
    assert load_settings(cfdi_issuer_postal_code=None).cfdi_csd_certificate is None  # no CSD


def test_a_sat_issued_csd_with_the_test_pac_is_refused_at_startup(tmp_path: Path) -> None:
    real = sat_issued_csd(tmp_path)
    with pytest.raises(ConfigError, match="pac_driver = local would stamp a SAT-issued CSD"):
        load_settings(cfdi_csd_certificate=real, pac_driver="local")


def test_a_csd_without_a_pac_driver_is_refused_at_startup(tmp_path: Path) -> None:
    cer, _, _ = demo_csd(tmp_path)
    with pytest.raises(ConfigError, match="pac_driver is not"):
        load_settings(cfdi_csd_certificate=cer)
    with pytest.raises(ConfigError, match="pac_driver is not"):
        load_settings(cfdi_csd_certificate=sat_issued_csd(tmp_path))


def test_the_demo_csd_may_use_the_test_pac_and_billing_never_builds_it(tmp_path: Path) -> None:
    cer, _, _ = demo_csd(tmp_path)
    settings = load_settings(cfdi_csd_certificate=cer, pac_driver="local", **DEMO_ISSUER)
    assert settings.pac_driver == "local"
    with pytest.raises(InvoiceError, match="dev stack's test PAC"):
        make_pac(settings)  # production code has no test PAC to fall back on


@pytest.mark.process
def test_the_cli_refuses_a_real_csd_with_the_test_pac_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    real = sat_issued_csd(tmp_path)
    env = {
        **os.environ,
        "CAM2DRIVE_CFDI_CSD_CERTIFICATE": str(real),
        "CAM2DRIVE_PAC_DRIVER": "local",
        "CAM2DRIVE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "cam2drive"), "invoice", "issue"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SAT-issued CSD" in lines[0], proc.stderr
